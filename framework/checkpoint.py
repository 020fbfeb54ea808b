"""Checkpoints: everything a run needs to continue exactly where it stopped, without pickle.

A checkpoint is a directory, written atomically (a temporary sibling renamed into place):

    checkpoints/<experiment>/<run id>/epoch-0007/
        model/          the model at the end of that epoch, as `framework.serialize.save_model` writes it
                        (so `backprop evaluate` and `Model.load` read it directly)
        state.json      format, epoch, step, MLflow run id, the resolved config and the config file's path,
                        the optimiser's learning rate and state, every layer's and callback's state, the
                        shuffle generator's state (numpy's bit_generator.state), the history's keys, a
                        fingerprint of the training data, and why the run ended or that it was interrupted
        state.npz       the arrays of that state (optimiser moments, early stopping's best weights, the
                        history's columns), read with allow_pickle=False
        SHA256SUMS      the SHA-256 of every other file (`sha256sum -c SHA256SUMS` checks it too)

`<run id>` is the MLflow run id when the run is tracked, else a timestamp; names are sanitised. A run that
resumes from a checkpoint keeps writing into the same directory. Resuming restores all of it, so the resumed
run ends with the same weights and history, bit for bit, as the run that was never interrupted.

Crash consistency (issue 19): a checkpoint is built in a temporary sibling, every file fsynced, then renamed
into place (`framework.durable`), so a kill at any instant leaves whole checkpoints only. The newest
`training.checkpoint_keep` (2) are kept; one that fails its checksums (a disk error, a hand edit) is reported and the
previous good one is used instead.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from framework.components import Array
from framework.config import Experiment, apply_overrides, flatten
from framework.durable import DiskFull, check_checksums, write_checksums
from framework.errors import UserError
from framework.serialize import (
    WEIGHTS,
    atomic_directory,
    load_arrays,
    load_weights,
    read_described,
    save_arrays,
    write_model,
)

if TYPE_CHECKING:
    from framework.trainer import Trainer

log = logging.getLogger(__name__)

FORMAT = "backprop-checkpoint"
FORMAT_VERSION = 1
STATE_JSON = "state.json"
STATE_ARRAYS = "state.npz"
MODEL_DIR = "model"
EPOCH_DIR = re.compile(r"^epoch-(\d+)$")

# data.in_memory says how the data is held (read or memory-mapped), not what it is: the fingerprint checks that.
RESUMABLE_CHANGES = ("training.epochs", "training.checkpoint_", "tracking.", "sweep", "data.in_memory")
"""Config keys that may differ between a checkpoint and the run that resumes it (prefixes)."""


@dataclass
class Snapshot:
    """The state of a run at the end of one epoch, taken in memory (cheap) and written when needed."""

    epoch: int
    """The last completed epoch (counting from 0)."""
    state: dict[str, Any]
    arrays: dict[str, Array]
    weights: list[Array]
    history_rows: int
    trainer: Trainer
    finished: str | None = None
    interrupted: bool = False


# -- plain data with arrays <-> JSON + npz ----------------------------------------------------------------


def _encode(value: Any, arrays: dict[str, Array], where: str) -> Any:
    """JSON-able data, with every numpy array moved into `arrays` and replaced by {"$array": key}."""
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"$array": key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where}: state dicts need string keys")
        return {k: _encode(v, arrays, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v, arrays, f"{where}.{i}") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(
        f"{where}: {type(value).__name__} cannot go into a checkpoint; "
        "help: state_dict() may hold numbers, strings, lists, dicts and numpy arrays"
    )


def _decode(value: Any, arrays: dict[str, Array]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$array"}:
            return arrays[value["$array"]]
        return {k: _decode(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    return value


# -- taking and writing ----------------------------------------------------------------------------------


def callback_keys(callbacks: list[object]) -> list[str]:
    """A stable key per callback: its registered name (or class name), numbered if it repeats."""
    keys: list[str] = []
    for callback in callbacks:
        base = getattr(callback, "name", "") or type(callback).__qualname__
        key, n = base, 1
        while key in keys:
            n += 1
            key = f"{base}#{n}"
        keys.append(key)
    return keys


def data_fingerprint(trainer: Trainer) -> str:
    """A hash of the prepared training and validation data: resuming on other data is refused."""
    cached: str | None = getattr(trainer, "_data_fingerprint", None)
    if cached is None:
        digest = hashlib.sha256()
        for split in (trainer.train, trainer.val):
            if split is not None:
                for array in (split.X, split.targets):
                    digest.update(str(array.shape).encode())
                    # A chunk of rows at a time: the same bytes as the whole array's, without a copy of it
                    # (the targets of a mapped file are a strided column of the map).
                    chunks = array.chunks() if hasattr(array, "chunks") else _row_chunks(array)
                    for chunk in chunks:
                        digest.update(chunk.tobytes())
        cached = digest.hexdigest()
        trainer._data_fingerprint = cached  # type: ignore[attr-defined]
    return cached


def _row_chunks(array: Array, rows: int = 1 << 16) -> Iterator[Array]:
    for start in range(0, len(array), rows):
        yield np.ascontiguousarray(array[start : start + rows])


def _config_of(trainer: Trainer) -> dict[str, Any]:
    """The resolved config as plain data, made once per run (it does not change while training)."""
    cached: dict[str, Any] | None = getattr(trainer, "_config_dict", None)
    if cached is None:
        cached = trainer.experiment.to_dict()
        trainer._config_dict = cached  # type: ignore[attr-defined]
    return cached


def capture(trainer: Trainer, epoch: int, weights: list[Array]) -> Snapshot:
    """The run's state after `epoch`; `weights` are copies of the parameters (the trainer keeps them)."""
    arrays: dict[str, Array] = {}
    callbacks: dict[str, Any] = {}
    for key, callback in zip(callback_keys(trainer.callbacks), trainer.callbacks, strict=True):
        state_dict = getattr(callback, "state_dict", None)
        if state_dict is not None:
            state = state_dict()
            if state:
                callbacks[key] = _encode(state, arrays, f"callbacks.{key}")
    source = trainer.experiment.source
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epoch": epoch,
        "epochs_completed": epoch + 1,
        "step": trainer.step,
        "run_id": trainer.run_id,
        "experiment": trainer.experiment.name,
        "config": _config_of(trainer),
        "source": str(source.resolve()) if source is not None else None,
        "optimizer": {
            "name": trainer.optimizer.name,
            "lr": trainer.optimizer.lr,
            "state": _encode(trainer.optimizer.state_dict(), arrays, "optimizer"),
        },
        "layers": [_encode(layer.state_dict(), arrays, f"layers.{i}") for i, layer in enumerate(trainer.model.layers)],
        "callbacks": callbacks,
        "rng": trainer.rng.bit_generator.state,
        "data_fingerprint": data_fingerprint(trainer),
    }
    return Snapshot(epoch, state, arrays, weights, len(trainer.history), trainer)


def run_directory(trainer: Trainer) -> Path:
    """checkpoints/<experiment>/<run id or timestamp>, from `training.checkpoint_dir` (relative to the cwd)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    run = trainer.run_id or stamp
    return Path(trainer.experiment.training.checkpoint_dir) / sanitize(trainer.experiment.name) / sanitize(run)


RESERVED_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{device}{i}" for device in ("com", "lpt") for i in range(1, 10)]
)
"""Device names that Windows will not use as file names, whatever the extension."""


def sanitize(name: str) -> str:
    """A file name: letters, digits, '.', '_' and '-' kept, anything else becomes '-'.

    Never a path: no separator, no NUL, never '.' or '..' (leading and trailing dots go), never empty, never
    a Windows device name (`con` becomes `_con`), at most 100 characters.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:100].rstrip(".-")
    if cleaned.split(".")[0].lower() in RESERVED_NAMES:
        cleaned = f"_{cleaned}"
    return cleaned or "run"


def write_checkpoint(snapshot: Snapshot, run_dir: Path) -> Path:
    """Write `snapshot` as run_dir/epoch-NNNN (NNNN = epochs completed), atomically; return the path."""
    trainer = snapshot.trainer
    path = run_dir / f"epoch-{snapshot.epoch + 1:04d}"
    history = trainer.history
    rows = snapshot.history_rows
    keys = list(history.metrics)
    arrays = dict(snapshot.arrays)
    arrays["history.epochs"] = np.asarray(history.epochs[:rows], dtype=np.int64)
    for i, key in enumerate(keys):
        arrays[f"history.{i}"] = np.asarray(history.metrics[key][:rows], dtype=np.float64)
    state = {
        **snapshot.state,
        "history": {"keys": keys},
        "finished": snapshot.finished,
        "interrupted": snapshot.interrupted,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    try:
        with atomic_directory(path) as tmp:
            (tmp / MODEL_DIR).mkdir()
            write_model(tmp / MODEL_DIR, trainer.model, snapshot.weights)
            save_arrays(tmp / STATE_ARRAYS, arrays)
            (tmp / STATE_JSON).write_text(json.dumps(state, indent=1) + "\n")
            write_checksums(tmp)
    except DiskFull:  # the run ends FAILED (unlike other write errors, which it survives): say what is left
        previous = latest_in(run_dir) if run_dir.is_dir() else None
        intact = f"; the previous checkpoint {previous} is intact" if previous is not None else ""
        raise DiskFull(path, intact) from None
    _prune(run_dir, keep=trainer.experiment.training.checkpoint_keep)
    return path


def _epochs_in(run_dir: Path) -> list[tuple[int, Path]]:
    """The epoch-N checkpoints of `run_dir` (whole ones: temporary siblings are not matched), newest first."""
    found = [
        (int(m.group(1)), child)
        for child in run_dir.iterdir()
        if child.is_dir() and (m := EPOCH_DIR.match(child.name)) and (child / STATE_JSON).exists()
    ]
    return sorted(found, reverse=True)


def _prune(run_dir: Path, keep: int) -> None:
    """Remove all but the newest `keep` checkpoints (0: keep all), and what killed writers left (`.epoch-*`)."""
    for _, old in _epochs_in(run_dir)[keep:] if keep else []:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in run_dir.glob(".epoch-*"):
        shutil.rmtree(leftover, ignore_errors=True)


# -- finding and reading ---------------------------------------------------------------------------------


def damage(path: Path) -> str | None:
    """What is wrong with the checkpoint at `path` (its files against SHA256SUMS), or None if it is whole.

    A checkpoint written before checksums existed (no SHA256SUMS, format version 1) is taken as whole.
    """
    if not (path / "SHA256SUMS").exists():
        return None if (path / STATE_JSON).exists() else f"no {STATE_JSON}"
    return check_checksums(path)


def latest_in(run_dir: Path, below: int | None = None) -> Path | None:
    """The whole checkpoint of `run_dir` with the most completed epochs (fewer than `below`), or None.

    A damaged newer one is skipped with a warning that names it and the one used instead.
    """
    skipped: list[tuple[Path, str]] = []
    for epochs, child in _epochs_in(run_dir):
        if below is not None and epochs >= below:
            continue
        problem = damage(child)
        if problem is None:
            for bad, why in skipped:
                log.warning("checkpoint %s is damaged (%s); using the previous one, %s", bad, why, child)
            return child
        skipped.append((child, problem))
    for bad, why in skipped:
        log.warning("checkpoint %s is damaged (%s) and there is no previous good one", bad, why)
    return None


def find_checkpoint(spec: str, root: str | Path = "checkpoints") -> Path:
    """A checkpoint from a path (a checkpoint, or a run directory: its latest) or a run id under `root`."""
    path = Path(spec)
    if path.is_dir():
        if (path / STATE_JSON).exists():
            problem = damage(path)
            if problem is None:
                return path
            match = EPOCH_DIR.match(path.name)
            previous = latest_in(path.parent, below=int(match.group(1))) if match else None
            if previous is None:
                raise UserError(f"{spec}: the checkpoint is damaged ({problem}) and there is no previous good one")
            log.warning("checkpoint %s is damaged (%s); using the previous one, %s", path, problem, previous)
            return previous
        latest = latest_in(path)
        if latest is not None:
            return latest
        raise UserError(f"{spec}: not a checkpoint (no {STATE_JSON}) and holds no epoch-N checkpoints")
    runs = sorted(Path(root).glob(f"*/{sanitize(spec)}")) if Path(root).is_dir() else []
    for run_dir in runs:
        latest = latest_in(run_dir)
        if latest is not None:
            return latest
    raise UserError(
        f"no checkpoint {spec!r}: it is not a directory, and no run {spec!r} has checkpoints under {root}/; "
        "help: pass a checkpoint directory (checkpoints/<experiment>/<run>/epoch-N) or a run id"
    )


def read_state(path: Path) -> tuple[dict[str, Any], dict[str, Array]]:
    """The state.json and state.npz of a checkpoint, checked for format."""
    state = read_described(path, STATE_JSON, FORMAT, FORMAT_VERSION, "checkpoint")
    return state, load_arrays(path / STATE_ARRAYS)


def experiment_of(path: Path, overrides: list[str] | None = None) -> Experiment:
    """The resolved experiment a checkpoint was made with (`overrides` applied), its source file kept."""
    state, _ = read_state(path)
    config = state["config"]
    apply_overrides(config, overrides or [])
    source = Path(state["source"]) if state.get("source") else None
    return Experiment.from_dict(config, source=source)


def restore(trainer: Trainer, path: Path) -> None:
    """Put the run of `trainer` (built from the same config) into the state saved at `path`."""
    state, arrays = read_state(path)
    _check_config(path, state["config"], trainer.experiment.to_dict())
    if state.get("data_fingerprint") != data_fingerprint(trainer):
        raise UserError(f"{path}: the data differs from the data this checkpoint was trained on")
    done = int(state["epochs_completed"])
    finished = state.get("finished")
    if finished and not (finished.startswith("completed") and trainer.epochs > done):
        raise UserError(f"{path}: this run already ended ({finished}); nothing to resume")
    # epochs == done, unfinished: the process died after its last checkpoint but before the run's end was
    # recorded (issue 19); resuming trains nothing and ends the run.
    if trainer.epochs < done:
        raise UserError(
            f"{path}: the checkpoint has {done} epochs done and training.epochs = {trainer.epochs}; "
            f"help: --set training.epochs=N with N > {done} to train longer"
        )

    model = trainer.model
    load_weights(model, load_arrays(path / MODEL_DIR / WEIGHTS), path, exact_dtype=True)
    for i, layer in enumerate(model.layers):
        layer.load_state_dict(_decode(state["layers"][i], arrays))
    trainer.optimizer.load_state_dict(_decode(state["optimizer"]["state"], arrays))
    trainer.optimizer.lr = float(state["optimizer"]["lr"])
    by_key = dict(zip(callback_keys(trainer.callbacks), trainer.callbacks, strict=True))
    for key, saved_state in state["callbacks"].items():
        callback = by_key.get(key)
        if callback is None or not hasattr(callback, "load_state_dict"):
            raise UserError(
                f"{path}: the checkpoint has the state of callback {key!r}, which this run does not have; "
                f"callbacks of this run: {', '.join(by_key) or '(none)'}"
            )
        callback.load_state_dict(_decode(saved_state, arrays))
    trainer.rng.bit_generator.state = state["rng"]
    history = trainer.history
    history.epochs = [int(e) for e in arrays["history.epochs"]]
    history.metrics = {
        key: [float(v) for v in arrays[f"history.{i}"]] for i, key in enumerate(state["history"]["keys"])
    }
    trainer.start_epoch = done
    trainer.step = int(state["step"])
    trainer.resume_run_id = state.get("run_id")
    trainer.checkpoint_dir = path.parent
    trainer.last_checkpoint = path


def _check_config(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    flat_saved, flat_now = flatten(saved), flatten(current)
    changed = [
        key
        for key in sorted(set(flat_saved) | set(flat_now))
        if flat_saved.get(key) != flat_now.get(key) and not key.startswith(RESUMABLE_CHANGES)
    ]
    if changed:
        details = ", ".join(f"{k} ({flat_saved.get(k)!r} -> {flat_now.get(k)!r})" for k in changed[:5])
        raise UserError(
            f"{path}: the config differs from the checkpoint's: {details}; only training.epochs, the checkpoint "
            "options and tracking may change when resuming"
        )
