"""The command line: ``multiloss demo`` and ``multiloss check``, and the demo's pieces."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from multiloss import cli, demo


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "multiloss", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_dataset_is_imbalanced_100_10_1() -> None:
    dataset = demo.make_dataset(seed=3)
    assert np.bincount(dataset.train_y).tolist() == [1000, 100, 10]
    assert np.bincount(dataset.test_y).tolist() == list(demo.TEST_COUNTS)
    assert dataset.train_x.shape == (1110, 2)
    assert dataset.train_x.dtype == np.float32
    again = demo.make_dataset(seed=3)
    np.testing.assert_array_equal(dataset.train_x, again.train_x)


def test_balanced_class_weights_give_each_class_the_same_total() -> None:
    labels = np.array([0] * 100 + [1] * 10 + [2])
    weights = demo.balanced_class_weights(labels, 3)
    totals = np.bincount(labels) * np.array(weights)
    np.testing.assert_allclose(totals, [111 / 3] * 3)


def test_per_class_scores_by_hand() -> None:
    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 0])
    recall, precision = demo.per_class_scores(predicted, truth, 3)
    np.testing.assert_allclose(recall, [2 / 3, 1 / 2, 0.0])
    np.testing.assert_allclose(precision, [2 / 4, 1 / 2, 0.0])  # class 2 never predicted


def test_focal_curves_follow_lin_et_al() -> None:
    p_t, curves = demo.focal_curves(num_points=10)
    np.testing.assert_allclose(curves[0.0], -np.log(p_t), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(curves[2.0], -((1 - p_t) ** 2) * np.log(p_t), rtol=1e-12, atol=1e-15)
    assert curves[5.0][-1] == 0.0  # p_t = 1
    nine = np.argmin(np.abs(p_t - 0.9))
    assert curves[2.0][nine] == pytest.approx(1.054e-3, rel=1e-3)


def _run(backend: str, name: str, recall: list[float], curve: list[float]) -> demo.RunResult:
    steps = np.arange(1, len(curve) + 1) * demo.EVAL_EVERY
    return demo.RunResult(
        backend, name, np.array(recall), np.array(recall), 1.0, steps, np.array(curve)
    )


def test_figure_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = [
        _run(backend, name, [0.9, 0.5, 0.2 + 0.1 * i], [0.5, 0.6, 0.6])
        for backend in ("torch", "jax")
        for i, name in enumerate(("cross-entropy", "focal γ=2, CB α"))
    ]
    labels = {"cross-entropy": "CE", "focal γ=2, CB α": r"focal $\gamma=2$"}
    path = demo.write_figure(tmp_path / "figure.png", results, labels)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_takeaway_is_computed_from_the_numbers() -> None:
    baseline = _run("torch", "cross-entropy", [0.97, 0.60, 0.20], [0.55, 0.60, 0.59])
    better = _run("torch", "class-balanced CE", [0.89, 0.70, 0.40], [0.70, 0.77, 0.66])
    same = _run("torch", "focal", [0.97, 0.61, 0.20], [0.59, 0.60])
    worse = _run("torch", "poly", [0.99, 0.40, 0.10], [0.5, 0.5])
    text = demo.takeaway(baseline, baseline)
    assert "baseline: balanced accuracy 0.590" in text
    assert "the rare class is mostly missed" in text and "peaked" not in text
    text = demo.takeaway(better, baseline)
    assert text.startswith("balanced accuracy 0.663 (+0.073 against plain CE, a net gain)")
    assert "trades majority recall for rare-class recall" in text
    assert "class 2 0.20 → 0.40, class 0 0.97 → 0.89" in text
    assert "peaked at 0.770 at step 20 and fell after" in text
    text = demo.takeaway(same, baseline)
    assert "no net change" in text and "does not change the rare class's recall" in text
    text = demo.takeaway(worse, baseline)
    assert "a net loss" in text and "finds less of the rare class" in text
    assert demo.summary([baseline, better, worse]) == (
        "Best balanced accuracy, torch: class-balanced CE (0.663)"
    )
    jax_best = _run("jax", "poly", [0.9, 0.9, 0.9], [0.9])
    assert "the backends differ" in demo.summary([baseline, better, jax_best])


def test_class_balanced_weights_follow_cui_et_al() -> None:
    labels = np.array([0] * 1000 + [1] * 100 + [2] * 10)
    effective = [(1 - demo.CB_BETA**n) / (1 - demo.CB_BETA) for n in (1000, 100, 10)]
    inverse = np.array([1 / e for e in effective])
    expected = inverse * 3 / inverse.sum()
    np.testing.assert_allclose(demo.cb_weights(labels, 3), expected, rtol=1e-12)


def test_curve_points_end_at_the_last_step() -> None:
    assert demo.curve_points(30) == [10, 20, 30]
    assert demo.curve_points(25) == [10, 20, 25]
    assert demo.curve_points(3) == [3]


def test_torch_trains_at_one_thread_and_restores_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch = pytest.importorskip("torch")
    seen: list[int] = []
    original = demo.per_class_scores

    def recording(*args: object) -> tuple[np.ndarray, np.ndarray]:
        seen.append(torch.get_num_threads())
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(demo, "per_class_scores", recording)
    original_threads = torch.get_num_threads()
    # The test session runs torch at one thread (tests/conftest.py): start from another
    # setting, so that restoring it is seen.
    before = demo.TORCH_THREADS + 1
    torch.set_num_threads(before)
    try:
        trained = demo.train_torch(demo.make_dataset(0), "cross_entropy", {}, 3, 0, None)
        assert seen == [demo.TORCH_THREADS]
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(original_threads)
    assert trained.curve_steps.tolist() == [3] and trained.seconds > 0


def test_check_passes_and_lists_versions() -> None:
    result = run_cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "numpy" in result.stdout
    assert "all checks passed" in result.stdout
    for backend in demo.installed_backends():
        assert f"| {backend} |" in result.stdout


def test_check_fails_on_disagreement(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    backends = demo.installed_backends()
    if not backends:
        pytest.skip("no backend to disagree with")
    runner = demo.AGREEMENT_RUNNERS[backends[0]]

    def off_by_a_little(*args):
        value, grad = runner(*args)
        return value * (1 + 1e-3), grad

    monkeypatch.setitem(demo.AGREEMENT_RUNNERS, backends[0], off_by_a_little)
    assert cli.main(["check"]) == 1
    assert "DISAGREEMENT" in capsys.readouterr().out


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = run_cli("demo", "--steps", "3", "--out", str(tmp_path), "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    for backend in demo.installed_backends():
        assert f"{backend}, " in result.stdout
    for loss in ("cross-entropy", "class-balanced CE", "focal γ=2, CB α", "Poly-1 ε=1, CB α"):
        assert result.stdout.count(f"| {loss} |") == len(demo.installed_backends())
        assert result.stdout.count(f"- {loss}: ") == len(demo.installed_backends())
    assert "Best balanced accuracy, " in result.stdout
    assert "torch at 1 thread" in result.stdout
    assert (tmp_path / "results.md").read_text(encoding="utf-8").startswith("## ")
    if "matplotlib is not installed" not in result.stdout:
        assert (tmp_path / "demo.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--steps", "0"], "expected a positive integer; got 0"),
        (["demo", "--steps", "many"], "expected a positive integer; got 'many'"),
        (["demo", "--seed", "-1"], "expected an integer >= 0; got -1"),
        (["demo", "--backend", "tensorflow"], "invalid choice: 'tensorflow'"),
        (["train"], "invalid choice: 'train'"),
    ],
)
def test_bad_options_get_a_clear_message(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_backend_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "installed_backends", lambda: [])
    out = tmp_path / "out"
    assert cli.main(["demo", "--backend", "torch", "--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "backend 'torch' is not installed" in err
    assert 'pip install ".[torch]"' in err
    assert not out.exists()


def test_demo_without_any_backend_stops_before_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "installed_backends", lambda: [])
    out = tmp_path / "out"
    assert cli.main(["demo", "--steps", "1", "--out", str(out), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "no training backend is installed" in captured.err
    assert 'pip install ".[torch]"' in captured.err
    assert 'pip install ".[jax]"' in captured.err
    assert captured.out == ""  # no set-up printed, nothing trained
    assert not (out / "results.md").exists()
    assert not out.exists()


def test_each_backend_is_warmed_up_before_its_timed_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    def fake_trainer(backend: str) -> Callable[..., demo.Trained]:
        def train(
            dataset: demo.Dataset, loss: str, options: dict, steps: int, *rest: object
        ) -> demo.Trained:
            calls.append((backend, steps))
            predicted = np.zeros(len(dataset.test_y), dtype=np.int64)
            return demo.Trained(predicted, np.array([steps]), np.array([0.5]), 0.5 * steps)

        return train

    for backend in demo.BACKENDS:
        monkeypatch.setitem(demo.TRAINERS, backend, fake_trainer(backend))
    dataset = demo.make_dataset(0)
    results = demo.run_training(dataset, list(demo.BACKENDS), steps=4, seed=0, progress=False)
    assert [r.seconds for r in results] == [2.0] * 4 * len(demo.BACKENDS)
    warm_up = demo.WARMUP_STEPS
    assert warm_up != 4
    for backend in demo.BACKENDS:
        assert [steps for b, steps in calls if b == backend] == [warm_up] * 4 + [4] * 4


def test_every_run_has_its_own_progress_label(monkeypatch: pytest.MonkeyPatch) -> None:
    backends = demo.installed_backends()
    if not backends:
        pytest.skip("no training backend installed")
    labels: list[str] = []

    def recording_progress(steps: int, label: str | None, enabled: bool = True) -> Iterator[int]:
        if label is not None and enabled:
            labels.append(label)
        return iter(range(steps))

    monkeypatch.setattr(demo, "_progress", recording_progress)
    demo.run_training(demo.make_dataset(0), backends, steps=1, seed=0, progress=True)
    assert len(labels) == 4 * len(backends)
    assert len(set(labels)) == len(labels), labels
    for backend in backends:
        assert sum(label.startswith(f"{backend} ") for label in labels) == 4, labels


@pytest.mark.parametrize(
    ("command", "description"),
    [
        (
            "check",
            "Print the versions of multiloss's dependencies and the installed training "
            "backends, check the NumPy reference gradient against central differences and "
            "every backend's loss and gradient against the NumPy float64 reference; exit 1 "
            "on any disagreement.",
        ),
        ("demo", "Which loss for an imbalanced problem: plain cross-entropy, class-balanced"),
    ],
)
def test_subcommand_help_has_a_description(
    command: str, description: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, "--help"])
    assert stopped.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert f"usage: multiloss {command}" in out
    assert description in out


def test_multiloss_alone_prints_the_help() -> None:
    result = run_cli()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: multiloss")
    assert "demo" in result.stdout and "check" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("command", [[], ["demo"], ["check"]], ids=["main", "demo", "check"])
def test_help_shows_no_raw_markup(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main([*command, "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    for markup in ("`", "**", ":func:", "[multiloss"):
        assert markup not in out, (markup, out)
