"""Importing ``multiloss``: the backend submodules as lazy attributes, what a missing backend
says, and keyword errors that name the public function (not the core's ``prepare_*``)."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from losses import ALL, has_class_axis

import multiloss
import multiloss.numpy as mlnp

# A plausible mistyped keyword for each loss.
TYPOS = {
    "cross_entropy": "label_smothing",
    "focal_loss": "gama",
    "binary_cross_entropy": "pos_weigth",
    "sigmoid_focal_loss": "alpah",
    "poly_loss": "epsilion",
    "asymmetric_loss": "gama_neg",
    "varifocal_loss": "gama",
    "quality_focal_loss": "betta",
}
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _problem(name: str) -> tuple[np.ndarray, np.ndarray]:
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    if has_class_axis(name):
        return logits, np.array([0, 2])
    return logits, np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])


# ------------------------------------------------------------ backends as lazy attributes


def test_numpy_backend_is_a_lazy_attribute_that_imports_no_framework():
    result = _run_python(
        """
        import sys
        import numpy as np
        import multiloss
        heavy = ("torch", "jax", "jaxlib", "flax", "optax")
        assert "multiloss.numpy" not in sys.modules  # lazy: not imported by the package
        assert not [m for m in heavy if m in sys.modules]
        assert {"numpy", "torch", "jax"} <= set(dir(multiloss)), dir(multiloss)
        assert {"cross_entropy", "backend_of", "__version__"} <= set(dir(multiloss))
        assert not [m for m in heavy if m in sys.modules]  # dir() imports nothing
        loss = multiloss.numpy.cross_entropy(np.zeros((2, 3)), np.array([0, 1]))
        assert abs(float(loss) - np.log(3.0)) < 1e-15, loss
        assert multiloss.numpy is sys.modules["multiloss.numpy"]
        loaded = [m for m in heavy if m in sys.modules]
        assert not loaded, loaded
        """
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not (HAS_TORCH and HAS_JAX), reason="needs torch and jax")
def test_torch_and_jax_backends_are_lazy_attributes():
    result = _run_python(
        """
        import sys
        import multiloss
        assert "multiloss.torch" not in sys.modules and "torch" not in sys.modules
        adapter = multiloss.torch
        assert adapter is sys.modules["multiloss.torch"]
        assert adapter.__name__ == "multiloss.torch"
        assert callable(adapter.focal_loss) and isinstance(adapter.FocalLoss, type)
        assert "jax" not in sys.modules  # one backend at a time
        adapter = multiloss.jax
        assert adapter is sys.modules["multiloss.jax"]
        assert callable(adapter.focal_loss)
        """
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_attribute_still_raises_attribute_error():
    message = "module 'multiloss' has no attribute 'nope'"
    with pytest.raises(AttributeError, match=f"^{re.escape(message)}$"):
        multiloss.nope  # noqa: B018
    assert not hasattr(multiloss, "nope")
    assert "nope" not in dir(multiloss)


# ------------------------------------------------------------ a backend that is not installed


@pytest.mark.parametrize(("backend", "extra"), [("torch", "torch"), ("jax", "jax")])
@pytest.mark.parametrize("how", ["import multiloss.{backend}", "multiloss.{backend}"])
def test_missing_backend_names_the_extra_to_install(backend, extra, how):
    """``sys.modules[name] = None`` makes ``import name`` raise ImportError, as if absent."""
    result = _run_python(
        f"""
        import sys
        sys.modules[{backend!r}] = None
        import multiloss
        try:
            {how.format(backend=backend)}
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("no ImportError")
        """
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'pip install ".[{extra}]"' in result.stdout, result.stdout
    assert f"multiloss.{backend}" in result.stdout, result.stdout


# ------------------------------------------------------------ keyword errors


@pytest.mark.parametrize("suffix", ["_value_and_grad", "_grad"])
@pytest.mark.parametrize("name", ALL)
def test_numpy_gradient_functions_name_themselves_on_a_mistyped_keyword(name, suffix):
    function = getattr(mlnp, name + suffix)
    logits, target = _problem(name)
    bad = TYPOS[name]
    with pytest.raises(TypeError) as error:
        function(logits, target, **{bad: 1.0})
    message = str(error.value)
    assert message == f"{name}{suffix}() got an unexpected keyword argument '{bad}'"
    assert "prepare_" not in message
    # Python's own wording, as the public loss (an explicit signature) reports it:
    with pytest.raises(TypeError) as native:
        getattr(mlnp, name)(logits, target, **{bad: 1.0})
    assert message == str(native.value).replace(f"{name}()", f"{name}{suffix}()")


@pytest.mark.parametrize("suffix", ["_value_and_grad", "_grad"])
@pytest.mark.parametrize("name", ALL)
def test_numpy_gradient_functions_take_every_keyword_of_their_loss(name, suffix):
    loss = getattr(mlnp, name)
    logits, target = _problem(name)
    defaults = {
        key: parameter.default
        for key, parameter in inspect.signature(loss).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert "dtype" in defaults and "reduction" in defaults
    defaults["reduction"] = "sum"
    got = getattr(mlnp, name + suffix)(logits, target, **defaults)
    value, grad = mlnp.__dict__[name + "_value_and_grad"](logits, target, reduction="sum")
    if suffix == "_grad":
        np.testing.assert_array_equal(got, grad)
    else:
        assert float(got[0]) == float(value) == float(loss(logits, target, reduction="sum"))
        np.testing.assert_array_equal(got[1], grad)


@pytest.mark.parametrize("module", [multiloss, mlnp], ids=["multiloss", "multiloss.numpy"])
@pytest.mark.parametrize("name", ALL)
def test_losses_name_themselves_on_a_mistyped_keyword(module, name):
    logits, target = _problem(name)
    bad = TYPOS[name]
    message = f"{name}() got an unexpected keyword argument '{bad}'"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        getattr(module, name)(logits, target, **{bad: 1.0})
