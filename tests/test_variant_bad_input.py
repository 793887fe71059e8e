"""The catalogue's bad input (tests/catalogue.py) through the fused heads and the
vocabulary-parallel losses of every backend: the plain loss's exception and message
(issue 20: every variant is prepared by the core, with the catalogue's messages)."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue import BadInput, variant_cases

import multiloss.numpy as mn


def _expected(case: BadInput) -> tuple[type[Exception], str]:
    with pytest.raises(case.error) as caught:
        getattr(mn, case.name)(case.logits, case.target, **case.options)
    return case.error, str(caught.value)


def _check(case: BadInput, call) -> None:
    error, message = _expected(case)
    with pytest.raises(error) as caught:
        call()
    # the same text, dtypes named by their backend (torch.float64 for float64)
    assert str(caught.value).replace("torch.", "") == message


LINEAR = variant_cases("linear")
VOCAB = variant_cases("vocab_parallel")


@pytest.mark.parametrize("case", LINEAR, ids=[c.id for c in LINEAR])
def test_numpy_and_top_level_fused_heads(case):
    import multiloss

    eye = np.eye(case.logits.shape[1])
    for module in (mn, multiloss):
        face = getattr(module, f"linear_{case.name}")
        _check(case, lambda face=face: face(case.logits, eye, case.target, **case.options))


@pytest.mark.parametrize("case", LINEAR, ids=[c.id for c in LINEAR])
def test_torch_fused_heads(case):
    torch = pytest.importorskip("torch")
    import multiloss.torch as mt

    options = {
        k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()
    }
    x = torch.tensor(case.logits)
    eye = torch.eye(case.logits.shape[1], dtype=x.dtype)
    face = getattr(mt, f"linear_{case.name}")
    _check(case, lambda: face(x, eye, torch.tensor(case.target), **options))


@pytest.mark.parametrize("case", LINEAR, ids=[c.id for c in LINEAR])
def test_jax_fused_heads(case):
    jnp = pytest.importorskip("jax.numpy")
    import multiloss.jax as mj

    x = jnp.asarray(case.logits)
    eye = jnp.eye(case.logits.shape[1], dtype=x.dtype)
    face = getattr(mj, f"linear_{case.name}")
    _check(case, lambda: face(x, eye, jnp.asarray(case.target), **case.options))


@pytest.mark.parametrize("case", VOCAB, ids=[c.id for c in VOCAB])
def test_jax_vocab_parallel(case):
    jax = pytest.importorskip("jax")
    from multiloss.jax import distributed

    mesh = jax.make_mesh((1,), ("model",))
    face = getattr(distributed, f"vocab_parallel_{case.name}")
    logits, target = jax.numpy.asarray(case.logits), jax.numpy.asarray(case.target)
    _check(case, lambda: face(logits, target, axis_name="model", mesh=mesh, **case.options))


@pytest.fixture(scope="module")
def one_rank():
    torch = pytest.importorskip("torch")
    dist = pytest.importorskip("torch.distributed")
    if dist.is_initialized():  # pragma: no cover - another test's group
        yield torch
        return
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield torch
    dist.destroy_process_group()


@pytest.mark.parametrize("case", VOCAB, ids=[c.id for c in VOCAB])
def test_torch_vocab_parallel(case, one_rank):
    torch = one_rank
    from multiloss.torch import distributed

    options = {
        k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in case.options.items()
    }
    face = getattr(distributed, f"vocab_parallel_{case.name}")
    logits, target = torch.tensor(case.logits), torch.tensor(case.target)
    _check(case, lambda: face(logits, target, **options))
