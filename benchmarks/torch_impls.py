"""The PyTorch groups: eager implementations (softmax, PolyLoss, BCE, sigmoid focal, the
asymmetric loss), the softmax losses under ``torch.compile``, and the check that
``torch.compile(dynamic=True)`` of multiloss CE compiles once across batch sizes.

Engines (``multiloss.torch.engine``, where it exists): every multiloss row runs under
``engine("eager")`` (today's plans) and has a twin, *name, kernels*, under
``engine("triton")``. On a CUDA device both are timed; elsewhere the kernel rows are
counted on meta tensors only (their time columns read –): the Triton kernels run on the
CPU only in Triton's interpreter, whose times mean nothing. Liger-Kernel's cross-entropy
joins the softmax rows on CUDA where ``liger_kernel`` imports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from cost_model import Cost, count_torch
from detection_impls import detection_implementations
from harness import (
    ASL,
    BCE,
    COMPILED,
    DFL,
    POLY,
    POSITIVE_RATE,
    RECOMPILE,
    SIGMOID_FOCAL,
    SIGMOID_KINDS,
    SOFTMAX,
    VARIFOCAL,
    Group,
    Measurement,
    Settings,
    Shape,
    interleaved,
    make_data,
    set_modelled_ratios,
    target_shape,
)

FLOOR = "floor: one exp + one copy"
KERNELS = ", kernels"
"""The suffix of a multiloss row run by the kernel engine."""
LIGER = "Liger-Kernel CE"
OWN_LOGITS = frozenset({LIGER})
"""Rows given their own copy of the logits: Liger-Kernel writes its gradient over its input
in the forward pass."""
LossFn = Callable[[Any, Any], Any]


def engine_available() -> str:
    """'' where ``multiloss.torch.engine("triton")`` can be entered, else why not."""
    try:
        import multiloss.torch as mt

        with mt.engine("triton"):  # type: ignore[attr-defined]
            pass
    except Exception as error:  # absent engine, no triton, …
        return f"kernel engine not available: {type(error).__name__}: {error}"[:160]
    return ""


@contextlib.contextmanager
def chosen_engine(name: str | None) -> Iterator[None]:
    """Inside ``multiloss.torch.engine(name)``; nothing for None (a peer), nor for "eager"
    where the engine does not exist (today's plans are then all there is)."""
    import multiloss.torch as mt

    engine = getattr(mt, "engine", None)
    if name is None or (engine is None and name == "eager"):
        yield
        return
    if engine is None:
        raise RuntimeError("multiloss.torch.engine does not exist")
    with engine(name):
        yield


def under_engine(loss_fn: LossFn, name: str) -> LossFn:
    """`loss_fn` called inside ``chosen_engine(name)`` (its backward follows the custom
    operators or plans its forward chose)."""

    def loss(logits: Any, target: Any) -> Any:
        with chosen_engine(name):
            return loss_fn(logits, target)

    return loss


def with_engines(implementations: dict[str, LossFn]) -> tuple[dict[str, LossFn], set[str]]:
    """Every multiloss row under the eager engine, followed by its kernel-engine twin;
    returns (rows, the kernel rows' names). Without the kernel engine: the rows as given."""
    if engine_available():
        return implementations, set()
    rows: dict[str, LossFn] = {}
    kernels = set()
    for name, fn in implementations.items():
        if not name.startswith("multiloss"):
            rows[name] = fn
            continue
        rows[name] = under_engine(fn, "eager")
        rows[name + KERNELS] = under_engine(fn, "triton")
        kernels.add(name + KERNELS)
    return rows, kernels


def liger_cross_entropy(shape: Shape) -> LossFn | None:
    """Liger-Kernel's cross-entropy (2-d logits only) where ``liger_kernel`` imports."""
    if len(shape.logits) != 2:
        return None
    try:
        from liger_kernel.transformers import LigerCrossEntropyLoss
    except Exception:  # not installed, or no GPU build of its dependencies
        return None
    module = LigerCrossEntropyLoss(ignore_index=_ignore(shape))

    def loss(logits: Any, target: Any) -> Any:
        out = module(logits, target)
        return out[0] if isinstance(out, tuple) else out

    return loss


def _ignore(shape: Shape) -> int:
    return shape.ignore_index if shape.ignore_index is not None else -100


def textbook_focal(ignore: int) -> LossFn:
    """The focal loss as papers write it: log-softmax, gather, (1 - p_t)^2 · -log p_t."""
    import torch
    import torch.nn.functional as F

    def loss(logits: Any, target: Any) -> Any:
        log_p = F.log_softmax(logits, dim=1)
        counted = target != ignore
        safe = torch.where(counted, target, 0).unsqueeze(1)
        log_p_t = log_p.gather(1, safe).squeeze(1)
        focal = -((1 - log_p_t.exp()) ** 2) * log_p_t
        return (focal * counted).sum() / counted.sum()

    return loss


def torchvision_sigmoid_focal(logits: Any, target: Any) -> Any:
    """``torchvision.ops.sigmoid_focal_loss`` (α = 0.25, γ = 2), written out (torchvision
    does not install beside torch 2.13.0 here), mean-reduced."""
    import torch
    import torch.nn.functional as F

    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * ((1 - p_t) ** 2)
    loss = (0.25 * target + 0.75 * (1 - target)) * loss
    return loss.mean()


POLY_EPSILON = 2.0
ASL_GAMMA_POS, ASL_GAMMA_NEG, ASL_CLIP = 0.0, 4.0, 0.05
"""multiloss's defaults, which the benchmark's textbook formulas use too."""


def textbook_poly(ignore: int | None, epsilon: float = POLY_EPSILON) -> LossFn:
    """PolyLoss (Poly-1) as the paper writes it: log-softmax, gather log p_t, then
    -log p_t + ε (1 - p_t), mean-reduced (over the counted entries where `ignore` is set)."""
    import torch
    import torch.nn.functional as F

    def loss(logits: Any, target: Any) -> Any:
        log_p = F.log_softmax(logits, dim=1)
        if ignore is None:
            log_p_t = log_p.gather(1, target.unsqueeze(1)).squeeze(1)
            return (-log_p_t + epsilon * (1 - log_p_t.exp())).mean()
        counted = target != ignore
        safe = torch.where(counted, target, 0).unsqueeze(1)
        log_p_t = log_p.gather(1, safe).squeeze(1)
        poly = -log_p_t + epsilon * (1 - log_p_t.exp())
        return (poly * counted).sum() / counted.sum()

    return loss


def timm_asymmetric(
    gamma_pos: float = ASL_GAMMA_POS,
    gamma_neg: float = ASL_GAMMA_NEG,
    clip: float = ASL_CLIP,
    eps: float = 1e-8,
) -> LossFn:
    """The asymmetric loss (Ridnik et al. 2021) as timm's ``AsymmetricLossMultiLabel``
    writes it (timm is not installed here), mean- instead of sum-reduced."""
    import torch

    def loss(logits: Any, target: Any) -> Any:
        xs_pos = torch.sigmoid(logits)
        xs_neg = (1 - xs_pos + clip).clamp(max=1)
        los_pos = target * torch.log(xs_pos.clamp(min=eps))
        los_neg = (1 - target) * torch.log(xs_neg.clamp(min=eps))
        pt = xs_pos * target + xs_neg * (1 - target)
        one_sided_gamma = gamma_pos * target + gamma_neg * (1 - target)
        return -((los_pos + los_neg) * torch.pow(1 - pt, one_sided_gamma)).mean()

    return loss


def poly_implementations(shape: Shape) -> dict[str, LossFn]:
    """PolyLoss and what it is compared with, by name; ``F.cross_entropy`` (the reference)
    first."""
    import torch.nn.functional as F

    import multiloss.torch as mt

    ignore = _ignore(shape)
    return {
        "F.cross_entropy": lambda z, y: F.cross_entropy(z, y, ignore_index=ignore),
        "multiloss poly ε=2": lambda z, y: mt.poly_loss(
            z, y, epsilon=POLY_EPSILON, ignore_index=ignore
        ),
        "textbook PolyLoss ε=2": textbook_poly(shape.ignore_index),
        "multiloss CE + z-loss 1e-4": lambda z, y: mt.cross_entropy(
            z, y, z_loss=1e-4, ignore_index=ignore
        ),
    }


def softmax_implementations(shape: Shape) -> dict[str, LossFn]:
    """Softmax losses (logits, class-index target) -> scalar, by name; the reference first."""
    import torch.nn.functional as F

    import multiloss.torch as mt

    ignore = _ignore(shape)
    implementations: dict[str, LossFn] = {
        "F.cross_entropy": lambda z, y: F.cross_entropy(z, y, ignore_index=ignore),
        "multiloss CE": lambda z, y: mt.cross_entropy(z, y, ignore_index=ignore),
        "multiloss focal γ=2": lambda z, y: mt.focal_loss(z, y, gamma=2.0, ignore_index=ignore),
        "textbook focal γ=2": textbook_focal(ignore),
    }
    try:
        import kornia.losses

        implementations["kornia focal γ=2"] = lambda z, y: kornia.losses.focal_loss(
            z, y, alpha=None, gamma=2.0, reduction="mean", ignore_index=ignore
        )
    except ImportError:
        pass
    try:
        from monai.losses import FocalLoss as MonaiFocalLoss

        monai_loss = MonaiFocalLoss(
            use_softmax=True, to_onehot_y=True, gamma=2.0, ignore_index=shape.ignore_index
        )
        implementations["MONAI focal γ=2"] = lambda z, y: monai_loss(z, y.unsqueeze(1))
    except ImportError:
        pass
    return implementations


def torch_implementations(kind: str, shape: Shape) -> dict[str, LossFn]:
    """The eager implementations of a group kind, by name; the reference comes first."""
    import torch.nn.functional as F

    import multiloss.torch as mt

    if kind == BCE:
        return {
            "F.binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
            "multiloss BCE": lambda z, y: mt.binary_cross_entropy(z, y),
        }
    if kind == SIGMOID_FOCAL:
        return {
            "torchvision sigmoid focal (formula)": torchvision_sigmoid_focal,
            "multiloss sigmoid focal γ=2": lambda z, y: mt.sigmoid_focal_loss(z, y),
        }
    if kind == ASL:
        return {
            "textbook ASL (timm formula)": timm_asymmetric(),
            "multiloss ASL": lambda z, y: mt.asymmetric_loss(
                z, y, gamma_pos=ASL_GAMMA_POS, gamma_neg=ASL_GAMMA_NEG, clip=ASL_CLIP
            ),
            "F.binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
        }
    if kind == POLY:
        return poly_implementations(shape)
    if kind in (DFL, VARIFOCAL):
        return detection_implementations(kind)
    return softmax_implementations(shape)


def compiled_implementations(shape: Shape) -> dict[str, tuple[LossFn, bool]]:
    """(loss, compile it?) by name; compiled ``F.cross_entropy`` (the reference) first."""
    import torch.nn.functional as F

    import multiloss.torch as mt

    ignore = _ignore(shape)

    def cross_entropy(z: Any, y: Any) -> Any:
        return F.cross_entropy(z, y, ignore_index=ignore)

    return {
        "F.cross_entropy, compiled": (cross_entropy, True),
        "F.cross_entropy, eager": (cross_entropy, False),
        "multiloss CE, compiled": (
            lambda z, y: mt.cross_entropy(z, y, ignore_index=ignore),
            True,
        ),
        "multiloss focal γ=2, compiled": (
            lambda z, y: mt.focal_loss(z, y, gamma=2.0, ignore_index=ignore),
            True,
        ),
        "textbook focal γ=2, compiled": (textbook_focal(ignore), True),
    }


def torch_saved_bytes(loss_fn: LossFn, logits: Any, target: Any) -> int:
    """Bytes of the tensors autograd saves for backward, beyond the logits' own storage."""
    import torch

    logits_storage = logits.untyped_storage().data_ptr()
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() != logits_storage:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = loss_fn(logits, target)
    del loss
    return sum(storages.values())


def device_peak_bytes(step: Callable[[], Any], logits: Any) -> int | None:
    """Peak CUDA memory allocated during one step beyond what was allocated before it (the
    logits' gradient released first); None off CUDA."""
    import torch

    if logits.device.type != "cuda":
        return None
    logits.grad = None
    torch.cuda.synchronize(logits.device)
    torch.cuda.reset_peak_memory_stats(logits.device)
    before = torch.cuda.memory_allocated(logits.device)
    step()
    torch.cuda.synchronize(logits.device)
    return int(torch.cuda.max_memory_allocated(logits.device) - before)


def meta_cost(loss_fn: LossFn | None, kind: str, shape: Shape) -> Cost | str:
    """One forward + backward of `loss_fn` counted on meta tensors of the group's shape,
    dtype and target kind (`loss_fn` None: the floor, one exp and one copy); a string
    saying why where the implementation cannot run on meta tensors."""
    import torch

    dtype = getattr(torch, shape.dtype)
    logits = torch.empty(shape.logits, dtype=dtype, device="meta", requires_grad=True)
    sigmoid = kind in SIGMOID_KINDS
    target = torch.empty(
        target_shape(kind, shape),
        dtype=torch.float32 if sigmoid or kind == DFL else torch.int64,
        device="meta",
    )
    if loss_fn is None:
        values = logits.detach()
        return count_torch(lambda: (torch.exp(values), values.clone()))
    try:
        return count_torch(lambda: loss_fn(logits, target).backward())
    except Exception as error:  # a peer that reads values (kornia, MONAI) on meta
        return f"not countable on meta tensors: {type(error).__name__}: {error}"[:200]


def record_cost(measurement: Measurement, cost: Cost | str) -> None:
    if isinstance(cost, str):
        measurement.cost_kind = cost
        return
    measurement.ops = cost.ops
    measurement.kernels = cost.kernels
    measurement.bytes_accessed = cost.bytes
    measurement.modelled_seconds = cost.modelled_seconds
    measurement.cost_kind = "torch dispatch on meta tensors"


# --------------------------------------------------------------------------------------
# The groups


DEVICE_DRAWN = 1 << 26
"""Logits of at least this many elements are drawn on the device (torch's generator) rather
than by NumPy on the host: the same distributions, other values."""


def _device_data(group: Group, device: str) -> tuple[Any, Any]:
    import math

    import torch

    shape = group.shape
    if (
        device != "cpu"
        and math.prod(shape.logits) >= DEVICE_DRAWN
        and group.kind
        not in (
            DFL,
            VARIFOCAL,
        )
    ):
        generator = torch.Generator(device=device).manual_seed(0)
        dtype = getattr(torch, shape.dtype)
        logits = torch.randn(shape.logits, generator=generator, device=device) * 2
        logits = logits.to(dtype).requires_grad_(True)
        if group.kind in SIGMOID_KINDS:
            target = torch.rand(shape.logits, generator=generator, device=device)
            return logits, (target < POSITIVE_RATE).float()
        labels = target_shape(group.kind, shape)
        target = torch.randint(0, shape.logits[1], labels, generator=generator, device=device)
        return logits, target
    logits_np, target_np = make_data(group.shape, group.kind)
    logits = torch.from_numpy(logits_np).to(device=device, dtype=getattr(torch, group.shape.dtype))
    return logits.requires_grad_(True), torch.from_numpy(target_np).to(device)


def _synchronizer(device: str) -> Callable[[], None]:
    import torch

    kind = torch.device(device).type
    if kind == "cpu":
        return lambda: None
    module = getattr(torch, kind)
    return lambda: module.synchronize()


def _training_step(loss_fn: LossFn, logits: Any, target: Any) -> Callable[[], None]:
    def step() -> None:
        logits.grad = None
        loss_fn(logits, target).backward()

    return step


def _floor_step(logits: Any) -> Callable[[], Any]:
    """One exp pass and one copy over the same logits: what no loss can beat."""
    import torch

    values = logits.detach()
    return lambda: (torch.exp(values), values.clone())


def _measurement(
    group: Group,
    settings: Settings,
    name: str,
    reference: str,
    seconds: list[float],
    ratios: list[float],
) -> Measurement:
    import torch

    return Measurement(
        backend="torch",
        group=group.kind,
        shape=group.shape.name,
        implementation=name,
        reference=reference,
        threads=torch.get_num_threads(),
        device=settings.device,
        seconds=seconds,
        ratios=ratios,
    )


def bench_eager(
    group: Group, settings: Settings, progress: Callable[[], None]
) -> list[Measurement]:

    logits, target = _device_data(group, settings.device)
    implementations, kernel_rows = with_engines(torch_implementations(group.kind, group.shape))
    on_cuda = settings.device.startswith("cuda")
    if on_cuda and group.kind in (SOFTMAX, POLY):
        liger = liger_cross_entropy(group.shape)
        if liger is not None:
            implementations[LIGER] = liger
    timed_rows = {
        name: fn for name, fn in implementations.items() if on_cuda or name not in kernel_rows
    }
    reference = next(iter(implementations))
    inputs = {
        name: logits.detach().clone().requires_grad_(True) if name in OWN_LOGITS else logits
        for name in implementations
    }
    steps = {name: _training_step(fn, inputs[name], target) for name, fn in timed_rows.items()}
    steps[FLOOR] = _floor_step(logits)
    synchronize = _synchronizer(settings.device)
    timed = interleaved(steps, reference, settings.rounds, settings.budget, progress, synchronize)
    results = []
    for name in [*implementations, FLOOR]:  # a kernel row beside its eager twin
        seconds, ratios = timed.get(name, ([], []))  # untimed: counted on meta only
        m = _measurement(group, settings, name, reference, seconds, ratios)
        loss_fn = implementations.get(name)
        if loss_fn is not None and name in steps:
            m.memory_bytes = torch_saved_bytes(loss_fn, inputs[name], target)
            m.memory_kind = "saved for backward beyond the logits"
        record_cost(m, meta_cost(loss_fn, group.kind, group.shape))
        if name in steps:
            m.peak_bytes = device_peak_bytes(steps[name], inputs.get(name, logits))
        else:
            m.note = "kernel engine: counted on meta tensors, not timed off CUDA"
        results.append(m)
    set_modelled_ratios(results)
    return results


def bench_compiled(
    group: Group, settings: Settings, progress: Callable[[], None]
) -> list[Measurement]:
    """Each loss under ``torch.compile`` (default inductor), compiled and warmed up by the
    timer's warm-up call, outside the timings; eager ``F.cross_entropy`` beside them."""
    import torch

    logits, target = _device_data(group, settings.device)
    implementations = compiled_implementations(group.shape)
    reference = next(iter(implementations))
    steps = {
        name: _training_step(torch.compile(fn) if compile_it else fn, logits, target)
        for name, (fn, compile_it) in implementations.items()
    }
    synchronize = _synchronizer(settings.device)
    timed = interleaved(steps, reference, settings.rounds, settings.budget, progress, synchronize)
    results = []
    for name, (seconds, ratios) in timed.items():
        m = _measurement(group, settings, name, reference, seconds, ratios)
        loss_fn, compiled = implementations[name]
        if compiled:
            m.cost_kind = "n/a (torch.compile)"
        else:
            m.memory_bytes = torch_saved_bytes(loss_fn, logits, target)
            m.memory_kind = "saved for backward beyond the logits"
            record_cost(m, meta_cost(loss_fn, SOFTMAX, group.shape))
        m.peak_bytes = device_peak_bytes(steps[name], logits)
        results.append(m)
    set_modelled_ratios(results)
    return results


def recompilation_batch_sizes(shape: Shape) -> list[int]:
    """N/8, N/4, N/2 and N for a shape of batch size N."""
    batch = shape.logits[0]
    return [max(2, batch // 8), max(2, batch // 4), max(2, batch // 2), batch]


def check_recompilation(group: Group, settings: Settings) -> dict[str, Any]:
    """Forward + backward of ``torch.compile(dynamic=True)`` of multiloss CE at four batch
    sizes, counting the graphs Dynamo compiles (``counters["stats"]["unique_graphs"]``)."""
    import torch
    import torch._dynamo
    from torch._dynamo.utils import counters

    import multiloss.torch as mt

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(lambda z, y: mt.cross_entropy(z, y), dynamic=True)
    classes = group.shape.logits[1]
    sizes = recompilation_batch_sizes(group.shape)
    graphs = []
    for size in sizes:
        logits = torch.randn(size, classes, device=settings.device, requires_grad=True)
        target = torch.randint(0, classes, (size,), device=settings.device)
        compiled(logits, target).backward()
        graphs.append(int(counters["stats"]["unique_graphs"]))
    breaks = sum(counters["graph_break"].values())
    recompiled = graphs[-1] - graphs[0]
    shape_text = f"batch sizes {', '.join(map(str, sizes))} × {classes} classes"
    verdict = "no recompilation" if recompiled == 0 else f"**{recompiled} recompilation(s)**"
    return {
        "check": "torch.compile(dynamic=True) recompilation",
        "batch_sizes": sizes,
        "classes": classes,
        "graphs_after_each_size": graphs,
        "graph_breaks": breaks,
        "recompiled_graphs": recompiled,
        "text": f"`torch.compile(dynamic=True)` of multiloss CE, forward + backward at "
        f"{shape_text}: {graphs[-1]} graph(s) compiled, {breaks} graph break(s); {verdict}.",
    }


def run_torch_group(
    group: Group, settings: Settings, progress: Callable[[], None]
) -> tuple[list[Measurement], list[dict[str, Any]]]:
    """Measure one torch group: (measurements, notes)."""
    if group.kind == RECOMPILE:
        note = check_recompilation(group, settings)
        for _ in range(settings.rounds):
            progress()
        return [], [note]
    if group.kind == COMPILED:
        return bench_compiled(group, settings, progress), []
    return bench_eager(group, settings, progress), []
