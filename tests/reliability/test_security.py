"""Security (issue 7): no pickle anywhere, crafted files run no code, the UI stays local, names never escape."""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from framework import Experiment, fit
from framework.checkpoint import sanitize
from framework.cli import app
from framework.errors import UserError
from framework.serialize import load_arrays
from tests.helpers import ROOT, xor_config

SOURCES = sorted([*(ROOT / "framework").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])
HOSTILE_NAMES = ["../../evil", "a/b", "..", ".", "", "con", "CON.txt", "nul\x00byte", "new\nline", "/abs/path", "~"]


# -- no pickle -------------------------------------------------------------------------------------------


def test_the_code_never_unpickles() -> None:
    """Every np.load passes allow_pickle=False; nothing imports pickle or evaluates text."""
    forbidden_imports = {"pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not {n.split(".")[0] for n in names} & forbidden_imports, f"{path}:{node.lineno}"
            if not isinstance(node, ast.Call):
                continue
            func = ast.unparse(node.func)
            if func in {"np.load", "numpy.load"}:
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                assert keywords.get("allow_pickle") == "False", f"{path}:{node.lineno}: {ast.unparse(node)}"
            assert func not in {"eval", "exec", "yaml.load", "yaml.unsafe_load", "pickle.load", "pickle.loads"}, (
                f"{path}:{node.lineno}: {ast.unparse(node)}"
            )


@pytest.mark.slow
def test_nothing_backprop_writes_holds_a_pickle(store: str, tmp_path: Path) -> None:
    """A tracked run with checkpoints: every .npz loads without pickle, no pickle file anywhere (pyfunc model too)."""
    config = xor_config(training={"epochs": 3, "batch_size": 4, "checkpoint_every": 1, "checkpoint_keep": 0})
    config["tracking"] = {"enabled": True}
    result = fit(Experiment.from_dict(config))
    assert result.run_id
    written = list(tmp_path.rglob("*"))
    npz = [p for p in written if p.suffix == ".npz"]
    assert len(npz) >= 7  # checkpoints (model and state), the returned model, the MLflow model
    assert any("mlruns" in p.parts for p in npz)
    for path in npz:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                assert data[key].dtype != object, (path, key)
    assert not [p for p in written if p.suffix in {".pkl", ".pickle", ".joblib"}]
    for mlmodel in [p for p in written if p.name == "MLmodel"]:
        assert "pickle" not in mlmodel.read_text()


# -- crafted files ---------------------------------------------------------------------------------------


def test_a_crafted_npz_with_an_object_array_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "weights.npz"
    np.savez(path, a=np.array([Payload()], dtype=object))
    with pytest.raises(UserError, match=r"refused|pickle"):
        load_arrays(path)
    assert not marker.exists()


def test_a_crafted_checkpoint_cannot_run_code_when_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = xor_config(training={"epochs": 2, "batch_size": 4, "checkpoint_every": 1})
    config["training"]["checkpoint_dir"] = str(tmp_path / "ck")
    fit(Experiment.from_dict(config))
    (checkpoint,) = tmp_path.glob("ck/*/*/epoch-0001")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    np.savez(checkpoint / "state.npz", a0=np.array([Payload()], dtype=object))
    result = CliRunner().invoke(app, ["run", "--resume", str(checkpoint), "--no-track", "-q"])
    assert result.exit_code == 2, result.output
    assert "the checkpoint is damaged (state.npz does not match its checksum)" in result.output  # issue 19
    # A crafter who also rewrites SHA256SUMS gets past the checksum, and not past allow_pickle=False.
    from framework.durable import write_checksums

    write_checksums(checkpoint)
    result = CliRunner().invoke(app, ["run", "--resume", str(checkpoint), "--no-track", "-q"])
    assert result.exit_code == 2, result.output
    assert "refused" in result.output or "pickle" in result.output.lower()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("exp.yaml", "!!python/object/apply:os.system ['touch {marker}']\n"),
        ("exp.yaml", "name: !!python/object/apply:os.system ['touch {marker}']\n"),
        ("exp.json", '{{"name": "__import__(\'os\').system(\'touch {marker}\')", "seed": "__import__(\'os\')"}}'),
        ("exp.toml", 'name = "$(touch {marker})"\nseed = "`touch {marker}`"\n'),
    ],
    ids=["yaml python tag", "yaml python tag in a value", "json code", "toml shell"],
)
def test_a_config_file_is_parsed_never_evaluated(name: str, text: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / name
    path.write_text(text.format(marker=marker))
    result = CliRunner().invoke(app, ["run", str(path), "--no-track", "-q"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert not marker.exists()


# -- backprop ui: local unless asked -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses listening on `port`, from /proc/net/tcp (state 0A = LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def ui_process(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    from framework.mlflow_store import open_client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_client(uri)  # an (empty) store to show
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return subprocess.Popen(
        [sys.executable, "-m", "framework.cli", "ui", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc/net/tcp")
def test_ui_binds_loopback_by_default(tmp_path: Path) -> None:
    port = free_port()
    process = ui_process(tmp_path, "--port", str(port))
    try:
        assert process.stdout is not None
        line = "(no output)"
        for line in process.stdout:  # the server's own lines first; ours once it answers
            if line.startswith("MLflow UI:"):
                break
        assert line.startswith(f"MLflow UI: http://127.0.0.1:{port}/"), (line, process.poll())
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
    assert "warning" not in err


def test_ui_warns_when_exposed_beyond_loopback(tmp_path: Path) -> None:
    """--host 0.0.0.0 warns first. This test holds the port, so nothing is ever exposed: exit 2 after the warning."""
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        port = holder.getsockname()[1]
        process = ui_process(tmp_path, "--host", "0.0.0.0", "--port", str(port))
        _, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    warning, error = err.strip().splitlines()
    assert warning.startswith("warning: binding to 0.0.0.0 makes the UI") and "without authentication" in warning
    assert error.startswith(f"error: --port {port}: cannot listen on 0.0.0.0:{port}")


# -- names from user input never escape their directory ---------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_sanitize_makes_one_plain_file_name(name: str) -> None:
    cleaned = sanitize(name)
    assert cleaned and cleaned not in {".", ".."}
    assert re.fullmatch(r"[A-Za-z0-9._-]+", cleaned), cleaned
    assert cleaned.split(".")[0].lower() not in {"con", "nul", "prn", "aux"}


@pytest.mark.parametrize("name", [n for n in HOSTILE_NAMES if n and n.isprintable()])
def test_checkpoints_of_a_hostile_experiment_name_stay_in_the_checkpoint_dir(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    config = xor_config(name=name, training={"epochs": 2, "batch_size": 4, "checkpoint_every": 1})
    fit(Experiment.from_dict(config))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert (work / "checkpoints") in path.parents, path
        assert path.relative_to(work / "checkpoints").parts[0] == sanitize(name)


@pytest.mark.parametrize("name", [n for n in HOSTILE_NAMES if not n.isprintable()])
def test_an_experiment_name_with_control_characters_is_refused(name: str) -> None:
    """Issue 19: NUL, newline and other control characters are refused before anything is written."""
    from framework.errors import ConfigError

    with pytest.raises(ConfigError, match="holds the control character"):
        Experiment.from_dict(xor_config(name=name))


@pytest.mark.parametrize("run_id", ["../../evil", "..", "a/b", "x\x00y"])
def test_unsent_data_of_a_hostile_run_id_stays_in_backprop_unsent(
    run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framework.build import prepare_run
    from plugins.tracking import artifacts

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    run = prepare_run(Experiment.from_dict(xor_config()), track=False)
    run.trainer.fit()
    where = artifacts.spool(run_id, run.trainer, [], {}, "FINISHED", None)
    assert where.parent == work / "backprop-unsent"
    assert all(work / "backprop-unsent" in p.parents for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.parametrize("name", [*HOSTILE_NAMES, "a..b/../c", "evil\\..\\x"])
def test_new_plugin_names_cannot_escape_the_directory(name: str, tmp_path: Path) -> None:
    target = tmp_path / "plugins"
    target.mkdir()
    result = CliRunner().invoke(app, ["new-plugin", name, "--kind", "loss", "--directory", str(target)])
    assert "Traceback" not in result.output
    created = list(tmp_path.iterdir())
    assert created == [target]
    if result.exit_code == 0:
        (package,) = target.iterdir()
        assert package.name == name and "/" not in name and name not in {".", ".."}
    else:
        assert result.exit_code == 2 and result.output.startswith("error: plugin name"), result.output
        assert list(target.iterdir()) == []


@pytest.mark.parametrize("stem", ["../../evil", "a b", "new\nline", "sys", "os.path", "1st"])
def test_a_plugin_file_gets_a_private_module_name(stem: str) -> None:
    from framework.pluginmanager import _module_name_for_file

    module = _module_name_for_file(Path(f"{stem}.py"))
    assert re.fullmatch(r"backprop_local_plugins\.\w+", module), module


def test_a_hostile_tracking_run_name_is_only_a_label(store: str, tmp_path: Path) -> None:
    """Experiment and run names go to MLflow as text; no file or directory is named after them."""
    config = xor_config(name="../../evil")
    config["tracking"] = {"enabled": True, "experiment": "../../evil-experiment", "run_name": "../../evil-run"}
    started = time.time()
    result = fit(Experiment.from_dict(config))
    assert result.run_id
    for path in tmp_path.parent.glob("evil*"):
        assert path.stat().st_mtime < started, path
    assert not [p for p in tmp_path.rglob("*evil*")]
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=store).get_run(result.run_id)
    assert run.info.run_name == "../../evil-run"
    assert json.loads(json.dumps(run.data.params))["name"] == "../../evil"


def test_a_port_left_in_time_wait_by_a_stopped_ui_is_free() -> None:
    """Stopping `backprop ui` leaves its connections in TIME_WAIT: starting it again must not say "in use"."""
    from framework.cli.ui_cmd import _check_port_free

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            connection, _ = server.accept()
            connection.close()  # the server's side closes first: its end of the connection waits in TIME_WAIT
            client.recv(1)
    _check_port_free("127.0.0.1", port)  # no UserError
