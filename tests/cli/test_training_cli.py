"""The training commands end to end: Ctrl-C and --resume, summary, evaluate, and every shipped experiment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from framework.cli import app
from framework.serialize import load_arrays
from tests.helpers import EXPERIMENTS

BACKPROP = [sys.executable, "-m", "framework.cli"]

EXPERIMENT = """
name = "sigint test"
seed = 3

[data]
name = "digits"
validation_split = 0.2

[model]
# batch_norm: its running statistics are buffers that the checkpoints must carry for a bit-exact resume.
layers = [
  { units = 16, activation = "relu" }, { type = "batch_norm" }, { type = "dropout", rate = 0.2 }, { units = 10 },
]

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.002

[training]
epochs = 100000
batch_size = 64
checkpoint_every = 1

[callbacks.early_stopping]
patience = 100000

[callbacks.exponential_lr]
gamma = 0.9

[tracking]
enabled = false
"""


def backprop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BACKPROP, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def run_dir_of(cwd: Path) -> Path:
    (run_dir,) = (cwd / "checkpoints" / "sigint-test").iterdir()
    return run_dir


def assert_same_checkpoint(a: Path, b: Path) -> None:
    for name in ("state.npz", "model/weights.npz"):
        arrays_a, arrays_b = load_arrays(a / name), load_arrays(b / name)
        assert sorted(arrays_a) == sorted(arrays_b)
        for key in arrays_a:
            np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=f"{name}: {key}")


@pytest.mark.slow
def test_sigint_mid_run_then_resume_ends_bit_identical(tmp_path: Path) -> None:
    interrupted, fresh = tmp_path / "interrupted", tmp_path / "fresh"
    for where in (interrupted, fresh):
        where.mkdir()
        (where / "exp.toml").write_text(EXPERIMENT)
    process = subprocess.Popen(
        [*BACKPROP, "run", "exp.toml", "--quiet"], cwd=interrupted, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list((interrupted / "checkpoints").glob("*/*/epoch-0003")):
        assert process.poll() is None and time.monotonic() < deadline, "no third checkpoint"
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"continue with: backprop run --resume" in stderr
    run_dir = run_dir_of(interrupted)
    stopped_at = max(int(p.name.removeprefix("epoch-")) for p in run_dir.glob("epoch-*"))
    assert stopped_at >= 3
    target = stopped_at + 2

    # Resume by run directory (the config comes from the checkpoint) and train two more epochs.
    done = backprop("run", "--resume", str(run_dir), "--quiet", "--set", f"training.epochs={target}", cwd=interrupted)
    assert done.returncode == 0, done.stderr
    # The same run, never interrupted.
    uninterrupted = backprop("run", "exp.toml", "--quiet", "--set", f"training.epochs={target}", cwd=fresh)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    name = f"epoch-{target:04d}"
    assert_same_checkpoint(run_dir / name, run_dir_of(fresh) / name)
    assert "layer1.running_var" in load_arrays(run_dir / name / "model" / "weights.npz")
    # The model each run returned (best weights restored) is saved beside the checkpoints: identical too.
    final_a = load_arrays(run_dir / "model" / "weights.npz")
    final_b = load_arrays(run_dir_of(fresh) / "model" / "weights.npz")
    for key in final_a:
        np.testing.assert_array_equal(final_a[key], final_b[key])
    # The printed final metrics agree too.
    table = lambda out: [line for line in out.splitlines() if "val_" in line or "train_" in line]  # noqa: E731
    assert table(done.stdout) == table(uninterrupted.stdout)


def test_resume_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "--resume", "no-such-run"])
    assert result.exit_code == 2
    assert "error: no checkpoint 'no-such-run'" in result.output
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2 and "missing CONFIG" in result.output


def test_summary_prints_layers_shapes_and_parameter_counts() -> None:
    result = CliRunner().invoke(app, ["summary", str(EXPERIMENTS / "wine.toml")])
    assert result.exit_code == 0, result.output
    # wine: 13 features -> 32 relu -> dropout -> 3: 13·32 + 32 = 448, 32·3 + 3 = 99 parameters.
    assert "(batch, 32)" in result.output and "(batch, 3)" in result.output
    assert "448" in result.output and "99" in result.output and "dropout" in result.output
    assert "total parameters: 547" in result.output


def test_evaluate_a_checkpoint_on_its_own_splits_and_on_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            *("run", str(EXPERIMENTS / "iris.toml"), "--no-track", "--quiet"),
            *("--set", "training.epochs=3", "--set", "training.checkpoint_every=3"),
        ],
    )
    assert done.exit_code == 0, done.output
    (run_dir,) = (tmp_path / "checkpoints" / "iris").iterdir()
    result = runner.invoke(app, ["evaluate", run_dir.name])
    assert result.exit_code == 0, result.output
    for word in ("train", "validation", "accuracy", "precision", "recall", "f1", "log_loss"):
        assert word in result.output
    from sklearn.datasets import load_iris

    iris = load_iris()
    rows = [
        ",".join(f"{v:g}" for v in x) + f",{iris.target_names[y]}" for x, y in zip(iris.data, iris.target, strict=True)
    ]
    header = ",".join(n.replace(" ", "_") for n in iris.feature_names) + ",species"
    (tmp_path / "iris.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["evaluate", str(run_dir / "epoch-0003"), "--data", "iris.csv", "-m", "accuracy"])
    assert result.exit_code == 0, result.output
    assert "iris.csv" in result.output and "accuracy" in result.output
    result = runner.invoke(app, ["evaluate", str(run_dir), "--data", "digits"])
    assert result.exit_code == 2 and "the model takes 4 features per sample, the data has 64" in result.output


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_experiment_runs_a_few_epochs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["run", str(path), "--no-track", "--quiet", "--set", "training.epochs=3"], env={**os.environ}
    )
    assert result.exit_code == 0, result.output
    assert "stopped:" in result.output


def test_predict_takes_a_saved_model_directory(tmp_path: Path) -> None:
    from framework import Experiment, fit
    from tests.helpers import digits_config

    result = fit(Experiment.from_dict(digits_config(training={"epochs": 2})), track=False)
    result.model.save(tmp_path / "model")
    X = np.random.default_rng(0).normal(8, 4, size=(5, 64))
    (tmp_path / "x.csv").write_text("\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n")
    for source in (tmp_path / "model", tmp_path):  # the directory itself, or a folder holding model/
        done = CliRunner().invoke(app, ["predict", str(source), "--input", str(tmp_path / "x.csv")])
        assert done.exit_code == 0, done.output
        lines = done.output.strip().splitlines()
        assert lines[0] == ",".join(f"p_{i}" for i in range(10))
        printed = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
        np.testing.assert_array_equal(printed, result.model.predict(X).astype(np.float64))
    done = CliRunner().invoke(app, ["predict", str(tmp_path / "model"), "--input", str(tmp_path / "nope.csv")])
    assert done.exit_code == 2 and "not found" in done.output


def test_the_modern_digits_experiment_uses_this_rounds_blocks_and_reaches_097() -> None:
    from framework import Experiment, fit

    experiment = Experiment.from_file(EXPERIMENTS / "digits_modern.toml")
    text = str(experiment.to_dict())
    for block in ("'batch_norm'", "'gelu'", "'silu'", "'he_normal'", "'label_smoothing': 0.1"):
        assert block in text, block
    result = fit(experiment, track=False)
    assert result.final_metrics["val_accuracy"] >= 0.97
