r"""Drop-ins for the loss functions of Hugging Face Transformers.

Transformers computes a model's loss through `model.loss_function`, looked up in
`transformers.loss.loss_utils.LOSS_MAPPING` by the model's class (`"ForCausalLM"`,
`"ForSequenceClassification"`, …). The functions here have the signatures and the
semantics of those entries, computed by multiloss:

* [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss] for `ForCausalLMLoss` (the label
  shift, `shift_labels`, `num_items_in_batch`), without the float32 copy of the logits
  that `ForCausalLMLoss` makes with `logits.float()`;
* [`masked_lm_loss`][multiloss.torch.hf.masked_lm_loss],
  [`token_classification_loss`][multiloss.torch.hf.token_classification_loss] and
  [`sequence_classification_loss`][multiloss.torch.hf.sequence_classification_loss] for
  `ForMaskedLMLoss`, `ForTokenClassification` and `ForSequenceClassificationLoss`;
* [`install`][multiloss.torch.hf.install] puts them into `LOSS_MAPPING` (an undo handle,
  also a context manager); [`compute_loss_func`][multiloss.torch.hf.compute_loss_func] is
  the same loss for the Trainer's `compute_loss_func=`;
* [`fused_causal_lm_loss`][multiloss.torch.hf.fused_causal_lm_loss] and
  [`fuse`][multiloss.torch.hf.fuse]: the loss from the hidden states and the output head,
  a chunk of tokens at a time, so that the logits are never formed.

The options (`gamma`, `alpha`, `label_smoothing`, `z_loss`, `softcap`) are keywords of
every function here and are bound once by `install(**options)`, `compute_loss_func` and
`fuse`; they shape the softmax cross-entropy. Nothing here imports `transformers` until
`install` is called. Guide: [Hugging Face Transformers][hugging-face-transformers].
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._installed import ABSENT, Installed, set_entry
from .functional import binary_cross_entropy, cross_entropy, focal_loss
from .linear import linear_cross_entropy, linear_focal_loss

__all__ = [
    "OPTIONS",
    "Installed",
    "causal_lm_loss",
    "compute_loss_func",
    "fuse",
    "fused_causal_lm_loss",
    "install",
    "masked_lm_loss",
    "sequence_classification_loss",
    "token_classification_loss",
]

OPTIONS = ("gamma", "alpha", "label_smoothing", "z_loss", "softcap")
"""The loss options every function here takes as keywords: `gamma` (None: cross-entropy;
a number γ ≥ 0: the softmax focal loss), `alpha` (the focal loss's α, with `gamma` only),
`label_smoothing`, `z_loss` and `softcap`, with the meaning they have in
[`focal_loss`][multiloss.torch.focal_loss]."""

_MODEL_KEYWORDS = frozenset(
    {
        "num_items_in_batch",
        "output_hidden_states",
        "output_attentions",
        "output_router_logits",
        "cu_seq_lens_q",
        "cu_seq_lens_k",
        "max_length_q",
        "max_length_k",
        "position_ids",
        "is_causal",
        "seq_idx",
        "return_dict",
        "use_cache",
    }
)
"""The keywords a Transformers model passes on from its `forward(**kwargs)` to its loss
(those of `transformers.utils.generic.TransformersKwargs`): ignored, as Transformers
ignores them."""


def _model_keywords() -> frozenset[str]:
    """`_MODEL_KEYWORDS`, with those of the loaded Transformers' `TransformersKwargs`."""
    generic = sys.modules.get("transformers.utils.generic")
    declared = getattr(getattr(generic, "TransformersKwargs", None), "__annotations__", {})
    return _MODEL_KEYWORDS | frozenset(declared)


def _options(caller: str, kwargs: dict[str, Any], also_ignored: Iterable[str] = ()) -> dict:
    """The loss options among a call's extra keywords. The keywords a model forwards are
    ignored; any other keyword is refused (Transformers would drop it silently)."""
    ignored = _model_keywords() | frozenset(also_ignored)
    options, unknown = {}, []
    for name, value in kwargs.items():
        if name in OPTIONS:
            options[name] = value
        elif name not in ignored:
            unknown.append(name)
    if unknown:
        raise TypeError(
            f"{caller}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}: "
            f"the loss options are {', '.join(OPTIONS)}; the keywords a Transformers model "
            f"passes on from its forward ({', '.join(sorted(_MODEL_KEYWORDS))}) are ignored"
        )
    if options.get("alpha") is not None and options.get("gamma") is None:
        raise ValueError(
            f"alpha={options['alpha']!r} is the focal loss's: give gamma too (gamma=0.0 with "
            f"alpha is α-weighted cross-entropy)"
        )
    return options


def _normalizer(num_items_in_batch: Any, device: torch.device) -> Any:
    """`num_items_in_batch` as the `normalizer=` of the mean, on the logits' device (as
    Transformers moves it)."""
    if isinstance(num_items_in_batch, Tensor):
        return num_items_in_batch.to(device)
    return num_items_in_batch


def _softmax_loss(
    logits: Tensor,
    target: Tensor,
    num_items_in_batch: Any,
    ignore_index: int,
    options: dict[str, Any],
) -> Tensor:
    """Transformers' `fixed_cross_entropy` with the options: the mean over the targets
    that are not `ignore_index`, or their sum divided by `num_items_in_batch`."""
    options = dict(options)
    gamma = options.pop("gamma", None)
    target = target.to(logits.device)
    normalizer = _normalizer(num_items_in_batch, logits.device)
    common = {"ignore_index": ignore_index, "normalizer": normalizer, **options}
    if gamma is None:
        return cross_entropy(logits, target, **common)
    return focal_loss(logits, target, gamma=gamma, **common)


def _rows(logits: Tensor, classes: int, name: str) -> Tensor:
    """`logits` as (tokens, classes) rows (a view where the layout allows one)."""
    if logits.ndim == 0 or logits.shape[-1] != classes:
        raise ValueError(
            f"{name}={classes} must be the size of the logits' last axis; got logits of shape "
            f"{tuple(logits.shape)}"
        )
    return logits.reshape(-1, classes)


def _shifted(labels: Tensor | None, shift_labels: Tensor | None, ignore_index: int) -> Tensor:
    """The next-token targets: `shift_labels` if given, else `labels` moved one position
    left with `ignore_index` at the end (Transformers pads the labels rather than
    slicing the logits, so the logits are never copied)."""
    if shift_labels is not None:
        return shift_labels.reshape(-1)
    if labels is None:
        raise ValueError("labels is None and shift_labels is None: give one of them")
    return F.pad(labels, (0, 1), value=ignore_index)[..., 1:].reshape(-1)


def causal_lm_loss(
    logits: Tensor,
    labels: Tensor | None,
    vocab_size: int,
    num_items_in_batch: Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: Tensor | None = None,
    **kwargs: Any,
) -> Tensor:
    r"""Transformers' `ForCausalLMLoss`, computed without a float32 copy of the logits.

    The position t predicts the label at t + 1: the labels are moved one position left,
    the last position of each sequence ignored, unless `shift_labels` gives the targets
    already shifted (packed or sequence-parallel batches). The loss is the mean over the
    targets that are not `ignore_index`, or, with `num_items_in_batch`, their sum divided
    by it (the count of the whole accumulated batch, which the Trainer passes).

    Differences from Transformers, on purpose: 16-bit logits are read as they are and
    computed in float32 a pass at a time (with label smoothing or soft-capping the
    library still converts them to float32 whole, inside each pass: a transient copy, see
    the guide), and the loss comes back in the logits' dtype
    (Transformers returns float32; the gradient is the same float32 computation either
    way); a mean over no target, or `num_items_in_batch` = 0, gives 0.0 with a zero
    gradient, where Transformers gives NaN.

    Args:
        logits: `(..., vocab_size)` scores, any floating dtype.
        labels: `(...)` token ids; `ignore_index` where there is no target. May be None
            when `shift_labels` is given.
        vocab_size: the size of the logits' last axis.
        num_items_in_batch: the mean's denominator (a 0-d tensor or a number), or None
            for the call's own count.
        ignore_index: the label that has no target.
        shift_labels: the targets already aligned with the logits, or None.
        **kwargs: the loss options ([`OPTIONS`][multiloss.torch.hf.OPTIONS]:
            `gamma`, `alpha`, `label_smoothing`, `z_loss`, `softcap`); the keywords a
            Transformers model passes on from its forward are ignored, any other keyword
            is refused.

    Returns:
        The 0-d loss, in the logits' dtype.

    Raises:
        TypeError: an unknown keyword.
        ValueError: `vocab_size` that is not the logits' last axis, `alpha` without
            `gamma`, and the bad inputs [`cross_entropy`][multiloss.torch.cross_entropy]
            refuses.

    Examples:
        >>> import torch
        >>> from multiloss.torch.hf import causal_lm_loss
        >>> logits = torch.zeros(1, 3, 5)  # batch, positions, vocabulary
        >>> labels = torch.tensor([[4, 1, 2]])  # position 0 predicts 1, position 1 predicts 2
        >>> round(causal_lm_loss(logits, labels, vocab_size=5).item(), 6)  # log 5
        1.609438
    """
    options = _options("causal_lm_loss", kwargs)
    rows = _rows(logits, vocab_size, "vocab_size")
    target = _shifted(labels, shift_labels, ignore_index)
    return _softmax_loss(rows, target, num_items_in_batch, ignore_index, options)


def masked_lm_loss(
    logits: Tensor,
    labels: Tensor,
    vocab_size: int,
    num_items_in_batch: Tensor | int | None = None,
    ignore_index: int = -100,
    **kwargs: Any,
) -> Tensor:
    """Transformers' `ForMaskedLMLoss`: [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss]
    without the shift (each position predicts its own label).

    Args:
        logits: `(..., vocab_size)` scores.
        labels: `(...)` token ids, `ignore_index` where there is no target.
        vocab_size: the size of the logits' last axis.
        num_items_in_batch: as in [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss].
        ignore_index: the label that has no target.
        **kwargs: as in [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss].

    Returns:
        The 0-d loss, in the logits' dtype.
    """
    options = _options("masked_lm_loss", kwargs)
    rows = _rows(logits, vocab_size, "vocab_size")
    return _softmax_loss(rows, labels.reshape(-1), num_items_in_batch, ignore_index, options)


def token_classification_loss(logits: Tensor, labels: Tensor, config: Any, **kwargs: Any) -> Tensor:
    """Transformers' `ForTokenClassification`: cross-entropy over `config.num_labels`
    classes per token; `num_items_in_batch` and `ignore_index` (default -100) may come as
    keywords, as Transformers' `fixed_cross_entropy` reads them.

    Args:
        logits: `(..., config.num_labels)` scores.
        labels: `(...)` class indices.
        config: the model's config (its `num_labels` is read).
        **kwargs: `num_items_in_batch`, `ignore_index`, and as in
            [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss].

    Returns:
        The 0-d loss, in the logits' dtype.
    """
    num_items_in_batch = kwargs.pop("num_items_in_batch", None)
    ignore_index = kwargs.pop("ignore_index", -100)
    options = _options("token_classification_loss", kwargs)
    rows = _rows(logits, config.num_labels, "config.num_labels")
    return _softmax_loss(rows, labels.reshape(-1), num_items_in_batch, ignore_index, options)


def sequence_classification_loss(
    labels: Tensor, pooled_logits: Tensor, config: Any, **kwargs: Any
) -> Tensor:
    """Transformers' `ForSequenceClassificationLoss`, with its choice of problem.

    `config.problem_type`, when None, is set as Transformers sets it (on the config):
    `"regression"` for one label, `"single_label_classification"` for integer labels,
    `"multi_label_classification"` otherwise. Regression is PyTorch's mean squared error,
    as in Transformers; single-label classification is the softmax cross-entropy (with
    the options, `num_items_in_batch` and `ignore_index` as keywords); multi-label
    classification is [`binary_cross_entropy`][multiloss.torch.binary_cross_entropy]'s
    mean over every label. The options shape the single-label case only.

    Args:
        labels: `(N,)` class indices, `(N, num_labels)` probabilities, or the regression
            targets.
        pooled_logits: `(N, num_labels)` scores.
        config: the model's config (`num_labels` and `problem_type` are read).
        **kwargs: `num_items_in_batch`, `ignore_index`, the options of
            [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss]; `logits` (which
            models pass alongside `pooled_logits`) is ignored.

    Returns:
        The 0-d loss.

    Raises:
        ValueError: an unknown `config.problem_type`.
    """
    num_items_in_batch = kwargs.pop("num_items_in_batch", None)
    ignore_index = kwargs.pop("ignore_index", -100)
    options = _options("sequence_classification_loss", kwargs, also_ignored=("logits",))
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif num_labels > 1 and labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    labels = labels.to(pooled_logits.device)
    if config.problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(pooled_logits.squeeze(), labels.squeeze())
        return F.mse_loss(pooled_logits, labels)
    if config.problem_type == "single_label_classification":
        rows = _rows(pooled_logits, num_labels, "config.num_labels")
        return _softmax_loss(rows, labels.reshape(-1), num_items_in_batch, ignore_index, options)
    if config.problem_type == "multi_label_classification":
        return binary_cross_entropy(pooled_logits, labels)
    raise ValueError(
        f"config.problem_type={config.problem_type!r} is not one of 'regression', "
        f"'single_label_classification', 'multi_label_classification'"
    )


# ---------------------------------------------------------------------------------------
# Installing into Transformers


_KINDS: dict[str, Callable[..., Tensor]] = {
    "ForCausalLM": causal_lm_loss,
    "ForConditionalGeneration": causal_lm_loss,
    "CsmForConditionalGeneration": causal_lm_loss,
    "ForMaskedLM": masked_lm_loss,
    "ForTokenClassification": token_classification_loss,
    "ForSequenceClassification": sequence_classification_loss,
    "ForImageClassification": sequence_classification_loss,
    "ForVideoClassification": sequence_classification_loss,
    "ForAudioClassification": sequence_classification_loss,
}
"""The `LOSS_MAPPING` entries `install` replaces (those that Transformers 5 maps to
`ForCausalLMLoss`, `ForMaskedLMLoss`, `ForTokenClassification` and
`ForSequenceClassificationLoss`), with their replacement."""


def _checked_options(options: dict[str, Any]) -> dict[str, Any]:
    """`options`, refused now (not at the first training step) if a name or value is
    wrong: one tiny call of the loss checks them with the library's messages."""
    _options("install", options)
    alpha = options.get("alpha")
    dry = (
        options if alpha is None or isinstance(alpha, (int, float)) else {**options, "alpha": None}
    )
    _softmax_loss(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), None, -100, dry)
    return options


def _bind(function: Callable[..., Tensor], options: dict[str, Any]) -> Callable[..., Tensor]:
    bound = functools.partial(function, **options)
    return functools.update_wrapper(bound, function)


def install(**options: Any) -> Installed:
    """Make Transformers compute its causal-LM, masked-LM and classification losses with
    multiloss.

    Replaces the entries `"ForCausalLM"`, `"ForConditionalGeneration"`,
    `"CsmForConditionalGeneration"`, `"ForMaskedLM"`, `"ForTokenClassification"`,
    `"ForSequenceClassification"` (and its image, video and audio twins) of
    `transformers.loss.loss_utils.LOSS_MAPPING` that exist, with the functions of this
    module bound to `options`. Models read `LOSS_MAPPING` at each forward, so models
    created before the call use it too (a model whose `loss_function` was set by hand
    keeps its own).

    The Trainer decides whether the loss shifts the labels (and so counts
    `num_items_in_batch` over `labels[..., 1:]`) by comparing the model's loss with
    `ForCausalLMLoss`; the name `ForCausalLMLoss` of `transformers.loss.loss_utils` and of
    `transformers.trainer` (if imported) is therefore pointed at the replacement too, and
    a Trainer should be created after `install`.

    Args:
        **options: the loss options ([`OPTIONS`][multiloss.torch.hf.OPTIONS]), checked
            now.

    Returns:
        An [`Installed`][multiloss.torch.hf.Installed] handle: `.uninstall()` undoes it,
            and it is a context manager.

    Raises:
        ModuleNotFoundError: Transformers is not installed.
        TypeError: an unknown option.
        ValueError: a bad option value, `alpha` without `gamma`.
    """
    checked = _checked_options(options)
    loss_utils = importlib.import_module("transformers.loss.loss_utils")
    mapping = loss_utils.LOSS_MAPPING
    replaced = []
    bound: dict[Callable[..., Tensor], Callable[..., Tensor]] = {}
    for key, function in _KINDS.items():
        if key in mapping:
            new = bound.setdefault(function, _bind(function, checked))
            replaced.append((mapping, key, mapping[key], new))
    causal = bound.get(causal_lm_loss)
    original = getattr(loss_utils, "ForCausalLMLoss", None)
    if causal is not None:
        for module in (loss_utils, sys.modules.get("transformers.trainer")):
            if module is not None and hasattr(module, "ForCausalLMLoss"):
                replaced.append((module, "ForCausalLMLoss", module.ForCausalLMLoss, causal))

    def trainer_imported_meanwhile() -> None:
        # `transformers.trainer` imported while installed took the replacement's name
        trainer = sys.modules.get("transformers.trainer")
        if causal is not None and getattr(trainer, "ForCausalLMLoss", None) is causal:
            trainer.ForCausalLMLoss = original  # type: ignore[union-attr]

    for container, key, _, new in replaced:
        set_entry(container, key, new)
    return Installed(replaced, after_uninstall=trainer_imported_meanwhile)


def compute_loss_func(**options: Any) -> Callable[..., Tensor]:
    """The causal-LM loss for the Trainer's `compute_loss_func=` argument.

    The Trainer calls it as `compute_loss_func(outputs, labels, num_items_in_batch=n)`,
    the model's outputs computed without the labels; it returns
    [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss]`(outputs.logits, labels, ...)`
    with the options.

    Args:
        **options: the loss options ([`OPTIONS`][multiloss.torch.hf.OPTIONS]), checked
            now.

    Returns:
        The function to pass as `Trainer(..., compute_loss_func=...)`.
    """
    checked = _checked_options(options)

    def loss(outputs: Any, labels: Tensor, num_items_in_batch: Any = None) -> Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        return causal_lm_loss(
            logits, labels, logits.shape[-1], num_items_in_batch=num_items_in_batch, **checked
        )

    return loss


# ---------------------------------------------------------------------------------------
# The fused head


def fused_causal_lm_loss(
    hidden_states: Tensor,
    lm_head_weight: Tensor,
    labels: Tensor | None,
    num_items_in_batch: Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: Tensor | None = None,
    *,
    lm_head_bias: Tensor | None = None,
    chunk_size: int | None = None,
    **kwargs: Any,
) -> Tensor:
    r"""[`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss] of
    `hidden_states @ lm_head_weight.T + lm_head_bias`, the logits never formed.

    The same value and gradients (with respect to the hidden states, the head's weight
    and bias) as `causal_lm_loss(lm_head(hidden_states), labels, ...)`, computed by
    [`linear_cross_entropy`][multiloss.torch.linear_cross_entropy] (or
    [`linear_focal_loss`][multiloss.torch.linear_focal_loss] with `gamma`) a chunk of
    tokens at a time ([Large vocabularies][large-vocabularies]).

    Args:
        hidden_states: `(..., hidden_size)` inputs of the output head.
        lm_head_weight: `(vocab_size, hidden_size)`, the head's `weight`.
        labels: as in [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss].
        num_items_in_batch: as in [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss].
        ignore_index: as in [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss].
        shift_labels: as in [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss].
        lm_head_bias: the head's bias, or None.
        chunk_size: tokens per chunk, or None for the library's choice.
        **kwargs: as in [`causal_lm_loss`][multiloss.torch.hf.causal_lm_loss].

    Returns:
        The 0-d loss, in the hidden states' dtype.
    """
    options = _options("fused_causal_lm_loss", kwargs)
    gamma = options.pop("gamma", None)
    features = hidden_states.reshape(-1, hidden_states.shape[-1])
    target = _shifted(labels, shift_labels, ignore_index).to(features.device)
    common = {
        "linear_bias": lm_head_bias,
        "ignore_index": ignore_index,
        "normalizer": _normalizer(num_items_in_batch, features.device),
        "chunk_size": chunk_size,
        **options,
    }
    if gamma is None:
        return linear_cross_entropy(features, lm_head_weight, target, **common)
    return linear_focal_loss(features, lm_head_weight, target, gamma=gamma, **common)


def fuse(model: Any, *, chunk_size: int | None = None, **options: Any) -> Installed:
    """Make a Transformers causal LM compute its loss with the fused head.

    Replaces `model.forward` (on this instance) by a wrapper: called with `labels`, it
    runs the model's own forward without them while a forward pre-hook on the output head
    (`model.get_output_embeddings()`) takes the hidden states and hands the head an empty
    slice of them, so that no logits are formed; the loss is then
    [`fused_causal_lm_loss`][multiloss.torch.hf.fused_causal_lm_loss] of those hidden
    states and the head's weight and bias, with `num_items_in_batch` and `shift_labels`
    as the model would take them, and `config.final_logit_softcapping` (Gemma 2) as
    `softcap`. The output carries the loss and no logits. Without `labels` the model runs
    as before.

    For models whose logits are `lm_head(hidden_states)` (soft-capped or not) in eager
    execution, in one process or under DDP (wrap the fused model); not for a head sharded
    by FSDP or tensor parallelism, nor for models that scale or slice the logits
    otherwise.

    Args:
        model: a Transformers model for causal language modelling.
        chunk_size: tokens per chunk, or None for the library's choice.
        **options: the loss options ([`OPTIONS`][multiloss.torch.hf.OPTIONS]), checked
            now.

    Returns:
        An [`Installed`][multiloss.torch.hf.Installed] handle whose `uninstall()` gives the
            model its own forward back; a context manager.

    Raises:
        ValueError: `softcap` given for a model whose config soft-caps the logits itself;
            a model without an output head.
    """
    checked = _checked_options(options)
    head = model.get_output_embeddings()
    if head is None or not isinstance(getattr(head, "weight", None), Tensor):
        raise ValueError(f"{type(model).__name__} has no output head with a weight to fuse")
    model_cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    if model_cap is not None:
        if checked.get("softcap") is not None:
            raise ValueError(
                f"softcap={checked['softcap']!r}: the model's config soft-caps the logits "
                f"already (final_logit_softcapping={model_cap!r})"
            )
        checked = {**checked, "softcap": model_cap}
    original = model.forward

    @functools.wraps(original)
    def forward(*args: Any, labels: Tensor | None = None, **kwargs: Any) -> Any:
        if labels is None:
            return original(*args, **kwargs)
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        shift_labels = kwargs.pop("shift_labels", None)
        captured: list[Tensor] = []

        def take(module: Any, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            captured.append(inputs[0])
            return (inputs[0][..., :0, :], *inputs[1:])

        hook = head.register_forward_pre_hook(take)
        try:
            outputs = original(*args, **kwargs)
        finally:
            hook.remove()
        loss = fused_causal_lm_loss(
            captured[-1],
            head.weight,
            labels,
            num_items_in_batch,
            shift_labels=shift_labels,
            lm_head_bias=head.bias,
            chunk_size=chunk_size,
            **checked,
        )
        if not isinstance(outputs, dict):
            raise ValueError(
                f"{type(model).__name__} returned a {type(outputs).__name__}: a fused model "
                f"returns its outputs as a ModelOutput only (leave return_dict on)"
            )
        kept = {key: value for key, value in outputs.items() if key not in ("loss", "logits")}
        return type(outputs)(loss=loss, **kept)

    previous = model.__dict__.get("forward", ABSENT)
    model.forward = forward
    return Installed([(model, "forward", previous, forward)])
