"""Data-parallel training with a global normaliser: 2 processes, gloo, on the CPU.

The recipe is the ``ddp_recipe.py`` block of docs/distributed.md, extracted from the page
and run as it is, so that the page cannot drift from what is tested. The test starts two
processes (``torch.distributed`` over ``tcp://127.0.0.1:<a free port>``, bounded by a
timeout); each trains a small MLP for a few SGD steps on its own shard of every step, with
gradient accumulation over 3 micro-batches whose counted targets differ from micro-batch
to micro-batch and from rank to rank (one micro-batch counts none, one step of a rank
counts far fewer than the other's), with ``normalizer=`` the all-reduced
``count_targets`` of the step and the loss times the world size (DDP and FSDP average the
gradients over the ranks). The parameters after the steps must equal, in float64 to
~1e-12, those of one process that sees each step's whole batch with PyTorch's plain mean:

* ``DistributedDataParallel`` with ``no_sync()``: cross-entropy, class-weighted
  cross-entropy (``count_targets`` with the weight), focal loss;
* FSDP2 (``fully_shard``, ``set_requires_gradient_sync``): the same three; and FSDP2
  with its averaging turned off (``set_gradient_divide_factor(1.0)``) and no world-size
  factor, the page's alternative;
* the naive recipe, each micro-batch's own mean divided by the number of micro-batches
  (the Hugging Face gradient-accumulation bug of 2024), does not match: its parameters are
  off by a large fraction of the steps' update.

The workers are this file, run as a script (``python tests/test_torch_ddp.py worker ...``).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "distributed.md"
RECIPE_TITLE = "ddp_recipe.py"
WORLD_SIZE = 2
ROWS = 8  # per micro-batch and rank
FEATURES, HIDDEN, CLASSES = 6, 16, 5
LR = 0.5
# counted targets of (step, rank, micro-batch): uneven over micro-batches and ranks
COUNTED = [
    [[8, 2, 5], [1, 7, 0]],
    [[3, 0, 8], [6, 6, 1]],
    [[1, 1, 1], [8, 8, 7]],
]
WEIGHT = [0.5, 2.0, 1.0, 0.3, 1.5]
SCENARIOS = {
    "ce": ("cross_entropy", {}),
    "ce-weight": ("cross_entropy", {"weight": WEIGHT}),
    "focal": ("focal_loss", {"gamma": 2.0}),
}
TIMEOUT_S = 120  # for both workers together; they take a few seconds


def recipe() -> str:
    """The code of the page's ``ddp_recipe.py`` block."""
    text = PAGE.read_text(encoding="utf-8")
    fence = re.compile(
        r'^```python title="' + re.escape(RECIPE_TITLE) + r'"[^\n]*\n(?P<code>.*?)^```[ \t]*$',
        re.S | re.M,
    )
    found = fence.findall(text)
    assert len(found) == 1, f"docs/distributed.md has {len(found)} {RECIPE_TITLE} blocks"
    return textwrap.dedent(found[0])


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, CLASSES)
    ).double()


def make_steps() -> list[list[list[tuple[torch.Tensor, torch.Tensor]]]]:
    """steps[step][rank][micro-batch] = (inputs, target), the same in every process."""
    rng = np.random.default_rng(2024)
    steps = []
    for counted_by_rank in COUNTED:
        ranks = []
        for counted in counted_by_rank:
            micro_batches = []
            for count in counted:
                inputs = torch.tensor(rng.normal(size=(ROWS, FEATURES)) * 2.0)
                target = rng.integers(0, CLASSES, size=ROWS)
                target[rng.permutation(ROWS)[count:]] = -100  # padding
                micro_batches.append((inputs, torch.tensor(target)))
            ranks.append(micro_batches)
        steps.append(ranks)
    return steps


def loss_options(options: dict) -> dict:
    return {
        k: torch.tensor(v, dtype=torch.float64) if k == "weight" else v for k, v in options.items()
    }


def single_process_run(loss: str, options: dict) -> list[torch.Tensor]:
    """Each step's whole batch (every rank's every micro-batch) in one call: PyTorch's own
    (weighted) mean for cross-entropy, the plain mean of multiloss's focal loss."""
    import multiloss.torch as mlt

    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    options = loss_options(options)
    for ranks in make_steps():
        inputs = torch.cat([x for micro_batches in ranks for x, _ in micro_batches])
        target = torch.cat([y for micro_batches in ranks for _, y in micro_batches])
        optimizer.zero_grad()
        if loss == "cross_entropy":
            value = torch.nn.functional.cross_entropy(model(inputs), target, **options)
        else:
            value = getattr(mlt, loss)(model(inputs), target, **options)
        value.backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


# ---------------------------------------------------------------------------------------
# The workers


def naive_train(namespace: dict, model: torch.nn.Module, steps) -> torch.nn.Module:
    """The bug being fixed: each micro-batch's own mean, divided by the number of
    micro-batches (DDP then averages over the ranks)."""
    import multiloss.torch as mlt

    model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for micro_batches in steps:
        optimizer.zero_grad()
        for index, (inputs, target) in enumerate(micro_batches):
            with namespace["gradient_sync"](model, enabled=index == len(micro_batches) - 1):
                value = mlt.cross_entropy(model(inputs), target)
                (value / len(micro_batches)).backward()
        optimizer.step()
    return model


def fsdp_sum_train(namespace: dict, model: torch.nn.Module, steps) -> torch.nn.Module:
    """The page's alternative for FSDP2: the averaging turned off
    (``set_gradient_divide_factor(1.0)``) and the loss not multiplied by the world size."""
    from torch.distributed.fsdp import fully_shard

    import multiloss.torch as mlt

    fully_shard(model)
    model.set_gradient_divide_factor(1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for micro_batches in steps:
        normalizer = namespace["global_count"](micro_batches)
        optimizer.zero_grad()
        for index, (inputs, target) in enumerate(micro_batches):
            with namespace["gradient_sync"](model, enabled=index == len(micro_batches) - 1):
                mlt.cross_entropy(model(inputs), target, normalizer=normalizer).backward()
        optimizer.step()
    return model


def full_parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    """The parameters, gathered from their shards under FSDP2."""
    parameters = []
    for p in model.parameters():
        p = p.detach()
        parameters.append(p.full_tensor() if hasattr(p, "full_tensor") else p.clone())
    return parameters


def worker(rank: int, port: int, output: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=60),
    )
    try:
        namespace: dict = {"__name__": "ddp_recipe"}
        exec(compile(recipe(), str(PAGE), "exec"), namespace)
        import multiloss.torch as mlt

        steps = [ranks[rank] for ranks in make_steps()]
        results = {}
        for name, (loss, options) in SCENARIOS.items():
            for fsdp in (False, True):
                model = namespace["train"](
                    make_model(),
                    steps,
                    fsdp=fsdp,
                    lr=LR,
                    loss=getattr(mlt, loss),
                    **loss_options(options),
                )
                results[f"{'fsdp' if fsdp else 'ddp'}-{name}"] = full_parameters(model)
        results["ddp-naive-ce"] = full_parameters(naive_train(namespace, make_model(), steps))
        results["fsdp-sum-ce"] = full_parameters(fsdp_sum_train(namespace, make_model(), steps))
        torch.save(results, output / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------
# The test


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Both workers' parameters after the steps, for every scenario."""
    output = tmp_path_factory.mktemp("ddp")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "worker", str(rank), str(port), str(output)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(WORLD_SIZE)
    ]
    logs = []
    try:
        for process in workers:
            logs.append(process.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        for process in workers:
            process.kill()
        pytest.fail(f"the {WORLD_SIZE} workers did not finish within {TIMEOUT_S} s")
    for rank, (process, log) in enumerate(zip(workers, logs, strict=True)):
        assert process.returncode == 0, f"worker {rank} failed:\n{log}"
    return [torch.load(output / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def max_deviation(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    return max(float((a - e).abs().max()) for a, e in zip(actual, expected, strict=True))


def test_the_page_has_the_recipe_and_test_docs_runs_it() -> None:
    """The block is a ```python block: tests/test_docs.py executes it too (it only
    defines functions, safe in one process)."""
    from test_docs import python_blocks

    code = recipe()
    assert any(block == code for _, block in python_blocks(PAGE))
    for name in ("global_count", "gradient_sync", "train_step", "train"):
        assert f"def {name}(" in code


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_data_parallel_equals_one_process(trained, parallel: str, scenario: str) -> None:
    loss, options = SCENARIOS[scenario]
    expected = single_process_run(loss, options)
    initial = [p.detach() for p in make_model().parameters()]
    update = max_deviation(expected, initial)
    assert update > 0.05  # the steps move the parameters
    for rank, results in enumerate(trained):
        deviation = max_deviation(results[f"{parallel}-{scenario}"], expected)
        print(f"{parallel}-{scenario} rank {rank}: max |Δ parameter| = {deviation:.2e}")
        assert deviation <= 1e-12, (parallel, scenario, rank, deviation)


def test_fsdp_without_averaging_needs_no_world_size_factor(trained) -> None:
    expected = single_process_run("cross_entropy", {})
    for results in trained:
        assert max_deviation(results["fsdp-sum-ce"], expected) <= 1e-12


def test_naive_mean_of_means_does_not(trained) -> None:
    """Without the normaliser the parameters are off by a large part of the update."""
    expected = single_process_run("cross_entropy", {})
    initial = [p.detach() for p in make_model().parameters()]
    update = max_deviation(expected, initial)
    for results in trained:
        deviation = max_deviation(results["ddp-naive-ce"], expected)
        print(f"naive: max |Δ parameter| = {deviation:.3f}, of an update of {update:.3f}")
        assert deviation > 0.1 * update
    torch.testing.assert_close(trained[0]["ddp-naive-ce"], trained[1]["ddp-naive-ce"])


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    sys.path.insert(0, str(ROOT))
    worker(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
