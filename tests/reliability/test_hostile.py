"""Hostile inputs (issue 19), each refused before training: one line naming the file and key (or row), what is
wrong and what is allowed, exit 2, no traceback, and no run in the store (not even a store).

The cases reuse the catalogue's machinery (`tests/reliability/test_bad_inputs.py`); CSV files are in
`test_hostile_csv.py`. Plugin hooks that raise or return the wrong type end a started run FAILED instead
(they are found while training): `test_a_plugin_hook_that_*`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from framework.cli import app
from framework.limits import MAX_CONFIG_BYTES, MAX_CONFIG_VALUES
from tests.reliability.test_bad_inputs import BASE, NPZ_BASE, Case, arguments, c, listing, tracked, write_files

__all__ = ["tracked"]  # the fixture, imported for the tests below

BASE_YAML = """\
name: hostile
data: {name: iris, validation_split: 0.2}
model: {layers: [{units: 8, activation: tanh}, {units: 3}]}
loss: {name: cross_entropy}
optimizer: {name: adam, lr: 0.01}
training: {epochs: 2, batch_size: 16}
"""
BOMB = "".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)]
)
NPZ = NPZ_BASE.replace("objects.npz", "data.npz")


def npz_case(what: str, where: str, allowed: str, arrays: dict[str, np.ndarray]) -> Case:
    case = c(what, where, allowed, files={"exp.toml": NPZ})
    case.arrays = arrays  # type: ignore[attr-defined]
    return case


HOSTILE: dict[str, Case] = {
    # -- numbers that overflow ---------------------------------------------------------------------
    "learning rate 1e400": c(
        "not a finite number", "exp.toml: optimizer.lr", "got inf", sets={"optimizer.lr": "1e400"}
    ),
    "units 1e12": c(
        "does not fit in memory", "exp.toml: model.layers.0", "fewer units", sets={"model.layers.0.units": "1e12"}
    ),
    "epochs -1": c(
        "Input should be greater than or equal to 1",
        "exp.toml: training.epochs",
        "got -1",
        sets={"training.epochs": "-1"},
    ),
    "batch size 1e300": c(
        "exceeded maximum size", "exp.toml: training.batch_size", "got 1e+300", sets={"training.batch_size": "1e300"}
    ),
    "infinite clip norm in yaml": c(
        "not a finite number",
        "exp.yaml: optimizer.clip_norm",
        "numbers must be finite",
        files={"exp.yaml": BASE_YAML.replace("lr: 0.01}", "lr: 0.01, clip_norm: .inf}")},
        args=["exp.yaml"],
    ),
    # -- YAML ----------------------------------------------------------------------------------------
    "yaml python object tag": c(
        "invalid YAML",
        "exp.yaml",
        "python/object/apply:os.system",
        files={"exp.yaml": BASE_YAML + "evil: !!python/object/apply:os.system ['touch pwned']\n"},
        args=["exp.yaml"],
    ),
    "yaml alias bomb": c(
        "expands to more than",
        "exp.yaml",
        "without nested aliases",
        files={"exp.yaml": BASE_YAML + BOMB},
        args=["exp.yaml"],
    ),
    "config file too large": c(
        f"more than the {MAX_CONFIG_BYTES} allowed",
        "exp.toml",
        "not data",
        files={"exp.toml": BASE + "\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1)},
    ),
    "too many values": c(
        f"more than {MAX_CONFIG_VALUES} values",
        "exp.json",
        "write the values out",
        files={"exp.json": '{"name": "x", "pad": [' + ",".join(["1"] * (MAX_CONFIG_VALUES + 1)) + "]}"},
        args=["exp.json"],
    ),
    # -- names ---------------------------------------------------------------------------------------
    "experiment name with NUL": c(
        "control character '\\x00'", "exp.toml: name", "no NUL", sets={"name": '"a\\u0000b"'}
    ),
    "run name with a newline": c(
        "control character '\\n'", "exp.toml: tracking.run_name", "no NUL", sets={"tracking.run_name": '"a\\nb"'}
    ),
    "mlflow experiment with an escape": c(
        "control character '\\x1b'",
        "exp.toml: tracking.experiment",
        "no NUL",
        sets={"tracking.experiment": '"\\u001b[31mred"'},
    ),
    # -- npz -----------------------------------------------------------------------------------------
    "npz object array": npz_case(
        "refused to load",
        "data.npz",
        "plain numeric arrays",
        {"X": np.array([{"a": 1}, {"b": 2}], dtype=object), "y": np.array([0, 1])},
    ),
    "npz mismatched lengths": npz_case(
        "4 feature rows but 3 targets", "data.npz", "3 targets", {"X": np.zeros((4, 2)), "y": np.array([0, 1, 0])}
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_input_is_one_clear_line_exit_2_and_leaves_nothing(name: str, tracked: Path) -> None:
    root = tracked
    case = HOSTILE[name]
    write_files(root, case.files)
    arrays = getattr(case, "arrays", None)
    if arrays is not None:
        np.savez(root / "data.npz", **arrays)
    before = listing(root)
    result = CliRunner().invoke(app, arguments(case))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for part, fragment in (("what", case.what), ("where", case.where), ("allowed", case.allowed)):
        assert fragment in lines[0], f"{part}: {fragment!r} not in {lines[0]!r}"
    assert "Traceback" not in result.output
    assert not (root / "mlflow.db").exists()  # no run, not even a store
    assert listing(root) == before
    assert not (root / "pwned").exists()


WRONG_TYPE = """\
from framework import hookimpl

@hookimpl
def should_stop(epoch, logs):
    return 42
"""
RAISES = """\
from framework import hookimpl

@hookimpl
def after_epoch(epoch):
    if epoch == 1:
        raise ValueError("boom in epoch 2")
"""


def store_runs(root: Path) -> list[tuple[str, str | None]]:
    """(status, backprop.error tag) of every run, read with sqlite3."""
    import sqlite3

    connection = sqlite3.connect(root / "mlflow.db")
    try:
        return connection.execute(
            "SELECT r.status, t.value FROM runs r LEFT JOIN tags t ON t.run_uuid = r.run_uuid AND "
            "t.key = 'backprop.error' ORDER BY r.start_time"
        ).fetchall()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (WRONG_TYPE, "plugin 'hook_plugin': hook should_stop must return a reason (str) or None, got int"),
        (RAISES, "ValueError: boom in epoch 2 (raised in hook after_epoch of plugin 'hook_plugin')"),
    ],
    ids=["returns the wrong type", "raises"],
)
def test_a_plugin_hook_that_fails_ends_the_run_failed_naming_plugin_and_hook(
    plugin: str, message: str, tracked: Path
) -> None:
    (tracked / "exp.toml").write_text(BASE)
    (tracked / "hook_plugin.py").write_text(plugin)
    result = CliRunner().invoke(app, ["run", "exp.toml", "-q", "--plugin", "hook_plugin.py"])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    ((status, error),) = store_runs(tracked)  # the store is consistent: one run, ended, with the reason
    assert status == "FAILED"
    assert error is not None and message.split(" (raised")[0] in error
