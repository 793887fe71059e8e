"""multiloss.torch.hf against Transformers' own losses (issue 25, part 2).

The oracle is Transformers itself: `ForCausalLMLoss`, `ForMaskedLMLoss`,
`ForTokenClassification` and `ForSequenceClassificationLoss` of
`transformers.loss.loss_utils` (captured before any `install`), the models' own forward,
and PyTorch's `cross_entropy` for the options.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.loss import loss_utils  # noqa: E402

import multiloss.torch.hf as mh  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HF_CAUSAL = loss_utils.ForCausalLMLoss
HF_MASKED = loss_utils.ForMaskedLMLoss
HF_TOKEN = loss_utils.ForTokenClassification
HF_SEQUENCE = loss_utils.ForSequenceClassificationLoss
PRISTINE = dict(loss_utils.LOSS_MAPPING)
V = 37


@pytest.fixture(autouse=True)
def _mapping_untouched():
    yield
    assert loss_utils.LOSS_MAPPING == PRISTINE, "a test left LOSS_MAPPING changed"
    assert loss_utils.ForCausalLMLoss is HF_CAUSAL


def _batch(seed=0, batch=3, length=11, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(batch, length, V, generator=gen)).to(dtype)
    labels = torch.randint(0, V, (batch, length), generator=gen)
    labels[0, :4] = -100  # a prompt
    labels[2, 7:] = -100  # padding
    return logits, labels


def _value_and_grad(function, logits, *args, **kwargs):
    leaf = logits.detach().clone().requires_grad_(True)
    loss = function(leaf, *args, **kwargs)
    loss.backward()
    return loss.detach(), leaf.grad


def _assert_same(ours, theirs, rtol=2e-6, atol=1e-7):
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.to(b.dtype), b, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ causal language models


@pytest.mark.parametrize("num_items", [None, 17, "tensor", "float tensor"])
def test_causal_lm_loss_equals_transformers(num_items):
    logits, labels = _batch()
    if num_items == "tensor":
        num_items = torch.tensor(17)
    elif num_items == "float tensor":
        num_items = torch.tensor(17.5)
    ours = _value_and_grad(mh.causal_lm_loss, logits, labels, V, num_items_in_batch=num_items)
    theirs = _value_and_grad(HF_CAUSAL, logits, labels, V, num_items_in_batch=num_items)
    _assert_same(ours, theirs)


def test_shift_labels_and_ignore_index_as_transformers():
    logits, labels = _batch(1)
    shifted = torch.roll(labels, -1, dims=1)
    shifted[shifted == -100] = -1
    shifted[:, -1] = -1
    shifted[1, :3] = -1
    kwargs = {"ignore_index": -1, "shift_labels": shifted, "num_items_in_batch": 20}
    ours = _value_and_grad(mh.causal_lm_loss, logits, None, V, **kwargs)
    theirs = _value_and_grad(HF_CAUSAL, logits, labels, V, **kwargs)
    _assert_same(ours, theirs)


def test_gradient_accumulation_over_micro_batches_equals_the_whole_batch():
    """The Trainer's accumulation: each micro-batch's sum divided by the accumulated
    batch's count; the summed losses and gradients are the whole batch's mean."""
    logits, labels = _batch(2, batch=4)
    count = (labels[:, 1:] != -100).sum()  # what the Trainer counts for a shifting loss
    whole = _value_and_grad(HF_CAUSAL, logits, labels, V)
    for function in (mh.causal_lm_loss, HF_CAUSAL):
        leaf = logits.detach().clone().requires_grad_(True)
        total = sum(
            function(leaf[part], labels[part], V, num_items_in_batch=count).detach()
            for part in (slice(0, 1), slice(1, 4))
        )
        for part in (slice(0, 1), slice(1, 4)):
            function(leaf[part], labels[part], V, num_items_in_batch=count).backward()
        _assert_same((total, leaf.grad), whole)


def test_bfloat16_logits_match_transformers_within_bfloat16_rounding():
    logits, labels = _batch(3, dtype=torch.bfloat16)
    loss, grad = _value_and_grad(mh.causal_lm_loss, logits, labels, V)
    hf_loss, hf_grad = _value_and_grad(HF_CAUSAL, logits, labels, V)
    assert loss.dtype == torch.bfloat16 and grad.dtype == torch.bfloat16
    assert hf_loss.dtype == torch.float32  # Transformers upcasts; multiloss keeps the dtype
    torch.testing.assert_close(loss.float(), hf_loss, rtol=2**-8, atol=0)
    # both gradients are float32 computations rounded to bfloat16 once
    torch.testing.assert_close(grad.float(), hf_grad.float(), rtol=2**-7, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {"label_smoothing": 0.1},
        {"z_loss": 1e-2},
        {"softcap": 2.0},
        {"gamma": 0.0, "alpha": None},
    ],
)
def test_options_equal_pytorch_on_the_shifted_tokens(options):
    logits, labels = _batch(4, dtype=torch.float64)
    target = F.pad(labels, (0, 1), value=-100)[:, 1:].reshape(-1)
    rows = logits.reshape(-1, V)

    def reference(z):
        z = z.reshape(-1, V)
        if "softcap" in options:
            z = options["softcap"] * torch.tanh(z / options["softcap"])
        smoothing = options.get("label_smoothing", 0.0)
        loss = F.cross_entropy(z, target, label_smoothing=smoothing, reduction="sum")
        kept = target != -100
        loss = loss + options.get("z_loss", 0.0) * (torch.logsumexp(z[kept], 1) ** 2).sum()
        return loss / 19

    ours = _value_and_grad(mh.causal_lm_loss, rows, labels, V, num_items_in_batch=19, **options)
    _assert_same(ours, _value_and_grad(reference, rows), rtol=1e-12, atol=1e-14)


def test_focal_option_equals_the_textbook_focal_loss():
    logits, labels = _batch(5, dtype=torch.float64)
    target = F.pad(labels, (0, 1), value=-100)[:, 1:].reshape(-1)

    def textbook(z):
        log_p = torch.log_softmax(z.reshape(-1, V), 1)
        kept = target != -100
        log_pt = log_p[kept].gather(1, target[kept, None])[:, 0]
        alpha_t = torch.where(target[kept] == 0, 0.75, 0.25)  # scalar α: class 0 gets 1-α
        return (-alpha_t * (1 - log_pt.exp()) ** 2 * log_pt).sum() / kept.sum()

    ours = _value_and_grad(mh.causal_lm_loss, logits, labels, V, gamma=2.0, alpha=0.25)
    _assert_same(ours, _value_and_grad(textbook, logits), rtol=1e-12, atol=1e-14)


def test_masked_lm_and_token_classification_equal_transformers():
    logits, labels = _batch(6)
    for num_items in (None, 23):
        ours = _value_and_grad(mh.masked_lm_loss, logits, labels, V, num_items_in_batch=num_items)
        theirs = _value_and_grad(HF_MASKED, logits, labels, V, num_items_in_batch=num_items)
        _assert_same(ours, theirs)
        config = types.SimpleNamespace(num_labels=V)
        kwargs = {"num_items_in_batch": num_items, "ignore_index": 5}
        tags = torch.where(labels == -100, 5, labels)
        ours = _value_and_grad(mh.token_classification_loss, logits, tags, config, **kwargs)
        theirs = _value_and_grad(HF_TOKEN, logits, tags, config, **kwargs)
        _assert_same(ours, theirs)


# ------------------------------------------------------------------ sequence classification


def _sequence_case(problem):
    gen = torch.Generator().manual_seed(7)
    if problem == "regression":
        return torch.randn(6, 1, generator=gen), torch.randn(6, generator=gen), 1, None
    if problem == "regression, two outputs":
        return torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen), 2, "regression"
    if problem == "single label":
        return torch.randn(6, 4, generator=gen), torch.tensor([0, 3, 1, 2, 2, 0]), 4, None
    labels = (torch.rand(6, 4, generator=gen) > 0.5).float()
    return torch.randn(6, 4, generator=gen), labels, 4, None


@pytest.mark.parametrize(
    "problem", ["regression", "regression, two outputs", "single label", "multi label"]
)
@pytest.mark.parametrize("num_items", [None, 5])
def test_sequence_classification_equals_transformers(problem, num_items):
    logits, labels, num_labels, problem_type = _sequence_case(problem)
    configs = [
        types.SimpleNamespace(num_labels=num_labels, problem_type=problem_type) for _ in "ab"
    ]
    kwargs = {"num_items_in_batch": num_items, "logits": logits}  # models pass logits too
    ours = _value_and_grad(
        lambda z: mh.sequence_classification_loss(labels, z, configs[0], **kwargs), logits
    )
    theirs = _value_and_grad(lambda z: HF_SEQUENCE(labels, z, configs[1], **kwargs), logits)
    _assert_same(ours, theirs)
    assert configs[0].problem_type == configs[1].problem_type  # set as Transformers sets it


# ------------------------------------------------------------------ keywords and bad input


def test_model_keywords_are_ignored_and_others_refused():
    logits, labels = _batch()
    model_kwargs = {"position_ids": torch.arange(11), "output_attentions": False}
    plain = mh.causal_lm_loss(logits, labels, V)
    assert torch.equal(mh.causal_lm_loss(logits, labels, V, **model_kwargs), plain)
    with pytest.raises(TypeError, match=r"'reduction'.*loss options are gamma"):
        mh.causal_lm_loss(logits, labels, V, reduction="sum")
    with pytest.raises(ValueError, match=r"alpha=0\.25 is the focal loss's: give gamma"):
        mh.causal_lm_loss(logits, labels, V, alpha=0.25)
    with pytest.raises(ValueError, match=r"vocab_size=36 .* shape \(3, 11, 37\)"):
        mh.causal_lm_loss(logits, labels, V - 1)
    with pytest.raises(ValueError, match="gamma"):
        mh.install(gamma=-1.0)  # checked at once, with the library's message
    with pytest.raises(TypeError, match="'gama'"):
        mh.compute_loss_func(gama=2.0)


def test_a_mean_over_nothing_is_zero_where_transformers_gives_nan():
    logits, labels = _batch()
    labels[:] = -100
    loss, grad = _value_and_grad(mh.causal_lm_loss, logits, labels, V)
    assert loss.item() == 0.0 and not grad.any()
    assert torch.isnan(HF_CAUSAL(logits, labels, V))


# ------------------------------------------------------------------ models, install, Trainer


@pytest.fixture(scope="module")
def model():
    config = LlamaConfig(
        vocab_size=V,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def _step(model, ids, labels, **kwargs):
    model.zero_grad()
    out = model(input_ids=ids, labels=labels, **kwargs)
    out.loss.backward()
    return out, [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_install_and_uninstall_on_a_model(model):
    _, labels = _batch()
    ids = labels.clamp(min=0)
    n = torch.tensor(21)
    before, grads = _step(model, ids, labels, num_items_in_batch=n)
    with mh.install() as installed:
        assert installed.installed
        assert loss_utils.LOSS_MAPPING["ForCausalLM"] is installed.losses["ForCausalLM"]
        assert loss_utils.ForCausalLMLoss is installed.losses["ForCausalLM"]
        assert model.loss_function is installed.losses["ForCausalLM"]
        after, our_grads = _step(model, ids, labels, num_items_in_batch=n)
    assert not installed.installed
    assert model.loss_function is HF_CAUSAL
    installed.uninstall()  # a second undo does nothing
    _assert_same((after.loss, *our_grads), (before.loss, *grads), rtol=1e-5, atol=1e-7)


def test_installs_undo_in_reverse_order_only():
    first = mh.install()
    second = mh.install(z_loss=1e-4)
    with pytest.raises(RuntimeError, match="uninstall in the reverse order"):
        first.uninstall()
    assert loss_utils.LOSS_MAPPING["ForCausalLM"] is second.losses["ForCausalLM"]
    second.uninstall()
    assert loss_utils.LOSS_MAPPING["ForCausalLM"] is first.losses["ForCausalLM"]
    first.uninstall()


def test_the_trainer_modules_name_follows_install_and_uninstall(monkeypatch):
    """The Trainer compares the model's loss with its own name `ForCausalLMLoss` to
    decide that the labels are shifted: that name follows install and undo, whether the
    module was imported before or during the installation (a stand-in module here)."""
    before = types.ModuleType("transformers.trainer")
    before.ForCausalLMLoss = HF_CAUSAL
    monkeypatch.setitem(sys.modules, "transformers.trainer", before)
    with mh.install() as installed:
        assert before.ForCausalLMLoss is installed.losses["ForCausalLM"]
    assert before.ForCausalLMLoss is HF_CAUSAL
    monkeypatch.delitem(sys.modules, "transformers.trainer")
    with mh.install():
        during = types.ModuleType("transformers.trainer")
        during.ForCausalLMLoss = loss_utils.ForCausalLMLoss  # what its import binds
        sys.modules["transformers.trainer"] = during
    assert during.ForCausalLMLoss is HF_CAUSAL
    del sys.modules["transformers.trainer"]


def test_install_takes_a_per_class_alpha(model):
    _, labels = _batch()
    ids = labels.clamp(min=0)
    alpha = torch.linspace(0.1, 1.0, V)
    expected = mh.causal_lm_loss(model(input_ids=ids).logits, labels, V, gamma=2.0, alpha=alpha)
    with mh.install(gamma=2.0, alpha=alpha):
        torch.testing.assert_close(model(input_ids=ids, labels=labels).loss, expected)


def test_install_binds_the_options(model):
    _, labels = _batch()
    ids = labels.clamp(min=0)
    logits = model(input_ids=ids).logits
    expected = mh.causal_lm_loss(logits, labels, V, gamma=1.0, z_loss=1e-3)
    with mh.install(gamma=1.0, z_loss=1e-3):
        loss = model(input_ids=ids, labels=labels).loss
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)


def test_compute_loss_func_as_the_trainer_calls_it(model):
    _, labels = _batch()
    ids = labels.clamp(min=0)
    outputs = model(input_ids=ids)  # the Trainer pops the labels before the forward
    function = mh.compute_loss_func()
    for n in (None, torch.tensor(19)):
        loss = function(outputs, labels, num_items_in_batch=n)
        torch.testing.assert_close(loss, HF_CAUSAL(outputs.logits, labels, V, num_items_in_batch=n))


@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None, reason="Trainer needs accelerate"
)
def test_the_trainer_counts_shifted_labels_after_install(model, tmp_path):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    with mh.install():
        assert Trainer(model=model, args=args)._loss_shifts_labels
    trainer = Trainer(model=model, args=args, compute_loss_func=mh.compute_loss_func())
    assert trainer._loss_shifts_labels


# ------------------------------------------------------------------ the fused head


def test_fused_causal_lm_loss_equals_transformers_on_the_formed_logits():
    gen = torch.Generator().manual_seed(8)
    hidden = torch.randn(3, 11, 8, generator=gen, requires_grad=True)
    head = torch.nn.Linear(8, V)
    _, labels = _batch()
    n = torch.tensor(18)
    fused = mh.fused_causal_lm_loss(
        hidden, head.weight, labels, n, lm_head_bias=head.bias, chunk_size=4
    )
    ours = (fused, *torch.autograd.grad(fused, (hidden, head.weight, head.bias)))
    unfused = HF_CAUSAL(head(hidden), labels, V, num_items_in_batch=n)
    theirs = (unfused, *torch.autograd.grad(unfused, (hidden, head.weight, head.bias)))
    _assert_same(ours, theirs, rtol=1e-5, atol=1e-7)


def test_fuse_a_model(model):
    _, labels = _batch()
    ids = labels.clamp(min=0)
    n = torch.tensor(21)
    before, grads = _step(model, ids, labels, num_items_in_batch=n)
    with mh.fuse(model, chunk_size=8):
        after, fused_grads = _step(model, ids, labels, num_items_in_batch=n)
        assert "logits" not in after
        assert model(input_ids=ids).logits.shape == (3, 11, V)  # no labels: as before
    assert "forward" not in model.__dict__
    _assert_same((after.loss, *fused_grads), (before.loss, *grads), rtol=1e-5, atol=1e-7)


def test_fuse_refuses_tuple_outputs(model):
    _, labels = _batch()
    with mh.fuse(model), pytest.raises(ValueError, match="leave return_dict on"):
        model(input_ids=labels.clamp(min=0), labels=labels, return_dict=False)


def test_fuse_takes_the_soft_cap_of_the_config():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=V,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        final_logit_softcapping=3.0,
    )
    torch.manual_seed(1)
    gemma = Gemma2ForCausalLM(config)
    _, labels = _batch()
    ids = labels.clamp(min=0)
    expected = gemma(input_ids=ids, labels=labels).loss
    with mh.fuse(gemma):
        torch.testing.assert_close(gemma(input_ids=ids, labels=labels).loss, expected)
    with pytest.raises(ValueError, match="soft-caps the logits already"):
        mh.fuse(gemma, softcap=2.0)


# ------------------------------------------------------------------ memory


def _saved_bytes(function, logits, labels):
    """Bytes of the distinct storages autograd saves for backward, the logits' own aside."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() != logits.untyped_storage().data_ptr():
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function(logits, labels, logits.shape[-1])
    return sum(storages.values())


def test_nothing_of_the_logits_size_is_saved_for_bfloat16_logits():
    """At 2×512×32000 bf16 logits (62.5 MiB), Transformers saves the float32
    log-probabilities (125 MiB) between forward and backward; multiloss a few numbers
    per token."""
    batch, length, vocabulary = 2, 512, 32000
    logits = torch.randn(batch, length, vocabulary, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, vocabulary, (batch, length))
    theirs = _saved_bytes(HF_CAUSAL, logits, labels)
    ours = _saved_bytes(mh.causal_lm_loss, logits, labels)
    assert theirs >= batch * length * vocabulary * 4
    assert ours <= 64 * batch * length, ours


PEAK = """
import sys, torch
torch.manual_seed(0)
logits = torch.randn(2, 512, 32000, dtype=torch.bfloat16, requires_grad=True)
labels = torch.randint(0, 32000, (2, 512))
if sys.argv[1] == "transformers":
    from transformers.loss.loss_utils import ForCausalLMLoss as loss
else:
    from multiloss.torch.hf import causal_lm_loss as loss
loss(logits[:1, :8], labels[:1, :8], 32000).backward()  # warm-up
logits.grad = None
def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))
open("/proc/self/clear_refs", "w").write("5")  # resets the high-water mark
base = status("VmRSS")
loss(logits, labels, 32000).backward()
print((status("VmHWM") - base) * 1024)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_peak_memory_of_a_step_against_transformers():
    """Peak resident memory of forward + backward above the inputs, in fresh processes
    (large buffers returned to the system at once): the bf16 gradient (62.5 MiB) and
    slabs for multiloss; about 6× the logits' size for Transformers."""
    env = {"MALLOC_MMAP_THRESHOLD_": "1048576", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    peaks = {}
    for which in ("transformers", "multiloss"):
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(PEAK), which],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=300,
        )
        peaks[which] = int(result.stdout.split()[-1])
    logits_bytes = 2 * 512 * 32000 * 2
    assert peaks["transformers"] >= 5 * logits_bytes, peaks
    assert peaks["multiloss"] <= 1.5 * logits_bytes, peaks


# ------------------------------------------------------------------ the example


def test_the_example_trains_alike_with_each_loss():
    spec = importlib.util.spec_from_file_location("hf_causal_lm", ROOT / "examples/hf_causal_lm.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    runs = {
        loss: example.main(steps=2, loss=loss, verbose=False)
        for loss in ("transformers", "multiloss", "fused")
    }
    torch.testing.assert_close(runs["multiloss"], runs["transformers"], rtol=1e-5, atol=0)
    torch.testing.assert_close(runs["fused"], runs["transformers"], rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match=r"gamma=2\.0"):
        example.main(steps=1, loss="transformers", gamma=2.0)
