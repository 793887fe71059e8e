"""multiloss.torch.linear: the fused linear head against the unfused loss.

References are never the fused code itself: `torch.nn.functional.cross_entropy` of
`x @ W.T + b` in float64 (with autograd for the gradients) for every option it has, and
the naive float64 NumPy oracle (tests/oracles.py) with the chain rule written out here for
focal loss, z-loss and soft-capping. Small shapes with a small `chunk_size` force many
chunks (37 tokens in chunks of 8: the last one short).
"""

from __future__ import annotations

import numpy as np
import oracles
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import multiloss.torch as mt  # noqa: E402
from multiloss.torch import _linear  # noqa: E402
from multiloss.torch.linear import (  # noqa: E402
    LinearCrossEntropyLoss,
    LinearFocalLoss,
    linear_cross_entropy,
    linear_focal_loss,
)

N, D, V, CHUNK = 37, 16, 50, 8
REDUCTIONS = ["mean", "sum", "none"]


def make(seed=0, *, tokens=N, features=D, classes=V, dtype=torch.float64, bias=True, soft=False):
    """Features, projection, bias, targets (a few ignored, or probabilities)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, features, generator=generator, dtype=torch.float64)
    w = torch.randn(classes, features, generator=generator, dtype=torch.float64) * 0.7
    b = torch.randn(classes, generator=generator, dtype=torch.float64) if bias else None
    if soft:
        target = torch.softmax(
            torch.randn(tokens, classes, generator=generator, dtype=torch.float64), -1
        )
    else:
        target = torch.randint(0, classes, (tokens,), generator=generator)
        target[torch.rand(tokens, generator=generator) < 0.2] = -100
    leaves = [t if t is None else t.to(dtype).requires_grad_() for t in (x, w, b)]
    return (*leaves, target.to(dtype) if soft else target)


def grads(loss, tensors, cotangent):
    present = [t for t in tensors if t is not None]
    found = iter(torch.autograd.grad(loss, present, cotangent))
    return [None if t is None else next(found) for t in tensors]


def cotangent_for(loss, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(loss.shape, generator=generator, dtype=loss.dtype) + 0.5


def assert_same(ours, reference, *, rtol=1e-12, atol=1e-13):
    for a, r in zip(ours, reference, strict=True):
        if r is None:
            assert a is None
            continue
        torch.testing.assert_close(a, r, rtol=rtol, atol=atol)


def check_against_pytorch(loss_fn, reference_fn, x, w, b, *, rtol=1e-12, atol=1e-13):
    """Value and the gradients of x, W, b under a random cotangent, ours vs reference."""
    ours = loss_fn(x, w, b)
    reference = reference_fn(x, w, b)
    assert ours.shape == reference.shape and ours.dtype == reference.dtype
    cotangent = cotangent_for(reference)
    assert_same([ours], [reference], rtol=rtol, atol=atol)
    assert_same(
        grads(ours, (x, w, b), cotangent),
        grads(reference, (x, w, b), cotangent),
        rtol=rtol,
        atol=atol,
    )


# ------------------------------------------------------------- cross-entropy vs PyTorch

CE_OPTIONS = {
    "plain": {},
    "weight": {"weight": "w"},
    "smoothing": {"label_smoothing": 0.15},
    "weight + smoothing": {"weight": "w", "label_smoothing": 0.3},
    "ignore_index=3": {"ignore_index": 3},
    "probabilities": {"soft": True},
    "probabilities + smoothing + weight": {"soft": True, "label_smoothing": 0.2, "weight": "w"},
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CE_OPTIONS))
def test_cross_entropy_equals_pytorch_unfused(case, reduction, bias) -> None:
    options = dict(CE_OPTIONS[case])
    soft = options.pop("soft", False)
    x, w, b, target = make(bias=bias, soft=soft)
    if options.get("weight") == "w":
        options["weight"] = torch.rand(V, generator=torch.Generator().manual_seed(5)).double()
    if options.get("ignore_index") == 3:
        target = torch.where(target == -100, 3, target)
    options["reduction"] = reduction

    def ours(x, w, b):
        return linear_cross_entropy(x, w, target, linear_bias=b, chunk_size=CHUNK, **options)

    def reference(x, w, b):
        logits = x @ w.T if b is None else x @ w.T + b
        return F.cross_entropy(logits, target, **options)

    check_against_pytorch(ours, reference, x, w, b)


# ------------------------------------------------------------ every option vs the oracle


def oracle(kind, x, w, b, target, cotangent, **options):
    """The naive float64 oracle of the loss of x @ W.T + b, with dX, dW, db by the chain
    rule: G = cotangent · ∂loss/∂logits, dX = G W, dW = Gᵀ X, db = Σ_rows G."""
    xs, ws = x.detach().double().numpy(), w.detach().double().numpy()
    logits = xs @ ws.T + (0.0 if b is None else b.detach().double().numpy())
    batch = logits.shape[:-1]
    logits = logits.reshape(-1, logits.shape[-1])
    t = target.numpy()
    t = t.reshape(-1, t.shape[-1]) if t.dtype.kind == "f" else t.reshape(-1)
    function = oracles.np_cross_entropy_ext if kind == "ce" else oracles.np_focal_loss_ext
    loss, grad = function(logits, t, **options)
    per_token = options["reduction"] == "none"
    scale = cotangent.double().numpy().reshape(-1, 1) if per_token else float(cotangent)
    g = grad * scale
    return (
        np.asarray(loss).reshape(batch) if per_token else loss,
        (g @ ws).reshape(*batch, ws.shape[1]),
        g.T @ xs.reshape(-1, xs.shape[-1]),
        None if b is None else g.sum(axis=0),
    )


ORACLE_CASES = [
    ("ce", {"z_loss": 1e-2}),
    ("ce", {"z_loss": 1e-2, "weight": "w"}),
    ("ce", {"softcap": 3.0}),
    ("ce", {"softcap": 2.0, "z_loss": 1e-3, "label_smoothing": 0.1, "weight": "w"}),
    ("ce", {"soft": True, "z_loss": 1e-2, "softcap": 4.0}),
    ("focal", {"gamma": 2.0}),
    ("focal", {"gamma": 0.5, "alpha": 0.25}),
    ("focal", {"gamma": 1.5, "alpha": "w", "label_smoothing": 0.2}),
    ("focal", {"gamma": 2.0, "z_loss": 1e-2, "softcap": 3.0, "alpha": "w"}),
    ("focal", {"gamma": 3.0, "soft": True, "label_smoothing": 0.1}),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("kind", "case"), ORACLE_CASES, ids=str)
def test_every_option_equals_the_naive_oracle(kind, case, reduction, bias) -> None:
    options = dict(case)
    soft = options.pop("soft", False)
    x, w, b, target = make(seed=3, bias=bias, soft=soft)
    name = "weight" if kind == "ce" else "alpha"
    if options.get(name) == "w":
        options[name] = torch.rand(V, generator=torch.Generator().manual_seed(6)).double() + 0.1
    options["reduction"] = reduction
    function = linear_cross_entropy if kind == "ce" else linear_focal_loss
    ours = function(x, w, target, linear_bias=b, chunk_size=CHUNK, **options)
    cotangent = cotangent_for(ours)
    ours_grads = grads(ours, (x, w, b), cotangent)
    numpy_options = {
        key: (value.numpy() if isinstance(value, torch.Tensor) else value)
        for key, value in options.items()
    }
    loss, *reference = oracle(kind, x, w, b, target, cotangent, **numpy_options)
    np.testing.assert_allclose(ours.detach().numpy(), loss, rtol=1e-12, atol=1e-13)
    for got, want in zip(ours_grads, reference, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("soft", [False, True], ids=["indices", "probabilities"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_batched_input_keeps_its_shape(reduction, soft) -> None:
    x, w, b, target = make(tokens=21, soft=soft)
    x3 = x.detach().reshape(3, 7, D).requires_grad_()
    target3 = target.reshape(3, 7, V) if soft else target.reshape(3, 7)
    ours = linear_focal_loss(
        x3, w, target3, linear_bias=b, gamma=1.0, reduction=reduction, chunk_size=4
    )
    reference = mt.focal_loss(x3 @ w.T + b, target3, axis=-1, gamma=1.0, reduction=reduction)
    assert ours.shape == reference.shape == ((3, 7) if reduction == "none" else ())
    cotangent = cotangent_for(reference)
    assert_same([ours], [reference])
    assert_same(grads(ours, (x3, w, b), cotangent), grads(reference, (x3, w, b), cotangent))


def test_unbatched_input() -> None:
    x, w, b, target = make(tokens=1)
    ours = linear_cross_entropy(x[0], w, target[0] % V, linear_bias=b)
    reference = F.cross_entropy(x[0] @ w.T + b, target[0] % V)
    assert ours.shape == ()
    assert_same([ours], [reference])


# ------------------------------------------------------------------------------ normaliser


@pytest.mark.parametrize("normalizer", [7, 12.5, "tensor", 0])
def test_normalizer_divides_the_sum(normalizer) -> None:
    x, w, b, target = make()
    if normalizer == "tensor":
        normalizer = torch.tensor(9, dtype=torch.int64)
    weight = torch.linspace(0.5, 1.5, V, dtype=torch.float64)
    ours = linear_cross_entropy(
        x, w, target, linear_bias=b, weight=weight, normalizer=normalizer, chunk_size=CHUNK
    )
    total = F.cross_entropy(x @ w.T + b, target, weight=weight, reduction="sum")
    value = float(normalizer)
    reference = total * 0.0 if value == 0 else total / value
    assert_same([ours], [reference])
    assert_same(grads(ours, (x, w, b), None), grads(reference, (x, w, b), None))


def test_normalizer_is_validated() -> None:
    x, w, _, target = make()
    with pytest.raises(ValueError, match="normalizer"):
        linear_cross_entropy(x, w, target, reduction="sum", normalizer=3.0)
    with pytest.raises(ValueError, match="normalizer"):
        linear_focal_loss(x, w, target, normalizer=-1.0)
    with pytest.raises(ValueError, match="0-d"):
        linear_cross_entropy(x, w, target, normalizer=torch.ones(2))


# ------------------------------------------------------------------------ chunk boundaries


@pytest.mark.parametrize("chunk_size", [1, 5, 8, 36, 37, 38, 1000])
def test_every_chunk_size_gives_the_same_numbers(chunk_size) -> None:
    x, w, b, target = make()

    def ours(x, w, b):
        return linear_cross_entropy(x, w, target, linear_bias=b, chunk_size=chunk_size)

    def reference(x, w, b):
        return F.cross_entropy(x @ w.T + b, target)

    check_against_pytorch(ours, reference, x, w, b)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_strided_input_and_projection(reduction) -> None:
    x, w, b, target = make()
    x = x.detach().t().contiguous().t().requires_grad_()  # column-major (N, D)
    w = w.detach().t().contiguous().t().requires_grad_()
    assert not x.is_contiguous() and not w.is_contiguous()

    def ours(x, w, b):
        return linear_cross_entropy(
            x[::1], w, target, linear_bias=b, reduction=reduction, chunk_size=CHUNK
        )

    def reference(x, w, b):
        return F.cross_entropy(x @ w.T + b, target, reduction=reduction)

    check_against_pytorch(ours, reference, x, w, b)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_a_chunk_entirely_ignored(reduction) -> None:
    x, w, b, target = make()
    target[8:16] = -100  # the second chunk of 8
    target[16] = 4

    def ours(x, w, b):
        return linear_focal_loss(
            x, w, target, linear_bias=b, gamma=0.0, reduction=reduction, chunk_size=8
        )

    def reference(x, w, b):
        return F.cross_entropy(x @ w.T + b, target, reduction=reduction)

    check_against_pytorch(ours, reference, x, w, b)
    (grad_x,) = torch.autograd.grad(ours(x, w, b).sum(), x)
    assert bool(torch.all(grad_x[8:16] == 0))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_no_tokens(reduction) -> None:
    x, w, b, target = make(tokens=0)
    loss = linear_cross_entropy(x, w, target, linear_bias=b, reduction=reduction)
    assert loss.shape == ((0,) if reduction == "none" else ())
    if reduction != "none":
        assert loss.item() == 0.0
    grad_x, grad_w, grad_b = torch.autograd.grad(loss.sum(), (x, w, b))
    assert grad_x.shape == (0, D)
    assert bool(torch.all(grad_w == 0)) and bool(torch.all(grad_b == 0))


def test_every_target_ignored_gives_zero_not_nan() -> None:
    x, w, b, target = make()
    loss = linear_cross_entropy(x, w, torch.full_like(target, -100), linear_bias=b)
    assert loss.item() == 0.0
    assert all(bool(torch.all(g == 0)) for g in torch.autograd.grad(loss, (x, w, b)))


def test_no_more_than_one_chunk_of_logits_is_formed(monkeypatch) -> None:
    shapes = []
    original = _linear._logits

    def recording(x, weight, bias, out):
        logits = original(x, weight, bias, out)
        shapes.append(tuple(logits.shape))
        return logits

    monkeypatch.setattr(_linear, "_logits", recording)
    monkeypatch.setattr(_linear, "unfused", None)  # the fused path, not the fallback
    x, w, b, target = make()
    linear_cross_entropy(x, w, target, linear_bias=b, chunk_size=8).backward()
    assert shapes == [(8, V)] * 4 + [(5, V)]  # grads formed in the forward pass
    shapes.clear()
    loss = linear_cross_entropy(x, w, target, linear_bias=b, reduction="none", chunk_size=8)
    loss.sum().backward()
    assert shapes == [(8, V)] * 4 + [(5, V)] + [(8, V)] * 4 + [(5, V)]  # recomputed


def test_the_automatic_chunk_size() -> None:
    rule = _linear.automatic_chunk_size
    assert rule(37, 50) == 37  # fewer tokens than the minimum: one chunk
    assert rule(0, 50) == 1
    assert rule(2048, 65536) == 192  # the minimum (1/16 of the tokens would be 128)
    assert rule(4096, 32000) == 256  # 1/16 of the tokens: 31 MiB
    assert rule(1 << 16, 1000) == 4096  # 1/16 of the tokens: 16 MiB
    assert rule(1 << 20, 32000) == (32 << 20) // (4 * 32000)  # 32 MiB of float32 logits
    assert rule(1 << 20, 1 << 18) == _linear.MIN_CHUNK_ROWS  # 192 MiB, the minimum
    x, w, _, target = make()
    assert linear_cross_entropy(x, w, target, chunk_size=None).shape == ()


# --------------------------------------------------------------------------------- dtypes


def relative_error(got, want):
    return float(torch.linalg.vector_norm(got.double() - want) / torch.linalg.vector_norm(want))


@pytest.mark.parametrize("chunk_size", [None, 32])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradient_accuracy_of_low_precision(dtype, chunk_size) -> None:
    """dX and dW in float32 are within 2x the error of the unfused float32 computation
    against float64, in bfloat16 no worse than the unfused bfloat16 one."""
    generator = torch.Generator().manual_seed(11)
    tokens, features, classes = 256, 64, 1000
    x = torch.randn(tokens, features, generator=generator, dtype=torch.float64)
    w = torch.randn(classes, features, generator=generator, dtype=torch.float64) * 0.3
    target = torch.randint(0, classes, (tokens,), generator=generator)
    exact = torch.autograd.grad(
        F.cross_entropy(x.requires_grad_() @ w.requires_grad_().T, target), (x, w)
    )
    low_x, low_w = x.detach().to(dtype).requires_grad_(), w.detach().to(dtype).requires_grad_()
    ours = torch.autograd.grad(
        linear_cross_entropy(low_x, low_w, target, chunk_size=chunk_size), (low_x, low_w)
    )
    unfused = torch.autograd.grad(mt.cross_entropy(low_x @ low_w.T, target), (low_x, low_w))
    factor = 2.0 if dtype == torch.float32 else 1.01  # no worse, to the noise of a rounding
    for got, baseline, want in zip(ours, unfused, exact, strict=True):
        assert got.dtype == dtype
        assert relative_error(got, want) <= factor * relative_error(baseline, want)


@pytest.mark.parametrize(
    ("function", "options"),
    [
        (mt.focal_loss, {"gamma": 2.0, "z_loss": 1e-3}),
        (mt.cross_entropy, {"weight": torch.linspace(0.5, 2.0, V), "label_smoothing": 0.1}),
    ],
    ids=["focal + z-loss", "weighted, smoothed CE"],
)
def test_float32_value_and_gradients_within_a_few_eps(function, options) -> None:
    """Against float64, the value within 4 eps (relative) and each gradient within 8 eps of
    its largest entry (measured: 0.9 and 2.4, as the unfused float32 computation)."""
    x, w, b, target = make(dtype=torch.float32)
    fused = linear_focal_loss if function is mt.focal_loss else linear_cross_entropy
    ours = fused(x, w, target, linear_bias=b, chunk_size=8, **options)
    exact = [t.detach().double().requires_grad_() for t in (x, w, b)]
    wide = {k: v.double() if isinstance(v, torch.Tensor) else v for k, v in options.items()}
    reference = function(exact[0] @ exact[1].T + exact[2], target, axis=-1, **wide)
    eps = torch.finfo(torch.float32).eps
    assert ours.dtype == torch.float32
    assert abs(ours.double() - reference).item() <= 4 * eps * abs(reference).item()
    for got, want in zip(
        torch.autograd.grad(ours, (x, w, b)), torch.autograd.grad(reference, exact), strict=True
    ):
        assert got.dtype == torch.float32
        assert (got.double() - want).abs().max() <= 8 * eps * want.abs().max()


@pytest.mark.parametrize("soft", [False, True], ids=["indices", "probabilities"])
def test_bfloat16_matches_the_unfused_bfloat16_loss(soft) -> None:
    x, w, b, target = make(dtype=torch.bfloat16, soft=soft)
    ours = linear_cross_entropy(x, w, target, linear_bias=b, label_smoothing=0.1, chunk_size=8)
    reference = mt.cross_entropy(x @ w.T + b, target, axis=-1, label_smoothing=0.1)
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours, reference, rtol=2e-2, atol=1e-2)
    for got, want in zip(
        torch.autograd.grad(ours, (x, w, b)), torch.autograd.grad(reference, (x, w, b)), strict=True
    ):
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), want.float(), rtol=5e-2, atol=5e-3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_the_accelerator_path_traces_on_meta_tensors(dtype, reduction) -> None:
    """Off the CPU (here ``meta``, which runs the same code as CUDA: whole-block passes, a
    16-bit product with a float32 result for dW) every shape and dtype comes out right."""
    x, w, b = (torch.empty(shape, device="meta", dtype=dtype) for shape in ((N, D), (V, D), (V,)))
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    target = torch.empty(N, device="meta", dtype=torch.int64)
    loss = linear_focal_loss(x, w, target, linear_bias=b, reduction=reduction, chunk_size=8)
    assert loss.shape == ((N,) if reduction == "none" else ()) and loss.dtype == dtype
    for grad, like in zip(torch.autograd.grad(loss.sum(), (x, w, b)), (x, w, b), strict=True):
        assert grad.shape == like.shape and grad.dtype == dtype and grad.device.type == "meta"


# --------------------------------------------------- parity with F.linear_cross_entropy

CHUNKED_PARITY = [{}, {"weight": True}, {"ignore_index": 3}, {"weight": True, "ignore_index": 3}]
PARITY = [
    *((case, True) for case in CHUNKED_PARITY),  # what PyTorch's chunked path takes
    *((case, False) for case in [*CHUNKED_PARITY, {"label_smoothing": 0.1}, {"soft": True}]),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    ("case", "chunked"),
    PARITY,
    ids=[f"{case} {'chunked' if chunked else 'reference'} path" for case, chunked in PARITY],
)
def test_parity_with_torch_linear_cross_entropy(case, reduction, chunked) -> None:
    options = dict(case)
    soft = options.pop("soft", False)
    x, w, b, target = make(seed=4, soft=soft)
    if options.pop("weight", False):
        options["weight"] = torch.linspace(0.2, 2.0, V, dtype=torch.float64)
    if options.get("ignore_index") == 3:
        target = torch.where(target == -100, 3, target)
    options["reduction"] = reduction
    torch_options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=8) if chunked else None

    def ours(x, w, b):
        return linear_cross_entropy(x, w, target, linear_bias=b, chunk_size=8, **options)

    def theirs(x, w, b):
        if soft:  # PyTorch reads ignore_index=None as "not given" for probabilities
            options.setdefault("ignore_index", None)
        return F.linear_cross_entropy(x, w, target, linear_bias=b, options=torch_options, **options)

    check_against_pytorch(ours, theirs, x, w, b, rtol=1e-11, atol=1e-12)


# --------------------------------------------------------- compile, transforms, 2nd order


def test_compile_fullgraph() -> None:
    x, w, b, target = make(dtype=torch.float32)
    weight = torch.linspace(0.5, 1.5, V)

    def both(x, w, b):
        mean = linear_cross_entropy(
            x, w, target, linear_bias=b, weight=weight, z_loss=1e-3, chunk_size=8
        )
        per_token = linear_focal_loss(x, w, target, linear_bias=b, reduction="none", chunk_size=8)
        return mean + (per_token * torch.arange(N)).sum()

    torch._dynamo.reset()
    compiled = torch.compile(both, fullgraph=True, backend="aot_eager")
    check_against_pytorch(compiled, both, x, w, b, rtol=1e-5, atol=1e-6)


def test_torch_func_grad_and_vmap() -> None:
    x, w, b, target = make()

    def loss(x, w, b):
        return linear_focal_loss(x, w, target, linear_bias=b, alpha=0.25, chunk_size=8)

    def reference(x, w, b):
        return mt.focal_loss(x @ w.T + b, target, axis=-1, alpha=0.25)

    argnums = (0, 1, 2)
    assert_same(
        torch.func.grad(loss, argnums)(x, w, b), torch.func.grad(reference, argnums)(x, w, b)
    )
    batch = torch.randn(3, N, D, dtype=torch.float64)
    assert_same(
        [torch.func.vmap(lambda x: loss(x, w, b))(batch)],
        [torch.func.vmap(lambda x: reference(x, w, b))(batch)],
    )


def test_forward_mode_and_hessian() -> None:
    x, w, b, target = make(tokens=9, classes=7, features=3)
    tangent = torch.randn_like(x)

    def loss(x):
        return linear_cross_entropy(x, w, target, linear_bias=b, z_loss=1e-2, chunk_size=4)

    def reference(x):
        return mt.cross_entropy(x @ w.T + b, target, axis=-1, z_loss=1e-2)

    assert_same(torch.func.jvp(loss, (x,), (tangent,)), torch.func.jvp(reference, (x,), (tangent,)))
    assert_same([torch.func.hessian(loss)(x)], [torch.func.hessian(reference)(x)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_double_backward(reduction) -> None:
    x, w, b, target = make(tokens=11, classes=9, features=4)

    def penalty(loss_fn):
        loss = loss_fn(x, w, b)
        first = torch.autograd.grad(loss.sum(), (x, w, b), create_graph=True)
        return torch.autograd.grad(sum((g**2).sum() for g in first), (x, w, b))

    def ours(x, w, b):
        return linear_cross_entropy(
            x, w, target, linear_bias=b, label_smoothing=0.1, reduction=reduction, chunk_size=4
        )

    def reference(x, w, b):
        return F.cross_entropy(x @ w.T + b, target, label_smoothing=0.1, reduction=reduction)

    assert_same(penalty(ours), penalty(reference))


def test_gradcheck_and_gradgradcheck() -> None:
    x, w, b, target = make(tokens=5, classes=4, features=3)

    def loss(x, w, b):
        return linear_focal_loss(x, w, target, linear_bias=b, gamma=1.5, chunk_size=2)

    assert torch.autograd.gradcheck(loss, (x, w, b))
    assert torch.autograd.gradgradcheck(loss, (x, w, b))


def test_gradients_of_probability_targets_and_weights() -> None:
    x, w, b, target = make(soft=True)
    target.requires_grad_()
    weight = torch.rand(V, dtype=torch.float64, requires_grad=True)

    def ours(x, w, b):
        return linear_cross_entropy(x, w, target, linear_bias=b, weight=weight, chunk_size=8)

    def reference(x, w, b):
        return F.cross_entropy(x @ w.T + b, target, weight=weight)

    ours_grads = torch.autograd.grad(ours(x, w, b), (target, weight))
    assert_same(ours_grads, torch.autograd.grad(reference(x, w, b), (target, weight)))


def test_no_grad_and_frozen_projection() -> None:
    x, w, b, target = make()
    with torch.no_grad():
        value = linear_cross_entropy(x, w, target, linear_bias=b, chunk_size=8)
    reference = F.cross_entropy(x @ w.T + b, target)
    assert_same([value], [reference.detach()])
    frozen = w.detach()
    loss = linear_cross_entropy(x, frozen, target, chunk_size=8)
    (grad_x,) = torch.autograd.grad(loss, x)
    (want,) = torch.autograd.grad(F.cross_entropy(x @ frozen.T, target), x)
    assert_same([grad_x], [want])


def test_backward_twice_with_retain_graph() -> None:
    x, w, b, target = make()
    loss = linear_cross_entropy(x, w, target, linear_bias=b, chunk_size=8)
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first)


def test_torchscript_is_refused() -> None:
    x, w, _, target = make()
    w = w.detach()
    with pytest.raises(NotImplementedError, match="TorchScript"):
        torch.jit.trace(lambda x: linear_cross_entropy(x, w, target), (x.detach(),))


# -------------------------------------------------------------------------------- modules


def test_module_owning_its_projection() -> None:
    torch.manual_seed(0)
    head = LinearCrossEntropyLoss(D, V, weight=torch.linspace(0.5, 1.5, V), chunk_size=8)
    assert head.linear_weight.shape == (V, D) and head.linear_bias.shape == (V,)
    assert set(head.state_dict()) == {"weight", "linear_weight", "linear_bias"}
    bound = 1 / D**0.5
    assert float(head.linear_weight.detach().abs().max()) <= bound
    assert float(head.linear_bias.detach().abs().max()) <= bound
    head = head.double()
    x, _, _, target = make()
    loss = head(x, target)
    reference = F.cross_entropy(
        x @ head.linear_weight.T + head.linear_bias, target, weight=head.weight
    )
    assert_same([loss], [reference])
    loss.backward()
    assert head.linear_weight.grad is not None and head.linear_bias.grad is not None
    assert repr(LinearCrossEntropyLoss(4, 6, bias=False, chunk_size=2)) == (
        "LinearCrossEntropyLoss(in_features=4, num_classes=6, bias=False, ignore_index=-100, "
        "reduction='mean', label_smoothing=0.0, chunk_size=2)"
    )
    no_bias = LinearFocalLoss(D, V, bias=False, dtype=torch.float64)
    assert no_bias.linear_bias is None and no_bias.linear_weight.dtype == torch.float64
    with pytest.raises(TypeError, match=r"loss\(input, target\)"):
        head(x, head.linear_weight, target)


def test_module_taking_its_projection() -> None:
    x, w, b, target = make()
    alpha = torch.linspace(0.1, 1.0, V, dtype=torch.float64)
    criterion = LinearFocalLoss(gamma=1.5, alpha=alpha, reduction="sum", chunk_size=8)
    assert list(criterion.parameters()) == [] and set(criterion.state_dict()) == {"alpha"}
    reference = mt.focal_loss(x @ w.T + b, target, axis=-1, gamma=1.5, alpha=alpha, reduction="sum")
    assert_same([criterion(x, w, target, b)], [reference])
    assert_same([criterion(x, w, target, linear_bias=b)], [reference])
    plain = LinearCrossEntropyLoss(label_smoothing=0.1)
    assert_same([plain(x, w, target)], [F.cross_entropy(x @ w.T, target, label_smoothing=0.1)])
    assert_same(
        [plain(x, w, target, normalizer=10)],
        [F.cross_entropy(x @ w.T, target, label_smoothing=0.1, reduction="sum") / 10],
    )
    with pytest.raises(TypeError, match="takes its projection"):
        plain(x, target)
    with pytest.raises(TypeError, match="in_features and num_classes"):
        LinearCrossEntropyLoss(16)
    with pytest.raises(ValueError, match="num_classes"):
        LinearFocalLoss(16, 0)
    with pytest.raises(ValueError, match="chunk_size"):
        LinearCrossEntropyLoss(chunk_size=0)


# ------------------------------------------------------------------------------ bad input


# The catalogue's messages (multiloss._core._checks.check_linear_operands), as in every
# backend (issue 20); the torch adapter adds only its tensor and device checks.
BAD_INPUT = {
    "input not a tensor": (TypeError, "input must be a torch.Tensor", {"input": "list"}),
    "integer input": (TypeError, "input must have a real floating", {"input": "int"}),
    "0-d input": (ValueError, "input must have at least one dimension", {"input": "0-d"}),
    "1-d weight": (ValueError, r"linear_weight must have shape \(", {"linear_weight": "1-d"}),
    "3-d weight": (ValueError, r"linear_weight must have shape \(", {"linear_weight": "3-d"}),
    "features": (ValueError, "the last axis of input", {"linear_weight": "narrow"}),
    "no classes": (ValueError, "at least one class", {"linear_weight": "empty"}),
    "bias shape": (ValueError, "linear_bias must have shape", {"linear_bias": "short"}),
    "weight dtype": (TypeError, "linear_weight must have the input's", {"linear_weight": "f32"}),
    "bias dtype": (TypeError, "linear_bias must have the input's dtype", {"linear_bias": "f32"}),
    "chunk float": (TypeError, "chunk_size", {"chunk_size": 2.5}),
    "chunk bool": (TypeError, "chunk_size", {"chunk_size": True}),
    "chunk 0": (ValueError, "chunk_size", {"chunk_size": 0}),
    "target shape": (ValueError, "target of class indices", {"target": "short"}),
    "class index": (ValueError, "target", {"target": "out of range"}),
    "class weights": (ValueError, "(weight|alpha) must have one entry", {"weight": torch.ones(3)}),
    "reduction": (ValueError, "reduction", {"reduction": "avg"}),
    "smoothing": (ValueError, "label_smoothing", {"label_smoothing": 2.0}),
    "softcap": (ValueError, "softcap", {"softcap": -1.0}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_names_the_argument(case) -> None:
    error, message, change = BAD_INPUT[case]
    x, w, b, target = make()
    call = {"input": x, "linear_weight": w, "target": target, "linear_bias": b}
    variants = {
        ("input", "list"): x.tolist(),
        ("input", "int"): target,
        ("input", "0-d"): x[0, 0],
        ("linear_weight", "1-d"): w[0],
        ("linear_weight", "3-d"): w[None],
        ("linear_weight", "narrow"): w[:, :5],
        ("linear_weight", "empty"): w[:0],
        ("linear_weight", "f32"): w.float(),
        ("linear_bias", "short"): b[:3],
        ("linear_bias", "f32"): b.float(),
        ("target", "short"): target[:-1],
        ("target", "out of range"): torch.full_like(target, V),
    }
    for key, value in change.items():
        call[key] = variants.get((key, value), value) if isinstance(value, str) else value
    for function in (linear_cross_entropy, linear_focal_loss):
        options = dict(call)
        if function is linear_focal_loss and "weight" in options:
            options["alpha"] = options.pop("weight")
        with pytest.raises(error, match=message):
            function(**options)
    with pytest.raises(ValueError, match="gamma"):
        linear_focal_loss(x, w, target, gamma=-1.0)
