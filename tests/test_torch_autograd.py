"""multiloss.torch: the autograd machinery.

* ``gradcheck`` / ``gradgradcheck`` in float64 over a grid of options (the backward is the
  core's closed form; the double backward its closed-form Hessian-vector product);
* forward mode (``jvp``), ``torch.func`` (``vmap``, ``grad``, ``hessian``);
* ``torch.compile(fullgraph=True)`` (the AOT-eager backend here; inductor in the module
  tests), with the value checks off and NaN for an out-of-range index under tracing;
* no data-dependent host work: everything runs on the meta device;
* what is kept for backward: nothing of size N×C besides the logits.
"""

from __future__ import annotations

import functools

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import multiloss.torch as mt  # noqa: E402

gradcheck = functools.partial(torch.autograd.gradcheck, eps=1e-6, atol=1e-6, rtol=1e-5)
gradgradcheck = functools.partial(torch.autograd.gradgradcheck, eps=1e-6, atol=1e-6, rtol=1e-5)


def logits_of(shape, seed=0, scale=2.0):
    generator = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=generator, dtype=torch.float64)).requires_grad_()


def indices_of(shape, num_classes, seed=0, ignore=None):
    generator = torch.Generator().manual_seed(seed + 100)
    target = torch.randint(0, num_classes, shape, generator=generator)
    if ignore is not None:
        target.view(-1)[0] = ignore
    return target


# ---------------------------------------------------------------- first and second order

FOCAL_VARIANTS = {
    "plain": ((3, 4), {}),
    "ignore": ((3, 4), {"ignore_index": 255}),
    "smoothing": ((3, 4), {"label_smoothing": 0.1}),
    "K-dim": ((2, 3, 2), {"ignore_index": 1}),
}


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, [0.25, 0.5, 1.0, 2.0]], ids=["no alpha", "alpha"])
@pytest.mark.parametrize("variant", list(FOCAL_VARIANTS))
def test_focal_gradcheck_and_gradgradcheck(gamma, alpha, variant):
    shape, options = FOCAL_VARIANTS[variant]
    num_classes = shape[1]
    alpha = None if alpha is None else alpha[:num_classes]
    z = logits_of(shape, seed=int(gamma * 4))
    target = indices_of(shape[:1] + shape[2:], num_classes, ignore=options.get("ignore_index"))

    def loss(logits):
        return mt.focal_loss(logits, target, gamma=gamma, alpha=alpha, **options)

    assert gradcheck(loss, (z,))
    assert gradgradcheck(loss, (z,))


CE_VARIANTS = {
    "weight, ignore, sum": (
        lambda z: mt.cross_entropy(
            z,
            indices_of((4,), 3, ignore=2),
            weight=[0.5, 2.0, 1.0],
            ignore_index=2,
            reduction="sum",
        ),
        (4, 3),
    ),
    "weight, smoothing, mean": (
        lambda z: mt.cross_entropy(
            z, indices_of((4,), 3), weight=[0.5, 2.0, 1.0], label_smoothing=0.2
        ),
        (4, 3),
    ),
    "probabilities, none": (
        lambda z: mt.cross_entropy(
            z, torch.softmax(logits_of((3, 4), 9).detach(), 1), reduction="none"
        ),
        (3, 4),
    ),
    "K-dim, none": (
        lambda z: mt.cross_entropy(z, indices_of((2, 2), 3, ignore=-100), reduction="none"),
        (2, 3, 2),
    ),
    "unbatched": (lambda z: mt.cross_entropy(z, torch.tensor(1)), (4,)),
    "focal soft, smoothing, none": (
        lambda z: mt.focal_loss(
            z,
            torch.softmax(logits_of((3, 4), 9).detach(), 1),
            gamma=1.5,
            alpha=0.25,
            label_smoothing=0.1,
            reduction="none",
        ),
        (3, 4),
    ),
    "focal, gamma 0.5, none": (
        lambda z: mt.focal_loss(z, indices_of((3,), 4), gamma=0.5, reduction="none"),
        (3, 4),
    ),
    "bce, weight, pos_weight": (
        lambda z: mt.binary_cross_entropy(
            z,
            (logits_of((3, 4), 5) > 0).double(),
            weight=[[1.0], [2.0], [0.5]],
            pos_weight=[1.0, 2.0, 3.0, 0.5],
        ),
        (3, 4),
    ),
    "bce soft, none": (
        lambda z: mt.binary_cross_entropy(
            z, torch.sigmoid(logits_of((3, 4), 5)).detach(), reduction="none"
        ),
        (3, 4),
    ),
}
for _gamma in (0.0, 0.5, 2.0, 5.0):
    CE_VARIANTS[f"sigmoid focal, gamma {_gamma}"] = (
        lambda z, g=_gamma: mt.sigmoid_focal_loss(
            z, (logits_of((3, 4), 6) > 0).double(), gamma=g, reduction="sum"
        ),
        (3, 4),
    )
CE_VARIANTS["sigmoid focal, no alpha, none"] = (
    lambda z: mt.sigmoid_focal_loss(
        z, torch.sigmoid(logits_of((3, 4), 6)).detach(), alpha=None, reduction="none"
    ),
    (3, 4),
)


@pytest.mark.parametrize("variant", list(CE_VARIANTS))
def test_gradcheck_and_gradgradcheck(variant):
    loss, shape = CE_VARIANTS[variant]
    z = logits_of(shape, seed=3)
    assert gradcheck(loss, (z,), check_batched_grad=True)
    assert gradgradcheck(loss, (z,), check_batched_grad=True)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    "variant",
    [
        "weight, smoothing, mean",
        "K-dim, none",
        "focal soft, smoothing, none",
        "focal, gamma 0.5, none",
        "bce, weight, pos_weight",
        "sigmoid focal, gamma 2.0",
    ],
)
def test_forward_mode(variant):
    loss, shape = CE_VARIANTS[variant]
    z = logits_of(shape, seed=4)
    assert gradcheck(
        loss, (z,), check_forward_ad=True, check_backward_ad=False, check_undefined_grad=False
    )
    assert gradgradcheck(loss, (z,), check_fwd_over_rev=True)


def test_double_backward_gives_the_hessian():
    target = indices_of((3,), 4)
    z = logits_of((3, 4), 7).detach()

    def ours(logits):
        return mt.focal_loss(logits, target, gamma=2.0, alpha=[0.5, 1.0, 1.5, 2.0])

    def textbook(logits):
        log_pt = torch.log_softmax(logits, 1).gather(1, target[:, None])[:, 0]
        alpha_t = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=torch.float64)[target]
        return (-alpha_t * (1 - log_pt.exp()) ** 2 * log_pt).mean()

    expected = torch.autograd.functional.hessian(textbook, z)
    torch.testing.assert_close(torch.autograd.functional.hessian(ours, z), expected)
    torch.testing.assert_close(torch.func.hessian(ours)(z), expected)  # forward over reverse
    torch.testing.assert_close(torch.func.jacfwd(torch.func.jacrev(ours))(z), expected)


# ---------------------------------------------------------------- torch.func


def test_vmap_of_the_loss_and_of_its_gradient():
    logits = logits_of((5, 4, 3), 8).detach()
    target = indices_of((5, 4), 3, ignore=255)

    def loss(z, t):
        return mt.focal_loss(z, t, gamma=2.0, ignore_index=255)

    looped = torch.stack([loss(logits[i], target[i]) for i in range(5)])
    torch.testing.assert_close(torch.func.vmap(loss)(logits, target), looped)
    grads = torch.stack([torch.func.grad(loss)(logits[i], target[i]) for i in range(5)])
    torch.testing.assert_close(torch.func.vmap(torch.func.grad(loss))(logits, target), grads)
    y = (logits > 0).double()
    sig = torch.func.vmap(lambda z, t: mt.sigmoid_focal_loss(z, t))(logits, y)
    torch.testing.assert_close(
        sig, torch.stack([mt.sigmoid_focal_loss(logits[i], y[i]) for i in range(5)])
    )


def test_torch_func_grad_equals_autograd_and_the_fast_path_is_exact():
    """torch.func runs the generic array-API path, plain eager the native fast path."""
    logits = logits_of((6, 5), 10).detach()
    target = indices_of((6,), 5, ignore=255)
    for options in ({"gamma": 0.0}, {"gamma": 0.5, "alpha": 0.25}, {"gamma": 2.0}):
        options["ignore_index"] = 255
        generic = torch.func.grad(lambda z, o=options: mt.focal_loss(z, target, **o))(logits)
        z = logits.clone().requires_grad_()
        mt.focal_loss(z, target, **options).backward()
        assert torch.equal(z.grad, generic)


def test_jvp_along_a_target_tangent_is_pytorchs():
    logits = logits_of((3, 4), 11).detach()
    soft = torch.softmax(logits_of((3, 4), 12).detach(), 1)
    tangent = logits_of((3, 4), 13).detach()
    ours = torch.func.jvp(lambda t: mt.cross_entropy(logits, t), (soft,), (tangent,))
    theirs = torch.func.jvp(lambda t: F.cross_entropy(logits, t), (soft,), (tangent,))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_second_order_through_a_target_is_refused():
    logits = logits_of((3, 4), 11)
    soft = torch.softmax(logits_of((3, 4), 12).detach(), 1).requires_grad_()
    loss = mt.cross_entropy(logits, soft.detach())
    (grad,) = torch.autograd.grad(loss, logits, create_graph=True)
    assert grad.requires_grad  # logits-only second order is unaffected
    # With the target requiring grad, the logits' gradient would miss its dependence on the
    # target: refused, even where only the logits' gradient is asked for.
    with pytest.raises(NotImplementedError, match="second derivatives through target"):
        torch.autograd.grad(mt.cross_entropy(logits, soft), logits, create_graph=True)


# ---------------------------------------------------------------- compile, tracing, devices


def _compiled(function):
    return torch.compile(function, fullgraph=True, backend="aot_eager")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_compile_fullgraph_gives_the_eager_numbers():
    logits = logits_of((4, 5, 3), 13).detach().float()
    target = indices_of((4, 3), 5, ignore=255)
    y = (logits > 0).float()
    calls = {
        "ce": lambda z: mt.cross_entropy(
            z, target, weight=[1.0, 2, 3, 4, 5], ignore_index=255, label_smoothing=0.1
        ),
        "focal": lambda z: mt.focal_loss(z, target, gamma=2.0, alpha=0.25, ignore_index=255),
        "bce": lambda z: mt.binary_cross_entropy(z, y, pos_weight=[1.0, 2.0, 3.0]),
        "sigmoid focal": lambda z: mt.sigmoid_focal_loss(z, y, reduction="sum"),
    }
    for name, call in calls.items():
        eager_z, compiled_z = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        eager, compiled = call(eager_z), _compiled(call)(compiled_z)
        eager.backward()
        compiled.backward()
        torch.testing.assert_close(compiled, eager, msg=name)
        torch.testing.assert_close(compiled_z.grad, eager_z.grad, msg=name)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_value_checks_run_on_cpu_eager_and_give_nan_under_tracing():
    logits = torch.randn(4, 3)
    bad = torch.tensor([0, 1, 3, 2])
    with pytest.raises(ValueError, match="out of range"):
        mt.cross_entropy(logits, bad)
    with pytest.raises(ValueError, match="non-negative"):
        mt.cross_entropy(logits, torch.tensor([0, 1, 2, 2]), weight=[1.0, -1.0, 1.0])
    # No data-dependent check where the data cannot be read without a sync or a trace:
    compiled = _compiled(lambda z, t: mt.cross_entropy(z, t, reduction="none"))(logits, bad)
    assert torch.isnan(compiled[2]) and bool(torch.all(torch.isfinite(compiled[[0, 1, 3]])))
    assert torch.isnan(_compiled(lambda z, t: mt.focal_loss(z, t))(logits, bad))
    vmapped = torch.func.vmap(lambda z, t: mt.cross_entropy(z, t))(logits, bad)
    assert torch.isnan(vmapped[2]) and not torch.isnan(vmapped[0])


@pytest.mark.parametrize(
    "call",
    [
        lambda z, t, y: mt.cross_entropy(z, t, weight=[1.0, 2, 3], ignore_index=1),
        lambda z, t, y: mt.cross_entropy(z, y.softmax(1), label_smoothing=0.1, reduction="none"),
        lambda z, t, y: mt.focal_loss(z, t, gamma=0.5, alpha=0.25, label_smoothing=0.1),
        lambda z, t, y: mt.FocalLoss(alpha=[1.0, 2, 3]).to("meta")(z, t),
        lambda z, t, y: mt.binary_cross_entropy(z, y, pos_weight=[1.0, 2.0]),
        lambda z, t, y: mt.sigmoid_focal_loss(z, y),
    ],
    ids=["ce", "ce soft", "focal", "module", "bce", "sigmoid focal"],
)
def test_runs_on_the_meta_device_without_reading_data(call):
    """Meta tensors have no data: a hidden .item(), bool() or .cpu() would raise here."""
    z = torch.empty(4, 3, 2, device="meta", requires_grad=True)
    t = torch.empty(4, 2, dtype=torch.long, device="meta")
    y = torch.empty(4, 3, 2, device="meta")
    loss = call(z, t, y)
    assert loss.device.type == "meta"
    (grad,) = torch.autograd.grad(loss, z, torch.ones_like(loss), create_graph=True)
    assert grad.shape == z.shape and grad.device.type == "meta"
    torch.autograd.grad(grad, z, torch.ones_like(grad))


# ---------------------------------------------------------------- memory kept for backward


def _saved_storages(call, logits, *keep):
    """Bytes of the storages kept for backward, except those of `keep` (each once)."""
    excluded = {tensor.untyped_storage().data_ptr() for tensor in keep}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = call(logits)
    loss.sum().backward()
    return sum(storages.values())


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_nothing_of_size_n_by_c_is_kept_besides_the_logits(dtype):
    n, c = 512, 64
    logits = torch.randn(n, c, dtype=getattr(torch, dtype), requires_grad=True)
    target = torch.randint(0, c, (n,))
    # a few O(N) arrays (the row max and log-sum-exp kept since the target's log-probability
    # is formed apart from them), the O(C) class vector and the mean's 0-d scale: far
    # below one N×C array
    budget = 8 * n * 4 + 4 * c + 4
    for call in (
        lambda z: mt.cross_entropy(z, target, weight=torch.ones(c), ignore_index=3),
        lambda z: mt.focal_loss(z, target, gamma=2.0, alpha=0.25),
        lambda z: mt.focal_loss(z, target, gamma=0.5, reduction="none"),
    ):
        assert _saved_storages(call, logits, logits) <= budget
    y = (torch.rand(n, c) > 0.5).to(logits.dtype)
    for call in (
        lambda z: mt.binary_cross_entropy(z, y, pos_weight=torch.ones(c)),
        lambda z: mt.sigmoid_focal_loss(z, y),
    ):
        assert _saved_storages(call, logits, logits, y) <= budget
    # PyTorch keeps its log-softmax output, an N×C array.
    assert _saved_storages(lambda z: F.cross_entropy(z.float(), target), logits, logits) >= n * c
