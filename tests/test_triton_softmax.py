"""The softmax family's Triton kernels (``engine("triton")``), in Triton's interpreter on
CPU tensors, against the independent float64 oracles of ``tests/oracles.py``.

* every softmax case of ``tests/cases.py`` (shapes, axes, weights, alpha, ignore_index,
  label smoothing, probability targets, γ), each reduction, float32, loss and gradient
  within the core's bound of 8 eps;
* z-loss, soft-capping and the poly term over class indices, smoothing and probabilities;
* float16 logits (the loss and gradient in float16, computed in float32);
* confident rows: the loss relatively exact at margins where float32 `lse - z_t` is 0;
* -inf and ±1e4 logits, γ < 1 at p_t = 1, all-ignored and empty batches, out-of-range
  labels that were not checked (NaN), ``normalizer=``;
* the split-row path (3 × 70000) and the vocabulary-shard partials.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import cases
import mpmath
import numpy as np
import oracles
import pytest
from backends import assert_eps

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import multiloss.torch as mt  # noqa: E402
from multiloss import _core  # noqa: E402
from multiloss.torch._triton import softmax as kernels  # noqa: E402

pytestmark = [
    # the interpreter evaluates both sides of a select with NumPy: 0 · inf off the row,
    # log 0 (u^γ = exp(γ log u) at u = 0, tiles' lanes past the last row)
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
]

BOUND = 8
"""eps of the compute dtype, as the core's float32 tests (tests/test_core_values.py)."""
LOSSES = {"cross_entropy": mt.cross_entropy, "focal_loss": mt.focal_loss, "poly_loss": mt.poly_loss}


def _tensor(value, dtype):
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.integer):
        return torch.from_numpy(array.astype(np.int64))
    return torch.from_numpy(array).to(dtype)


def _options(options, dtype):
    return {
        k: torch.tensor(v, dtype=dtype) if isinstance(v, np.ndarray) else v
        for k, v in options.items()
    }


def ran_kernels(loss):
    """Whether the softmax forward operator is in the loss's autograd graph."""
    todo = [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is None:
            continue
        if "softmax_forward" in type(node).__name__:
            return True
        todo.extend(next_node for next_node, _ in node.next_functions)
    return False


def kernel_value_and_grad(name, logits, target, dtype, **options):
    """The loss and its unit-cotangent gradient through the kernels, as float64 arrays."""
    z = _tensor(logits, dtype).requires_grad_(True)
    target_dtype = torch.float32 if dtype == torch.float16 else dtype
    with mt.engine("triton"):
        loss = LOSSES[name](z, _tensor(target, target_dtype), **_options(options, target_dtype))
    assert ran_kernels(loss), "the kernels did not run"
    assert loss.dtype == dtype
    loss.backward(torch.ones_like(loss))
    return loss.detach().double().numpy(), z.grad.double().numpy()


def oracle(name, logits, target, dtype, **options):
    """The float64 oracle on the inputs rounded to `dtype`."""
    numpy_dtype = {torch.float32: np.float32, torch.float16: np.float16}[dtype]
    logits = np.asarray(logits).astype(numpy_dtype).astype(np.float64)
    target = np.asarray(target)
    if np.issubdtype(target.dtype, np.floating):
        target = target.astype(np.float32).astype(np.float64)
    options = {
        k: np.asarray(v, np.float32).astype(np.float64) if isinstance(v, np.ndarray) else v
        for k, v in options.items()
    }
    return oracles.NUMPY_EXT[name](logits, target, **options)


def check(name, logits, target, dtype=torch.float32, bound=BOUND, **options):
    loss, grad = kernel_value_and_grad(name, logits, target, dtype, **options)
    ref_loss, ref_grad = oracle(name, logits, target, dtype, **options)
    eps_dtype = "float16" if dtype == torch.float16 else "float32"
    assert_eps(loss, ref_loss, eps_dtype, bound, "loss", equal_nan=False, equal_inf=True)
    assert_eps(grad, ref_grad, eps_dtype, bound, "gradient", equal_nan=False, equal_inf=False)


def _with_reductions():
    for index, case in enumerate(cases.softmax_cases()):
        reduction = cases.REDUCTIONS[index % 3]
        yield pytest.param(case.values[0], reduction, id=f"{case.id}-{reduction}")


@pytest.mark.parametrize(("case", "reduction"), list(_with_reductions()))
def test_cases_against_oracle(case, reduction):
    name, logits, target, options = case
    check(name, logits, target, reduction=reduction, **options)


RNG = np.random.default_rng(2026)
LOGITS = RNG.normal(scale=2.5, size=(6, 5))
HARD = np.array([0, 4, 2, -100, 1, 3])
SOFT = RNG.dirichlet(np.ones(5), size=6)
ALPHA = np.array([0.5, 2.0, 1.0, 0.25, 1.5])


@pytest.mark.parametrize(
    ("name", "target", "options"),
    [
        ("cross_entropy", HARD, {"z_loss": 1e-2, "weight": ALPHA}),
        ("cross_entropy", HARD, {"softcap": 3.0, "label_smoothing": 0.2, "reduction": "none"}),
        ("cross_entropy", SOFT, {"z_loss": 1e-2, "softcap": 4.0, "reduction": "sum"}),
        ("cross_entropy", HARD, {"z_loss": 1e-2, "label_smoothing": 0.1, "weight": ALPHA}),
        ("focal_loss", HARD, {"z_loss": 1e-2, "alpha": ALPHA, "gamma": 2.0}),
        ("focal_loss", HARD, {"softcap": 2.0, "gamma": 0.5, "reduction": "sum"}),
        ("focal_loss", SOFT, {"z_loss": 1e-2, "gamma": 1.5, "reduction": "none"}),
        ("focal_loss", HARD, {"label_smoothing": 0.1, "softcap": 3.0, "gamma": 3.0}),
        ("poly_loss", HARD, {"epsilon": 2.0, "gamma": 0.0}),
        ("poly_loss", HARD, {"epsilon": -1.0, "gamma": 2.0, "alpha": 0.25, "reduction": "none"}),
        ("poly_loss", SOFT, {"epsilon": 1.0, "gamma": 0.5, "z_loss": 1e-2, "reduction": "sum"}),
        ("poly_loss", HARD, {"epsilon": 1.0, "label_smoothing": 0.2, "softcap": 5.0}),
    ],
)
def test_options_against_oracle(name, target, options):
    check(name, LOGITS, target, **options)


@pytest.mark.parametrize(
    ("name", "target", "options"),
    [
        ("cross_entropy", HARD, {"weight": ALPHA}),
        ("cross_entropy", SOFT, {"label_smoothing": 0.1, "reduction": "none"}),
        ("focal_loss", HARD, {"gamma": 2.0, "z_loss": 1e-2, "reduction": "sum"}),
        ("poly_loss", HARD, {"label_smoothing": 0.1, "gamma": 0.5, "reduction": "none"}),
    ],
)
def test_float16(name, target, options):
    """16-bit logits are read as they are, computed in float32, returned in float16."""
    check(name, LOGITS, target, dtype=torch.float16, **options)


SEG_LOGITS = RNG.normal(scale=2.5, size=(2, 5, 3, 4))
SEG_HARD = RNG.integers(0, 5, size=(2, 3, 4))
SEG_HARD[0, 1, 2] = -100
SEG_SOFT = np.moveaxis(RNG.dirichlet(np.ones(5), size=(2, 3, 4)), -1, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize(
    ("name", "target", "options"),
    [
        ("cross_entropy", SEG_HARD, {"weight": ALPHA, "z_loss": 1e-2}),  # mode 0
        ("focal_loss", SEG_HARD, {"gamma": 2.0, "alpha": ALPHA, "softcap": 3.0}),  # mode 0
        ("cross_entropy", SEG_HARD, {"label_smoothing": 0.1, "weight": ALPHA}),  # mode 1
        ("cross_entropy", SEG_SOFT, {"z_loss": 1e-2}),  # mode 1, probabilities
        ("focal_loss", SEG_HARD, {"gamma": 1.5, "label_smoothing": 0.2}),  # mode 2
        ("poly_loss", SEG_SOFT, {"epsilon": 1.0, "gamma": 0.5, "softcap": 4.0}),  # mode 2
    ],
)
def test_class_axis_not_last(name, target, options, reduction, dtype):
    """Logits (2, 5, 3, 4) with the classes on axis 1 (PyTorch's segmentation layout):
    the kernels read them, and a probability target, through the class stride and write
    the gradient in the same layout, every mode, against the float64 oracle."""
    check(name, SEG_LOGITS, target, dtype=dtype, axis=1, reduction=reduction, **options)


def test_class_axis_not_last_copies_nothing():
    """On meta tensors, a (8, 21, 16, 16) cross-entropy through the kernels is the two
    custom operators and the backward's seed: no copy of the logits or of the gradient."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ran = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            ran.append(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    logits = torch.empty((8, 21, 16, 16), device="meta", requires_grad=True)
    target = torch.empty((8, 16, 16), device="meta", dtype=torch.int64)
    with Record():
        with mt.engine("triton"):
            loss = mt.cross_entropy(logits, target, axis=1)
        loss.backward()
    copies = [op for op in ran if any(k in op for k in ("clone", "copy", "contiguous"))]
    assert not copies, ran
    assert logits.grad.shape == logits.shape


def _mp_nll(row, target):
    with mpmath.workdps(50):
        values = [mpmath.mpf(float(v)) for v in row]
        top = max(values)
        return float(
            top - values[target] + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in values))
        )


@pytest.mark.parametrize("margin", [4.0, 18.0, 30.0, 80.0])
def test_confident_row_is_relatively_exact(margin):
    """Cross-entropy and focal loss of a row whose target leads by `margin`: float32's
    lse - z_t is 0 from a margin of about 17 on, the kernels' log1p form keeps every digit."""
    row = np.array([[margin, 0.0, -1.0, 0.5]], dtype=np.float32)
    expected = _mp_nll(row[0], 0)
    z = torch.from_numpy(row).requires_grad_(True)
    with mt.engine("triton"):
        ce = mt.cross_entropy(z, torch.tensor([0]))
        focal = mt.focal_loss(z, torch.tensor([0]), gamma=0.5)
    assert abs(ce.item() - expected) <= 4 * np.finfo(np.float32).eps * expected
    u = -math.expm1(-expected)
    focal_expected = u**0.5 * expected
    assert abs(focal.item() - focal_expected) <= 8 * np.finfo(np.float32).eps * focal_expected
    ce.backward()
    assert torch.isfinite(z.grad).all() and z.grad[0, 0] < 0
    grad = z.grad[0, 0].item()
    assert abs(grad + u) <= 8 * np.finfo(np.float32).eps * u


def test_infinite_and_huge_logits():
    """-inf off the target: finite loss, zero gradient there; -inf at the target: inf;
    ±1e4 rows keep their precision (shift invariance); γ < 1 finite at p_t = 1."""
    logits = np.array(
        [[0.0, -np.inf, 1.0], [1e4, -1e4, 1e4 - 1.0], [-np.inf, 0.0, 1.0], [50.0, -50.0, -50.0]]
    )
    target = np.array([0, 2, 1, 0])
    check("cross_entropy", logits[:2], target[:2], reduction="none")
    check("focal_loss", logits[:2], target[:2], gamma=0.5, reduction="none")
    z = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
    with mt.engine("triton"):
        loss = mt.focal_loss(z, torch.tensor([0, 2, 0, 0]), gamma=0.5, reduction="none")
    assert math.isinf(loss[2].item()) and torch.isfinite(loss[[0, 1, 3]]).all()
    z2 = torch.tensor(logits[[0, 3]], dtype=torch.float32, requires_grad=True)
    with mt.engine("triton"):
        mt.focal_loss(z2, torch.tensor([0, 0]), gamma=0.5).backward()
    assert torch.isfinite(z2.grad).all() and z2.grad[0, 1] == 0


@pytest.mark.parametrize("name", list(LOSSES))
def test_all_ignored_and_empty(name):
    """A mean over nothing is 0 with a zero gradient (not NaN)."""
    for logits, target in [
        (torch.randn(3, 4), torch.full((3,), -100)),
        (torch.randn(0, 4), torch.zeros(0, dtype=torch.int64)),
    ]:
        z = logits.requires_grad_(True)
        with mt.engine("triton"):
            loss = LOSSES[name](z, target)
        loss.backward()
        assert loss.item() == 0.0 and not z.grad.any()


def test_unchecked_out_of_range_label_is_nan():
    """Labels that could not be checked (traced, or a CUDA tensor) poison the result."""
    logits = torch.randn(3, 4)
    target = torch.tensor([0, 7, 1])
    _, config, operands = _core.PREPARE["cross_entropy"](
        logits, target, axis=1, check_values=False, reduction="none"
    )
    loss = kernels.softmax_loss(config, logits, operands.target, None)
    assert math.isnan(loss[1].item()) and torch.isfinite(loss[[0, 2]]).all()


def test_normalizer():
    """`normalizer=` divides the kernels' sum by the given count."""
    z = torch.tensor(LOGITS, dtype=torch.float32, requires_grad=True)
    target = torch.tensor(HARD)
    with mt.engine("triton"):
        loss = mt.focal_loss(z, target, normalizer=torch.tensor(10.0))
    loss.backward()
    ref_loss, ref_grad = oracle("focal_loss", LOGITS, HARD, torch.float32, reduction="sum")
    assert_eps(loss.item(), ref_loss / 10, "float32", BOUND, "loss")
    assert_eps(z.grad.numpy(), ref_grad / 10, "float32", BOUND, "gradient")


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cross_entropy", {"label_smoothing": 0.1, "weight": "w"}),
        ("focal_loss", {"gamma": 2.0, "z_loss": 1e-3, "reduction": "none"}),
        ("poly_loss", {"gamma": 0.5, "label_smoothing": 0.1, "z_loss": 1e-3, "weight": "w"}),
    ],
)
def test_split_rows(name, options):
    """Three rows of 70000 classes: split over programs, combined (mode 2: a second
    split pass for its terms, then their sums)."""
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=2.0, size=(3, 70000))
    target = np.array([5, 69999, 123])
    if options.get("weight") == "w":
        key = "alpha" if name == "poly_loss" else "weight"
        options = {k: v for k, v in options.items() if k != "weight"}
        options[key] = rng.uniform(0.5, 2.0, size=70000)
    assert kernels._splits(3, 70000, 0) > 1 and kernels._splits(3, 70000, 2) > 1
    check(name, logits, target, bound=64, **options)


@pytest.mark.parametrize(
    ("name", "soft", "options"),
    [
        ("cross_entropy", False, {"weight": "w", "reduction": "none"}),
        ("cross_entropy", True, {"label_smoothing": 0.1, "z_loss": 1e-2}),
        ("cross_entropy", False, {"label_smoothing": 0.1, "weight": "w", "reduction": "sum"}),
        ("focal_loss", False, {"gamma": 2.0, "alpha": "w"}),
        ("focal_loss", True, {"gamma": 0.5, "softcap": 4.0, "reduction": "none"}),
        ("poly_loss", False, {"epsilon": 1.0, "label_smoothing": 0.2}),
    ],
)
def test_many_short_rows(name, soft, options):
    """300 rows of 10 classes: many rows per program ([ROWS, BLOCK] tiles of 128 or 256
    rows), a partial last tile, in every mode, forward and backward."""
    rng = np.random.default_rng(11)
    logits = rng.normal(scale=3.0, size=(300, 10))
    if soft:
        target = rng.dirichlet(np.ones(10), size=300)
    else:
        target = rng.integers(0, 10, size=300)
        target[::7] = -100
    if "w" in options.values():
        key = "weight" if "weight" in options else "alpha"
        options = {**options, key: rng.uniform(0.5, 2.0, size=10)}
    assert kernels._tile(300, 10) == (256, 16)
    check(name, logits, target, **options)


def test_row_partials():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 50)).astype(np.float32)
    target = torch.tensor([13, 60, 12, -100])
    row_max, sum_exp, target_logit = kernels.row_partials(torch.from_numpy(logits), target, 10)
    shard = logits.astype(np.float64)
    top = shard.max(axis=1)
    assert_eps(row_max.numpy(), top, "float32", 0, "row max")
    assert_eps(sum_exp.numpy(), np.exp(shard - top[:, None]).sum(1), "float32", 8, "Σ exp")
    assert target_logit.tolist() == [logits[0, 3], 0.0, logits[2, 2], 0.0]


def test_row_functions_write_into_a_given_buffer():
    """row_forward / row_backward (the fused head's chunk step): the per-row losses, and
    the gradient written over the head's own buffer, as the operators give them."""
    logits = torch.tensor(LOGITS, dtype=torch.float32)
    target = torch.tensor(HARD)
    _, config, operands = _core.PREPARE["focal_loss"](logits, target, axis=1, reduction="sum")
    rows, lse, factor, _ = kernels.row_forward(logits, operands.target, None, config=config)
    ref_loss, ref_grad = oracle("focal_loss", LOGITS, HARD, torch.float32, reduction="none")
    assert_eps(rows.numpy(), ref_loss, "float32", BOUND, "row losses")
    buffer = logits.clone()
    cotangent = torch.tensor(1.0)
    out = kernels.row_backward(
        buffer, operands.target, None, lse, factor, cotangent, config=config, out=buffer
    )
    assert out is buffer
    assert_eps(buffer.numpy(), ref_grad, "float32", BOUND, "gradient")


_COMPILE_SCRIPT = """
import os
import re
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from multiloss.torch._triton import _softmax_kernels as K

TYPES = {"target_ptr": "*i64", "z_ptr": "*bf16", "grad_ptr": "*bf16", "z_stride": "i64",
         "q_stride": "i64", "grad_stride": "i64", "IGNORE": "i64", "offset": "i64"}
PTXAS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")


def compile_for_gpu(fn, constants, warps=4):
    signature = {}
    for name in fn.arg_names:
        if name in constants:
            signature[name] = "constexpr"
        else:
            signature[name] = TYPES.get(name, "*fp32" if name.endswith("_ptr") else "i32")
    constexprs = {(fn.arg_names.index(k),): v for k, v in constants.items()}
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
    compiled = triton.compile(
        source, target=GPUTarget("cuda", 80, 32), options={"num_warps": warps}
    )
    assert compiled.asm["cubin"]
    # ptxas's own report of the registers and spills of the kernel
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as ptx:
        ptx.write(compiled.asm["ptx"])
    report = subprocess.run(
        [PTXAS, "-arch=sm_80", "-v", ptx.name, "-o", os.devnull],
        capture_output=True, text=True, check=True,
    ).stderr
    os.unlink(ptx.name)
    spills = [int(n) for n in re.findall(r"(\\d+) bytes spill (?:stores|loads)", report)]
    assert spills and not any(spills), (fn.__name__, constants, report)


ALL = dict(HAS_W=True, CHECKED=False, OMEGA_W=True, Z_LOSS=1e-4, HAS_CAP=True, CAP=30.0)
MODES = [
    dict(MODE=0, HARD=True, SMOOTH=0.0, GAMMA=0.5, GAMMA_INT=-1, EPS=1.0),
    dict(MODE=1, HARD=False, SMOOTH=0.1, GAMMA=0.0, GAMMA_INT=0, EPS=0.0),
    dict(MODE=1, HARD=True, SMOOTH=0.1, GAMMA=0.0, GAMMA_INT=0, EPS=0.0),
    dict(MODE=2, HARD=True, SMOOTH=0.1, GAMMA=2.0, GAMMA_INT=2, EPS=0.0),
    dict(MODE=2, HARD=False, SMOOTH=0.1, GAMMA=0.5, GAMMA_INT=-1, EPS=1.0),
]
# (ROWS, BLOCK) tiles as softmax._tile gives them: long rows, 1000 and 10 classes
for mode in MODES:
    flags = {**ALL, **mode}
    half = mode["MODE"] == 1
    for rows, block in [(1, 2048 if half else 4096), (256 if mode["MODE"] == 0 else 128, 16)]:
        constants = {**flags, "ROWS": rows, "BLOCK": block, "LAST": True}
        compile_for_gpu(K.softmax_forward_kernel, constants, 8)
for mode in MODES[0], MODES[1], MODES[3]:
    flags = {**ALL, **mode, "ROW_COT": True, "HAS_SCALE": True}
    for rows, block in [(1, 4096), (256, 16)]:
        constants = {**flags, "ROWS": rows, "BLOCK": block, "LAST": True}
        compile_for_gpu(K.softmax_backward_kernel, constants, 8)
# the class axis not last ((8, 21, 128, 128)): tiles of 64 rows of 32 classes
for mode in MODES[0], MODES[2], MODES[4]:
    flags = {**ALL, **mode, "ROWS": 64, "BLOCK": 32, "LAST": False}
    compile_for_gpu(K.softmax_forward_kernel, flags, 8)
    compile_for_gpu(K.softmax_backward_kernel, {**flags, "ROW_COT": True, "HAS_SCALE": True}, 8)
flags = {**ALL, **MODES[0]}
narrow = {k: flags[k] for k in ("MODE", "HARD", "HAS_W", "CHECKED", "SMOOTH", "HAS_CAP", "CAP")}
compile_for_gpu(K.softmax_partials_kernel, {**narrow, "BLOCK": 4096}, 8)
compile_for_gpu(K.softmax_combine_kernel, {**flags, "BLOCK_S": 16})
flags = {**ALL, **MODES[4]}
terms = {k: v for k, v in flags.items() if k not in ("MODE", "OMEGA_W", "Z_LOSS")}
compile_for_gpu(K.softmax_combine_kernel, {**flags, "BLOCK_S": 16})
compile_for_gpu(K.softmax_terms_kernel, {**terms, "BLOCK": 4096}, 8)
compile_for_gpu(K.softmax_terms_finish_kernel, {"Z_LOSS": 1e-4, "BLOCK_S": 16})
compile_for_gpu(K.reduce_kernel, {"MEAN": True, "BLOCK": 1024})
for rows, block in [(1, 4096), (256, 16)]:
    constants = {"HAS_CAP": True, "CAP": 30.0, "ROWS": rows, "BLOCK": block}
    compile_for_gpu(K.partials_kernel, constants, 8)
print("compiled")
"""


def test_kernels_compile_for_a_gpu():
    """The interpreter accepts constructs the compiler refuses: Triton's own pipeline
    (frontend, LLVM, ptxas) compiles each mode of every softmax kernel for an sm_80 GPU,
    every option on, with bfloat16 logits, without a device (interpreter off), at the
    tiles the launches choose (one long row; 128 or 256 rows of 10 classes; the class
    axis not last, 64 rows of 21 classes);
    ptxas reports no register spills for any of them."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", _COMPILE_SCRIPT], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0 and "compiled" in result.stdout, result.stderr[-3000:]
