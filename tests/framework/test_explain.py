"""`backprop explain`: every number of the lesson's step against the lesson's equations written out in numpy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from framework.cli import app
from tests.helpers import ROOT

SEED = ROOT / "experiments" / "seed.toml"


def explain_json(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["explain", str(SEED), "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def values(document: dict[str, object]) -> dict[str, np.ndarray]:
    return {e["name"]: np.array(e["values"]) for e in document["entries"]}  # type: ignore[attr-defined, index]


def lesson_step(w1, b1, w2, b2, x, y, lr):  # type: ignore[no-untyped-def]
    """The lesson's step: tanh hidden layer, sigmoid output, mean squared error, plain gradient descent."""
    z1 = x @ w1 + b1
    a1 = np.tanh(z1)
    z2 = a1 @ w2 + b2
    output = 1 / (1 + np.exp(-z2))
    loss = np.mean((output - y) ** 2)
    grad_output = 2 * (output - y) / y.size
    delta2 = grad_output * output * (1 - output)  # σ'(z2) = σ(z2)(1 − σ(z2)), of the output
    deriv_w2, deriv_b2 = a1.T @ delta2, delta2.sum(axis=0)
    grad_a1 = delta2 @ w2.T
    delta1 = grad_a1 * (1 - a1**2)
    deriv_w1, deriv_b1 = x.T @ delta1, delta1.sum(axis=0)
    new = [w1 - lr * deriv_w1, b1 - lr * deriv_b1, w2 - lr * deriv_w2, b2 - lr * deriv_b2]
    out2 = 1 / (1 + np.exp(-(np.tanh(x @ new[0] + new[1]) @ new[2] + new[3])))
    return {
        "x": x, "z1": z1, "a1": a1, "z2": z2, "output": output, "loss": loss, "grad_output": grad_output,
        "delta2": delta2, "deriv_w2": deriv_w2, "deriv_b2": deriv_b2, "grad_a1": grad_a1, "delta1": delta1,
        "deriv_w1": deriv_w1, "deriv_b1": deriv_b1,
        "update_w1": new[0] - w1, "update_b1": new[1] - b1, "update_w2": new[2] - w2, "update_b2": new[3] - b2,
        "loss_after": np.mean((out2 - y) ** 2),
    }  # fmt: skip


def test_every_number_of_the_step_is_the_lessons_equations() -> None:
    doc = explain_json()
    got = values(doc)
    x = np.array([[0, 1, 0], [1, 0, 1]], dtype=float)
    y = np.array([[1], [0]], dtype=float)
    expected = lesson_step(got["w1"], got["b1"], got["w2"], got["b2"], x, y, doc["lr"])
    names = [e["name"] for e in doc["entries"]]  # type: ignore[attr-defined]
    assert names == ["w1", "b1", "w2", "b2", *expected], "the lesson's order: forward, loss, back, update"
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-12, atol=1e-15, err_msg=name)
    assert doc["lr"] == 0.5 and doc["rows"] == [0, 1]
    assert got["loss_after"] < got["loss"]


def test_the_text_shows_the_same_numbers_rounded() -> None:
    got = values(explain_json())
    result = CliRunner().invoke(app, ["explain", str(SEED)])
    assert result.exit_code == 0, result.output
    blocks = re.split(r"^(\w+) \(", result.output, flags=re.M)[1:]
    shown = {name: body.split("\n", 1)[1] for name, body in zip(blocks[::2], blocks[1::2], strict=True)}
    assert set(shown) == set(got)
    for name, body in shown.items():
        numbers = np.array([float(t) for t in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", body)])
        np.testing.assert_allclose(numbers, got[name].ravel(), rtol=5e-6, atol=5e-7, err_msg=name)


def test_markdown_has_a_fenced_block_per_array() -> None:
    result = CliRunner().invoke(app, ["explain", str(SEED), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert "**delta1** (2x4)" in result.output and result.output.count("```") == 2 * 23


def test_samples_pick_rows_of_the_batch() -> None:
    doc = explain_json("--samples", "1")
    got = values(doc)
    x, y = np.array([[1.0, 0, 1]]), np.array([[0.0]])
    expected = lesson_step(got["w1"], got["b1"], got["w2"], got["b2"], x, y, doc["lr"])
    for name in ("output", "deriv_w1", "update_b2", "loss_after"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-15, err_msg=name)


def test_step_k_starts_from_the_weights_after_k_steps_of_a_run(tmp_path: Path) -> None:
    from framework import Experiment, fit

    trained = fit(Experiment.from_file(SEED, ["training.epochs=3"]), track=False).model  # 1 batch: 3 steps
    got = values(explain_json("--step", "3"))
    for name, p in zip(["w1", "b1", "w2", "b2"], trained.parameters(), strict=True):
        np.testing.assert_allclose(got[name], p, rtol=1e-12, err_msg=name)


def test_large_arrays_are_summarised_unless_full() -> None:
    digits = str(ROOT / "experiments" / "digits.toml")
    result = CliRunner().invoke(app, ["explain", digits, "--format", "json", "--samples", "0,1"])
    assert result.exit_code == 0, result.output
    w1 = json.loads(result.output)["entries"][0]
    assert w1["name"] == "w1" and w1["shape"] == [64, 64] and "values" not in w1
    assert set(w1["summary"]) == {"mean", "std", "min", "max"}
    full = CliRunner().invoke(app, ["explain", digits, "--format", "json", "--samples", "0", "--full"])
    assert np.array(json.loads(full.output)["entries"][0]["values"]).shape == (64, 64)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "1"], "--batch 1: the training data (2 samples, batch_size 2) has 1 batch(es)"),
        (["--samples", "0,2"], "--samples 2: batch 0 has 2 rows, numbered 0 to 1"),
        (["--samples", "a"], "--samples 'a': give row numbers separated by commas"),
        (["--set", "model.layers.0.units=0"], "model.layers.0.units"),
    ],
)
def test_bad_input_is_one_message_and_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["explain", str(SEED), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_config_that_does_not_build_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SEED.read_text().replace("y = [[1], [0]]", "y = [[1]]"))
    result = CliRunner().invoke(app, ["explain", str(bad)])
    assert result.exit_code == 2 and "data.y: 1 targets for 2 rows of data.x" in result.output


def test_step_k_follows_the_runs_learning_rate_schedule() -> None:
    from framework import Experiment, fit

    schedule = "callbacks.step_lr={step_size = 1, gamma = 0.5}"  # lr 0.5, 0.25, 0.125, then 0.0625 at step 3
    trained = fit(Experiment.from_file(SEED, [schedule, "training.epochs=3"]), track=False)
    assert trained.history.metrics["lr"] == [0.5, 0.25, 0.125]
    doc = explain_json("--step", "3", "--set", schedule)
    got = values(doc)
    for name, p in zip(["w1", "b1", "w2", "b2"], trained.model.parameters(), strict=True):
        np.testing.assert_allclose(got[name], p, rtol=1e-12, err_msg=name)
    assert doc["lr"] == 0.0625  # the explained step is taken with its own epoch's rate
    np.testing.assert_allclose(got["update_b2"], -0.0625 * got["deriv_b2"], rtol=1e-12)


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_the_output_is_ascii(fmt: str) -> None:
    """So that `backprop explain ... > notes.md` works where standard output is not UTF-8 (cp1252, latin-1)."""
    result = CliRunner().invoke(app, ["explain", str(SEED), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert result.output.isascii(), [c for c in result.output if not c.isascii()]


def test_full_prints_every_number_of_a_large_array_in_text() -> None:
    """numpy elides arrays of over 1000 numbers with '...' unless told not to; --full must not."""
    digits = str(ROOT / "experiments" / "digits.toml")
    result = CliRunner().invoke(app, ["explain", digits, "--samples", "0", "--full"])
    assert result.exit_code == 0, result.output
    assert "..." not in result.output
    w1 = result.output.split("w1 (64x64)", 1)[1].split("\nb1 (", 1)[0].split("\n", 1)[1]
    assert len(re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", w1)) == 64 * 64


def test_each_z_line_names_the_layers_real_input(tmp_path: Path) -> None:
    """Layer 1 computes x @ W + b; layer 2 computes a1 @ W + b, not x @ W + b; and so on down a deeper net."""
    deep = tmp_path / "deep.toml"
    deep.write_text(
        SEED.read_text().replace(
            '{ units = 4, activation = "tanh" },',
            '{ units = 4, activation = "tanh" }, { units = 3, activation = "tanh" },',
        )
    )
    result = CliRunner().invoke(app, ["explain", str(deep)])
    assert result.exit_code == 0, result.output
    z_lines = [line for line in result.output.splitlines() if re.match(r"z\d ", line)]
    assert z_lines == [
        "z1 (2x4)  layer 1 (dense): pre-activation x @ W + b",
        "z2 (2x3)  layer 2 (dense): pre-activation a1 @ W + b",
        "z3 (2x1)  layer 3 (dense): pre-activation a2 @ W + b",
    ]


def test_batch_takes_rows_of_the_unshuffled_split_and_help_says_so() -> None:
    """With training.shuffle and --step, --batch 1 is still row 1 of the data as written: the help must say so."""
    doc = explain_json(
        "--set", "training.batch_size=1", "--set", "training.shuffle=true", "--step", "3", "--batch", "1"
    )
    assert doc["rows"] == [1]
    np.testing.assert_array_equal(values(doc)["x"], [[1.0, 0.0, 1.0]])  # seed.toml's second row of x
    result = CliRunner().invoke(app, ["explain", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "unshuffled split" in " ".join(result.output.split())
