"""multiloss.jax: derivatives in every mode, to second order, also at saturated logits.

The losses are ``custom_jvp`` functions over the core's closed-form gradient, whose own
JVP is the core's closed-form Hessian-vector product. Checked here: finite differences
(``jax.test_util.check_grads``) to order 2 in forward and reverse mode; agreement with
JAX's automatic derivatives of naive formulas written from the math (not the core);
finiteness of gradients and Hessians at saturated logits for γ < 1; shift invariance.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from jax.test_util import check_grads  # noqa: E402

import multiloss.jax as mlj  # noqa: E402

RNG = np.random.default_rng(7)
GAMMAS = [0.0, 0.25, 0.5, 1.0, 2.0, 5.0]
C = 4
ALPHA = [0.25, 1.0, 2.0, 0.5]


def naive_focal(z, target, *, gamma, alpha=None, smoothing=0.0, ignore_index=-100,
                reduction="mean", axis=-1):  # fmt: skip
    """-Σ_k q_k α_k (1 - p_k)^γ log p_k straight from the definition (autodiff-able)."""
    z = jnp.moveaxis(z, axis, -1)
    log_p = jax.nn.log_softmax(z, axis=-1)
    if jnp.issubdtype(target.dtype, jnp.integer):
        counted = target != ignore_index
        q = jax.nn.one_hot(jnp.where(counted, target, 0), z.shape[-1]) * counted[..., None]
        q = q * (1 - smoothing) + smoothing / z.shape[-1] * counted[..., None]
        count = jnp.sum(counted)
    else:
        target = jnp.moveaxis(target, axis, -1)
        q = target * (1 - smoothing) + smoothing / z.shape[-1]
        count = target[..., 0].size
    weight = 1.0 if alpha is None else jnp.asarray(alpha)
    per = -jnp.sum(q * weight * (1 - jnp.exp(log_p)) ** gamma * log_p, axis=-1)
    return {"none": per, "sum": per.sum(), "mean": per.sum() / count}[reduction]


def naive_sigmoid_focal(x, y, *, gamma, alpha=0.25, reduction="mean"):
    p = jax.nn.sigmoid(x)
    ce = y * jax.nn.softplus(-x) + (1 - y) * jax.nn.softplus(x)
    per = (1 - (p * y + (1 - p) * (1 - y))) ** gamma * ce
    if alpha is not None:
        per = per * (alpha * y + (1 - alpha) * (1 - y))
    return {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]


def softmax_case(config: str):
    """(logits, target, options) for one configuration of the grid (float64, small)."""
    if config == "kdim-soft":
        logits = RNG.normal(size=(2, C, 3)) * 1.5  # class axis 1
        target = RNG.dirichlet(np.ones(C), size=(2, 3)).transpose(0, 2, 1)
        return logits, target, {"axis": 1, "reduction": "sum"}
    logits = RNG.normal(size=(3, C)) * 1.5
    target = np.array([0, 3, 1])
    if config == "alpha-ignore":
        target = np.array([2, -100, 1])
        return logits, target, {"alpha": ALPHA, "ignore_index": -100}
    if config == "smoothing":
        return logits, target, {"label_smoothing": 0.2, "reduction": "none"}
    return logits, target, {}


@pytest.mark.parametrize("config", ["plain", "alpha-ignore", "smoothing", "kdim-soft"])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_focal_check_grads_order_2(gamma, config):
    logits, target, options = softmax_case(config)
    y = jnp.asarray(target)

    def loss(z):
        return mlj.focal_loss(z, y, gamma=gamma, **options)

    check_grads(loss, (jnp.asarray(logits),), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("options", [{}, {"weight": ALPHA, "label_smoothing": 0.1}])
def test_cross_entropy_check_grads_order_2(options):
    logits, target, _ = softmax_case("plain")
    y = jnp.asarray(target)
    check_grads(
        lambda z: mlj.cross_entropy(z, y, **options),
        (jnp.asarray(logits),),
        order=2,
        modes=("fwd", "rev"),
    )


@pytest.mark.parametrize("gamma", GAMMAS)
def test_sigmoid_losses_check_grads_order_2(gamma):
    x = jnp.asarray(RNG.normal(size=(3, 4)) * 2)
    y = jnp.asarray(np.concatenate([RNG.integers(0, 2, size=(3, 2)), RNG.uniform(size=(3, 2))], 1))
    check_grads(
        lambda x: mlj.sigmoid_focal_loss(x, y, gamma=gamma, alpha=0.25, reduction="none"),
        (x,),
        order=2,
        modes=("fwd", "rev"),
    )
    if gamma == 0:
        weight, pos_weight = jnp.asarray(RNG.uniform(size=(3, 1))), jnp.asarray(ALPHA)
        check_grads(
            lambda x: mlj.binary_cross_entropy(x, y, weight=weight, pos_weight=pos_weight),
            (x,),
            order=2,
            modes=("fwd", "rev"),
        )


# ------------------------------------------------------------------ against naive autodiff


@pytest.mark.parametrize("config", ["plain", "alpha-ignore", "smoothing", "kdim-soft"])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_hessian_matches_autodiff_of_the_definition(gamma, config):
    logits, target, options = softmax_case(config)
    z, y = jnp.asarray(logits), jnp.asarray(target)
    naive_options = {("smoothing" if k == "label_smoothing" else k): v for k, v in options.items()}

    def ours(z):
        return jnp.sum(mlj.focal_loss(z, y, gamma=gamma, **options))

    def naive(z):
        return jnp.sum(naive_focal(z, y, gamma=gamma, **naive_options))

    expected = jax.hessian(naive)(z)
    np.testing.assert_allclose(jax.hessian(ours)(z), expected, rtol=1e-10, atol=1e-12)


def test_second_derivatives_agree_in_every_mode():
    logits, target, _ = softmax_case("smoothing")
    z, y = jnp.asarray(logits), jnp.asarray(target)

    def loss(z):
        return mlj.focal_loss(z, y, gamma=0.5, alpha=ALPHA, label_smoothing=0.1)

    hessian = jax.hessian(loss)(z)  # forward over reverse
    np.testing.assert_allclose(jax.jacrev(jax.jacrev(loss))(z), hessian, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jax.jacfwd(jax.jacfwd(loss))(z), hessian, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jax.jit(jax.hessian(loss))(z), hessian, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_hessian_matches_autodiff_of_the_definition(gamma):
    x = jnp.asarray(RNG.normal(size=(3, 4)) * 2)
    y = jnp.asarray(np.concatenate([RNG.integers(0, 2, size=(3, 2)), RNG.uniform(size=(3, 2))], 1))
    expected = jax.hessian(lambda x: naive_sigmoid_focal(x, y, gamma=gamma))(x)
    got = jax.hessian(lambda x: mlj.sigmoid_focal_loss(x, y, gamma=gamma))(x)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)


def test_forward_mode_equals_reverse_mode():
    logits, target, _ = softmax_case("plain")
    z, y = jnp.asarray(logits), jnp.asarray(target)
    tangent = jnp.asarray(RNG.normal(size=z.shape))
    for options in ({"reduction": "mean"}, {"reduction": "none", "label_smoothing": 0.1}):
        function = functools.partial(mlj.focal_loss, target=y, gamma=1.5, **options)
        value, directional = jax.jvp(function, (z,), (tangent,))
        np.testing.assert_allclose(value, function(z), rtol=1e-14)
        jacobian = jax.jacrev(function)(z)
        np.testing.assert_allclose(jax.jacfwd(function)(z), jacobian, rtol=1e-12, atol=1e-15)
        expected = jnp.tensordot(jacobian, tangent, axes=tangent.ndim)
        np.testing.assert_allclose(directional, expected, rtol=1e-12, atol=1e-15)


def test_hessian_vector_product_under_jit_and_vmap():
    logits, target, _ = softmax_case("alpha-ignore")
    z, y = jnp.asarray(logits), jnp.asarray(target)

    def loss(z):
        return mlj.focal_loss(z, y, gamma=0.5, alpha=ALPHA)

    def hvp(t):
        return jax.jvp(jax.grad(loss), (z,), (t,))[1]

    tangents = jnp.asarray(RNG.normal(size=(5, *z.shape)))
    batched = jax.jit(jax.vmap(hvp))(tangents)
    hessian = jax.hessian(loss)(z).reshape(z.size, z.size)
    expected = tangents.reshape(5, -1) @ hessian.T
    np.testing.assert_allclose(batched.reshape(5, -1), expected, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ saturated logits


@pytest.mark.parametrize("scale", [100.0, 1e4])
@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_focal_gradient_and_hessian_finite_at_saturated_logits(scale, gamma, smoothing):
    # Row 0 confidently right (p_t = 1, where (1-p)^γ has an infinite slope), row 1 wrong,
    # row 2 right with a runner-up. Shapes as in the grid above (eager op caches).
    z = jnp.asarray(
        [
            [scale, -scale, -scale, 0.0],
            [scale, -scale, 0.0, -scale],
            [-scale, -scale, scale, scale / 2],
        ]
    )
    y = jnp.asarray([0, 1, 2])

    def loss(z):
        return mlj.focal_loss(z, y, gamma=gamma, label_smoothing=smoothing, alpha=ALPHA)

    value, grad = jax.value_and_grad(loss)(z)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    for hessian in (jax.hessian(loss)(z), jax.jacrev(jax.jacrev(loss))(z)):
        assert np.all(np.isfinite(hessian))
        flat = np.asarray(hessian).reshape(z.size, z.size)
        np.testing.assert_allclose(flat, flat.T, atol=1e-12)
    if smoothing == 0:
        # the saturated rows have a Hessian of ~u^γ·u = 0 in float64
        assert np.all(np.abs(np.asarray(jax.hessian(loss)(z))[0, :, 0, :]) < 1e-30)


@pytest.mark.parametrize("scale", [100.0, 1e4])
@pytest.mark.parametrize("gamma", [0.25, 0.5])
def test_sigmoid_focal_gradient_and_hessian_finite_at_saturated_logits(scale, gamma):
    x = jnp.asarray([scale, -scale, -scale, scale, 0.0])
    y = jnp.asarray([1.0, 0.0, 1.0, 0.0, 1.0])

    def loss(x):
        return mlj.sigmoid_focal_loss(x, y, gamma=gamma)

    assert np.all(np.isfinite(jax.grad(loss)(x)))
    for hessian in (jax.hessian(loss)(x), jax.jacrev(jax.jacrev(loss))(x)):
        assert np.all(np.isfinite(hessian))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cross_entropy", {}),
        ("cross_entropy", {"label_smoothing": 0.1}),
        ("focal_loss", {"gamma": 2.0}),
        ("focal_loss", {"gamma": 0.5, "alpha": 0.25}),
    ],
)
def test_shift_invariance_at_one_million(name, options, dtype):
    # Logits on a 1/8 grid: z + 1e6 is exact in float32 (spacing 1/16 there) and float64.
    z = jnp.asarray(RNG.integers(-40, 40, size=(6, 5)) / 8, dtype=getattr(jnp, dtype))
    y = jnp.asarray(RNG.integers(0, 5, size=6))
    function = jax.jit(jax.value_and_grad(functools.partial(getattr(mlj, name), **options)))
    value, grad = function(z, y)
    shifted_value, shifted_grad = function(z + 1e6, y)
    assert np.isfinite(shifted_value)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(shifted_value, value, rtol=4 * eps, atol=4 * eps)
    np.testing.assert_allclose(shifted_grad, grad, rtol=4 * eps, atol=4 * eps)


# ------------------------------------------------------------------ logits only


def test_second_derivatives_through_other_arguments_are_refused():
    z = jnp.asarray(RNG.normal(size=(3, C)))
    q = jax.nn.softmax(jnp.asarray(RNG.normal(size=(3, C))))
    weight = jnp.asarray(ALPHA)
    # first order with respect to them works (values: tests/test_operand_gradients.py) ...
    assert jnp.all(jnp.isfinite(jax.grad(lambda q: mlj.cross_entropy(z, q))(q)))
    # ... a second derivative through them raises, naming the argument
    with pytest.raises(NotImplementedError, match="second derivatives through target"):
        jax.hessian(lambda q: mlj.cross_entropy(z, q))(q)
    with pytest.raises(NotImplementedError, match=r"through weight \(or alpha\)"):
        jax.hessian(lambda w: mlj.cross_entropy(z, q, weight=w))(weight)
    with pytest.raises(NotImplementedError, match="through pos_weight"):
        jax.jit(jax.hessian(lambda w: mlj.binary_cross_entropy(z, q, pos_weight=w)))(weight)
    with pytest.raises(NotImplementedError, match=r"through weight \(or alpha\)"):  # mixed
        jax.grad(lambda w: jnp.sum(jax.grad(mlj.focal_loss)(z, q, alpha=w) ** 2))(weight)
    # stop_gradient on the other arguments, or closing over them, is the way
    hessian = jax.hessian(lambda z, q: mlj.cross_entropy(z, jax.lax.stop_gradient(q)))(z, q)
    np.testing.assert_allclose(hessian, jax.hessian(lambda z: mlj.cross_entropy(z, q))(z))
