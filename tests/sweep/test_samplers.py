"""Samplers in a local sweep: Optuna's tpe, cmaes and qmc, a plugin's sampler, the study, and resuming it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import digits_config

pytestmark = pytest.mark.slow

BACKPROP = [sys.executable, "-m", "framework.cli"]
SPACE = [
    "--param", "optimizer.lr=loguniform(1e-3,1e-1)",
    "--param", "model.layers.0.units=int(8,32)",
    "--param", "optimizer.name=choice(sgd,adam)",
]  # fmt: skip


def experiment(tmp_path: Path, epochs: int = 2, **extra: Any) -> Path:
    config = digits_config(training={"epochs": epochs, "batch_size": 64}, optimizer={"name": "sgd", "lr": 0.05})
    config.update(extra)
    config["model"]["layers"][0]["units"] = 16
    config["tracking"] = {"enabled": True, "experiment": "samplers"}
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(config))
    return path


def sweep(path: Path, *args: str, cwd: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    command = [*(prefix or BACKPROP), "sweep", str(path), "--quiet", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def line(stdout: str, start: str) -> str:
    return next(x.split(": ", 1)[1].strip() for x in stdout.splitlines() if x.startswith(start))


def children(store: str, parent: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    found = client.get_experiment_by_name("samplers")
    return list(client.search_runs([found.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"))


def test_tpe_draws_inside_the_space_and_the_study_holds_every_result(store: str, tmp_path: Path) -> None:
    import optuna

    path = experiment(tmp_path)
    done = sweep(path, "--sampler", "tpe", "--trials", "6", "--seed", "0", "--workers", "2", *SPACE, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = children(store, line(done.stdout, "parent run id"))
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        lr, units = float(run.data.params["optimizer.lr"]), int(run.data.params["model.layers.0.units"])
        assert 1e-3 <= lr <= 1e-1 and 8 <= units <= 32
        assert run.data.params["optimizer.name"] in {"sgd", "adam"}
    # The study beside the store: one COMPLETE trial per child, its value the child's val_loss, its params the child's.
    name, storage = line(done.stdout, "optuna study").split(" in ")
    assert storage == f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6
    by_trial = {r.data.tags["backprop.optuna_trial"]: r for r in runs}
    for trial in complete:
        run = by_trial[str(trial.number)]
        assert trial.value == pytest.approx(run.data.metrics["val_loss"], rel=1e-12)
        assert trial.params["optimizer.lr"] == pytest.approx(float(run.data.params["optimizer.lr"]), rel=1e-12)
        assert trial.params["model.layers.0.units"] == int(run.data.params["model.layers.0.units"])
    # The same command again: nothing runs twice, in MLflow or in the study.
    again = sweep(path, "--sampler", "tpe", "--trials", "6", "--seed", "0", "--workers", "2", *SPACE, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "6 finished (6 from an earlier run of this sweep)" in again.stdout
    assert line(again.stdout, "parent run id") == line(done.stdout, "parent run id")
    assert len(children(store, line(done.stdout, "parent run id"))) == 6
    assert len(optuna.load_study(study_name=name, storage=storage).trials) == 6


@pytest.mark.parametrize("sampler", ["cmaes", "qmc"])
def test_cmaes_and_qmc_run_their_trials(sampler: str, store: str, tmp_path: Path) -> None:
    path = experiment(tmp_path)
    space = ["--param", "optimizer.lr=loguniform(1e-3,1e-1)", "--param", "training.batch_size=int(16,128)"]
    done = sweep(path, "--sampler", sampler, "--trials", "4", "--seed", "1", "--workers", "2", *space, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = children(store, line(done.stdout, "parent run id"))
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    values = {(r.data.params["optimizer.lr"], r.data.params["training.batch_size"]) for r in runs}
    assert len(values) == 4  # four different points of the space
    for lr, batch in values:
        assert 1e-3 <= float(lr) <= 1e-1 and 16 <= int(batch) <= 128


def test_without_optuna_an_optuna_sampler_says_how_to_install_it(store: str, tmp_path: Path) -> None:
    # Python's own way to make an installed package absent: a None entry in sys.modules.
    code = "import sys; sys.modules['optuna'] = None; from framework.cli import main; main()"
    path = experiment(tmp_path)
    done = sweep(path, "--sampler", "tpe", "--trials", "2", *SPACE, cwd=tmp_path, prefix=(sys.executable, "-c", code))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'backprop[optuna]'" in done.stderr and "Traceback" not in done.stderr
    assert "--sampler tpe" in done.stderr
    if (tmp_path / "mlflow.db").exists():  # refused before any run was made
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=store)
        assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


CORNERS = '''
from typing import Any, ClassVar

from framework import Params, hookimpl
from framework.components import Sampler


class NoParams(Params):
    pass


class Corners(Sampler):
    """The two ends of every uniform parameter: all lows, then all highs."""

    name: ClassVar[str] = "corners"
    Params: ClassVar[type[Params]] = NoParams

    def plan(self, space: Any, trials: int, seed: int) -> list[dict[str, Any]]:
        return [{k: d.args[0] for k, d in space.params.items()}, {k: d.args[1] for k, d in space.params.items()}]


@hookimpl
def register_samplers() -> list[type[Sampler]]:
    return [Corners]
'''


def test_a_plugin_adds_a_sampler(store: str, tmp_path: Path) -> None:
    (tmp_path / "corners.py").write_text(CORNERS)
    path = experiment(tmp_path, plugins=["corners.py"])
    done = sweep(path, "--sampler", "corners", "--param", "optimizer.lr=uniform(0.01,0.1)", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = children(store, line(done.stdout, "parent run id"))
    assert sorted(float(r.data.params["optimizer.lr"]) for r in runs) == [0.01, 0.1]
    # A sampler that breaks is named, with what it raised, and no traceback.
    (tmp_path / "corners.py").write_text(CORNERS.replace("d.args[1]", "d.high"))
    broken = sweep(path, "--sampler", "corners", "--param", "optimizer.lr=uniform(0.02,0.1)", cwd=tmp_path)
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert (
        "sampler 'corners' (backprop_local_plugins.corners) failed to plan the trials: AttributeError" in broken.stderr
    )
    assert "Traceback" not in broken.stderr


def test_trials_caps_a_grid_and_random_n_is_sampler_random_trials_n(store: str, tmp_path: Path) -> None:
    path = experiment(tmp_path, name="short")
    capped = sweep(path, "--grid", "optimizer.lr=0.01,0.03,0.1", "--trials", "2", "--seed", "3", cwd=tmp_path)
    assert capped.returncode == 0, capped.stdout + capped.stderr
    lrs = sorted(float(r.data.params["optimizer.lr"]) for r in children(store, line(capped.stdout, "parent run id")))
    assert len(lrs) == 2 and set(lrs) <= {0.01, 0.03, 0.1}
    space = ["--param", "optimizer.lr=loguniform(1e-3,1e-1)", "--seed", "5"]
    short = sweep(path, "--random", "3", *space, cwd=tmp_path)
    assert short.returncode == 0, short.stdout + short.stderr
    long = sweep(path, "--sampler", "random", "--trials", "3", *space, cwd=tmp_path)
    assert long.returncode == 0, long.stdout + long.stderr
    # The same sweep: the second command finds the first one's parent and its three finished trials.
    assert line(long.stdout, "parent run id") == line(short.stdout, "parent run id")
    assert "3 finished (3 from an earlier run of this sweep)" in long.stdout
    drawn = [float(r.data.params["optimizer.lr"]) for r in children(store, line(short.stdout, "parent run id"))]
    assert len(drawn) == 3 and all(math.log(1e-3) <= math.log(v) <= math.log(1e-1) for v in drawn)
