"""The engine choice (``multiloss.torch.engine``) and the kernel engine's contracts: which
calls run the kernels, the errors, ``meta`` tensors (fake implementations, counted),
``torch.compile(fullgraph=True)``, second order, autograd around the custom operators
(Liger-Kernel #272: no gradient written over the logits) and the lazy import of triton.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import multiloss.torch as mt  # noqa: E402

engine_module = importlib.import_module("multiloss.torch.engine")  # `mt.engine` is the function

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def _graph_names(loss):
    names, todo = [], [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None:
            names.append(type(node).__name__)
            todo.extend(next_node for next_node, _ in node.next_functions)
    return names


def ran_kernels(loss, family="softmax"):
    return any(f"{family}_" in name and "Generated" in name for name in _graph_names(loss))


def _inputs(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=generator, dtype=dtype)
    return logits, torch.tensor([0, 3, -100, 1, 2])


def test_names_and_errors():
    assert mt.get_engine() == "auto"
    expected = r"engine must be one of 'auto', 'triton', 'eager'; got 'cuda'"
    with pytest.raises(ValueError, match=expected), mt.engine("cuda"):
        pass
    with pytest.raises(ValueError, match="got None"):
        mt.set_engine(None)
    with pytest.raises(RuntimeError), mt.engine("eager"):
        assert mt.get_engine() == "eager"
        raise RuntimeError
    assert mt.get_engine() == "auto"
    mt.set_engine("eager")
    try:
        assert mt.get_engine() == "eager"
    finally:
        mt.set_engine("auto")


def test_choice_on_cpu():
    """auto and eager: the eager plans on CPU; triton: the kernels (the interpreter)."""
    logits, target = _inputs()
    for name in ("auto", "eager"):
        with mt.engine(name):
            assert not ran_kernels(mt.cross_entropy(logits.requires_grad_(), target))
    with mt.engine("triton"):
        assert engine_module.kernels_for(logits)
        assert ran_kernels(mt.cross_entropy(logits, target))
        assert ran_kernels(mt.CrossEntropyLoss(label_smoothing=0.1)(logits, target))
        assert ran_kernels(mt.FocalLoss(gamma=2.0)(logits, target))
        assert ran_kernels(mt.PolyLoss()(logits, target))
        # float64: the softmax kernels compute in float32, so the eager plans
        assert not ran_kernels(mt.cross_entropy(logits.double(), target))


def test_without_triton(monkeypatch):
    """No triton: "auto" is the eager plans, "triton" says what is missing."""
    monkeypatch.setattr(engine_module, "triton_available", lambda: False)
    logits, target = _inputs()
    assert not ran_kernels(mt.cross_entropy(logits.requires_grad_(), target))
    with mt.engine("triton"), pytest.raises(RuntimeError, match="needs the triton package"):
        mt.cross_entropy(logits, target)


def test_sigmoid_family_dispatch():
    """The sigmoid family goes to its own kernels' module (T2's), where it is."""
    pytest.importorskip("multiloss.torch._triton.sigmoid")
    logits, _ = _inputs()
    with mt.engine("triton"):
        loss = mt.sigmoid_focal_loss(logits.requires_grad_(), torch.rand(5, 4))
    assert not any(name == "_LossBackward" for name in _graph_names(loss))


def test_eager_kept_where_kernels_have_no_derivative():
    logits, target = _inputs()
    soft = torch.softmax(torch.randn(5, 4), 1).requires_grad_(True)
    with mt.engine("triton"):
        # a gradient with respect to the target or a weight
        assert not ran_kernels(mt.cross_entropy(logits.requires_grad_(), soft))
        weight = torch.rand(4, requires_grad=True)
        assert not ran_kernels(mt.cross_entropy(logits, target, weight=weight))
        # forward mode and torch.func
        with torch.autograd.forward_ad.dual_level():
            dual = torch.autograd.forward_ad.make_dual(logits.detach(), torch.ones(5, 4))
            loss = mt.cross_entropy(dual, target)
            assert torch.autograd.forward_ad.unpack_dual(loss).tangent is not None
        grad = torch.func.grad(lambda z: mt.focal_loss(z, target))(logits.detach())
    with mt.engine("eager"):
        expected = torch.func.grad(lambda z: mt.focal_loss(z, target))(logits.detach())
    torch.testing.assert_close(grad, expected)


def test_second_order_through_kernels():
    """create_graph=True after a kernel forward: the eager closed forms differentiate."""
    logits, target = _inputs()
    results = []
    for name in ("triton", "eager"):
        z = logits.clone().requires_grad_(True)
        with mt.engine(name):
            loss = mt.focal_loss(z, target, gamma=2.0)
        (grad,) = torch.autograd.grad(loss, z, create_graph=True)
        (hvp,) = torch.autograd.grad((grad * torch.arange(4.0)).sum(), z)
        results.append((loss.detach(), grad.detach(), hvp))
    for kernel, eager in zip(*results, strict=True):
        torch.testing.assert_close(kernel, eager, rtol=1e-5, atol=1e-6)


def test_no_write_into_user_tensors_and_upstream_backward():
    """Liger-Kernel #272: the logits are the output of a softmax (whose backward reads its
    output) and feed another op too; the kernels write no gradient over them."""
    w = torch.randn(5, 4, dtype=torch.float64)
    target = torch.tensor([0, 3, -100, 1, 2])
    grads = []
    for name in ("triton", "eager"):
        weights = w.clone().float().requires_grad_(True)
        logits = torch.softmax(weights, dim=1) * 6.0
        before = logits.detach().clone()
        with mt.engine(name):
            loss = mt.cross_entropy(logits, target) + (logits * logits).sum()
        loss.backward()
        assert torch.equal(logits.detach(), before)
        grads.append(weights.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


VIEWS = ("detach", "view", "_unsafe_view", "reshape", "permute", "expand", "squeeze", "unsqueeze")


@pytest.mark.parametrize(
    ("function", "options"),
    [
        (mt.cross_entropy, {}),
        (mt.focal_loss, {"gamma": 2.0, "alpha": [0.25, 0.5, 0.5, 0.5]}),
        (mt.poly_loss, {"reduction": "sum", "label_smoothing": 0.1}),
    ],
)
def test_meta_runs_the_fake_implementations(function, options):
    """On meta tensors the custom operators' fakes run: at most 4 kernels forward +
    backward (the ones_like that seeds backward counts), nothing else of size N×C."""
    logits = torch.empty(8, 4, device="meta", requires_grad=True)
    target = torch.zeros(8, dtype=torch.int64, device="meta")
    with mt.engine("triton"):
        loss = function(logits, target, **options)
        with _Ops() as ops:
            loss.backward()
    assert loss.device.type == "meta" and loss.shape == ()
    assert logits.grad.shape == (8, 4) and logits.grad.device.type == "meta"
    with mt.engine("triton"), _Ops() as forward_ops:
        function(logits, target, **options)
    kernels = [name for name in forward_ops.names + ops.names if name.split(".")[-1] not in VIEWS]
    assert "multiloss.softmax_forward" in kernels and "multiloss.softmax_backward" in kernels
    assert len(kernels) <= 4 + ("alpha" in options), kernels


def test_compile_fullgraph_matches_eager():
    """The custom operators trace with fullgraph=True and give the eager numbers, also
    with ignore_index (Liger-Kernel #1338: a wrong loss under compile)."""
    logits, target = _inputs()
    target = torch.tensor([0, 3, 2, 1, 2])

    def loss_of(z, t):
        return mt.cross_entropy(z, t, ignore_index=2, label_smoothing=0.1) + mt.focal_loss(
            z, t, ignore_index=2, gamma=0.5
        )

    results = []
    for compiled in (False, True):
        z = logits.clone().requires_grad_(True)
        function = (
            torch.compile(loss_of, fullgraph=True, backend="aot_eager") if compiled else loss_of
        )
        with mt.engine("triton"):
            loss = function(z, target)
        loss.backward()
        results.append((loss.detach(), z.grad))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-6)
    with mt.engine("eager"):
        z = logits.clone().requires_grad_(True)
        eager = loss_of(z, target)
        eager.backward()
    torch.testing.assert_close(results[0], (eager.detach(), z.grad), rtol=1e-5, atol=1e-6)


def test_without_interpreter_and_lazy_import():
    """`import multiloss.torch` imports no triton; engine("triton") on a CPU tensor
    without the interpreter says what to do; "auto" keeps the eager plans."""
    code = textwrap.dedent(
        """
        import sys
        import torch
        import multiloss.torch as mt
        assert "triton" not in sys.modules, "multiloss.torch imported triton"
        logits, target = torch.zeros(2, 3), torch.tensor([0, 1])
        mt.cross_entropy(logits, target)
        assert "triton" not in sys.modules, "an eager call imported triton"
        try:
            with mt.engine("triton"):
                mt.cross_entropy(logits, target)
        except RuntimeError as error:
            print(error)
        """
    )
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "TRITON_INTERPRET=1" in result.stdout and "interpreter" in result.stdout
