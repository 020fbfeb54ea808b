"""docs/plugins.md: every hook documented, snippets identical to the example package, the package itself
installed, discovered through its entry point, listed, used in a run and tested with the kit, and the worked
layer example run as the page shows it."""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pytest

from framework import Activation, Array, Experiment, fit, hookspecs
from framework.errors import ConfigError, UnknownComponentError
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.testing import check_layer, check_plugin
from tests.docs.markdown import python_blocks
from tests.helpers import ROOT
from tests.plugin_env import make_venv, pip_install_editable, run_in

GUIDE = ROOT / "docs" / "plugins.md"
REFERENCE = ROOT / "docs" / "hooks.md"  # the guide's hook reference
EXAMPLE = ROOT / "docs" / "examples" / "backprop-quantile"
LAYER_PART = "## 2. A layer whose params name components"
HOOKS = {name: f for name, f in vars(hookspecs).items() if hasattr(f, "backprop_spec")}


def section_of(text: str, hook: str) -> str:
    match = re.search(rf"^#+ `{hook}`\n(?P<body>.*?)(?=^#+ |\Z)", text, flags=re.M | re.S)
    assert match is not None, f"docs/plugins.md has no section for the hook {hook!r}"
    return match["body"]


def part_of(text: str, heading: str) -> str:
    """The text of the part that starts with `heading` (a `## ` line), up to the next part."""
    match = re.search(rf"^{re.escape(heading)}\n(?P<body>.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match is not None, f"docs/plugins.md has no part {heading!r}"
    return match["body"]


def fenced(text: str, info: str) -> list[str]:
    """The contents of the blocks fenced with ```info, in order."""
    return re.findall(rf"^```{info}\n(.*?)^```$", text, flags=re.M | re.S)


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_is_documented_with_its_arguments(hook: str) -> None:
    body = section_of(REFERENCE.read_text(encoding="utf-8"), hook)
    for argument in inspect.signature(HOOKS[hook]).parameters:
        assert f"`{argument}`" in body, f"the section of {hook} does not mention its argument {argument!r}"


def test_the_reference_lists_no_hook_that_does_not_exist() -> None:
    documented = re.findall(r"^#### `(\w+)`", REFERENCE.read_text(encoding="utf-8"), flags=re.M)
    assert sorted(documented) == sorted(HOOKS)


def test_the_guide_shows_the_example_package_as_it_is() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    sources = "\n".join(p.read_text(encoding="utf-8") for p in EXAMPLE.rglob("*.py"))
    layer_blocks = [block for _, block in python_blocks(part_of(text, LAYER_PART))]
    assert len(layer_blocks) == 1, "part 2 shows one file, scale_layer.py (run by the test below)"
    shown = [(line, block) for line, block in python_blocks(text) if block not in layer_blocks]
    assert len(shown) == 4, "the tutorial shows the loss, its two hooks and the package's tests"
    for line, block in shown:
        assert block.strip() in sources, f"docs/plugins.md line {line}: the block differs from {EXAMPLE}"
    assert (EXAMPLE / "quantile.toml").read_text(encoding="utf-8").strip() in text
    pyproject = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    toml = re.search(r"```toml\n(\[project\]\nname = \"backprop-quantile\".*?)```", text, flags=re.S)
    assert toml is not None
    for line in toml[1].splitlines():
        assert line in pyproject.splitlines(), line


def test_the_examples_take_no_name_that_an_installed_plugin_has() -> None:
    # Whatever is installed here (the built-ins, perhaps the example package itself) besides the examples.
    host = create_plugin_manager(strict=True)
    registry = Registry.from_host(host)
    loss, layer, plugin = (
        registry.entries("loss").get("quantile"),
        registry.entries("layer").get("scale"),
        host.infos.get("quantile"),
    )
    assert loss is None or loss.plugin == "quantile", f"loss 'quantile' is registered by plugin {loss.plugin!r}"
    assert layer is None, f"layer 'scale' is registered by plugin {layer.plugin!r}"
    assert plugin is None or plugin.distribution == "backprop-quantile", f"plugin 'quantile' is {plugin.source}"


@pytest.fixture
def layer_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, Path]:
    """Part 2's scale_layer.py and its experiment, written from the page into a directory, and the module."""
    part = part_of(GUIDE.read_text(encoding="utf-8"), LAYER_PART)
    ((_, code),) = python_blocks(part)
    (tmp_path / "scale_layer.py").write_text(code, encoding="utf-8")
    experiments = [block for block in fenced(part, "toml") if "plugins = " in block]
    assert len(experiments) == 1, "part 2 shows one experiment that uses scale_layer.py"
    (tmp_path / "scaled.toml").write_text(experiments[0], encoding="utf-8")
    spec = importlib.util.spec_from_file_location("scale_layer_of_the_guide", tmp_path / "scale_layer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module, tmp_path / "scaled.toml"


def attached(layer: Any, **components: Any) -> Any:
    """`layer` with the given components attached, and the rest of its component params from the installed
    plugins (as a run attaches them)."""
    registry = Registry.from_host(create_plugin_manager(strict=False))
    registry.attach_components(layer, where="scale")
    for field, component in components.items():
        layer.attach(field, component)
    return layer


def test_the_layer_example_passes_the_kit_with_several_activations(layer_example: tuple[ModuleType, Path]) -> None:
    module, _ = layer_example
    check_plugin(module)  # the defaults: identity, all weights 1
    check_layer(module.Scale(activation="tanh", init="glorot_uniform"))  # the page's example
    check_layer(module.Scale(activation={"name": "leaky_relu", "negative_slope": 0.1}, init={"name": "normal"}))

    # An activation whose backward is a full Jacobian product goes through the same code.
    class RowSoftmax(Activation):
        """softmax over each row, a = e^z / Σ_j e^(z_j): an activation that is not element-wise."""

        name: ClassVar[str] = "row_softmax"
        elementwise: ClassVar[bool] = False

        def forward(self, z: Array, out: Array | None = None) -> Array:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return np.divide(e, e.sum(axis=1, keepdims=True), out=out)

        def backward(self, z: Array, a: Array, grad: Array) -> Array:
            return a * (grad - np.sum(grad * a, axis=1, keepdims=True))  # (∂a/∂z)ᵀ·grad, row by row

    check_layer(attached(module.Scale(), activation=RowSoftmax()))


def test_the_layer_example_computes_f_of_w_times_x(layer_example: tuple[ModuleType, Path]) -> None:
    module = layer_example[0]
    layer = attached(module.Scale(activation="tanh", init={"name": "constant", "value": 2.0}))
    assert layer.build(2, np.dtype(np.float64), np.random.default_rng(0)) == 2
    x = np.array([[0.5, -1.0], [0.25, 1.5]])
    expected = [[math.tanh(2 * 0.5), math.tanh(2 * -1.0)], [math.tanh(2 * 0.25), math.tanh(2 * 1.5)]]
    np.testing.assert_allclose(layer.forward(x, training=False), expected, rtol=1e-14)
    np.testing.assert_allclose(layer.forward(x, training=True), expected, rtol=1e-14)
    layer.needs_input_grad = True
    dx = layer.backward(np.ones((2, 2)))
    # With L = Σ a: dL/dz = 1 - tanh²(z), dL/dw_j = Σ_i x_ij (1 - tanh²(z_ij)), dL/dx = w (1 - tanh²(z)).
    slope = [[1 - math.tanh(1.0) ** 2, 1 - math.tanh(-2.0) ** 2], [1 - math.tanh(0.5) ** 2, 1 - math.tanh(3.0) ** 2]]
    np.testing.assert_allclose(dx, 2 * np.array(slope), rtol=1e-12)
    dw = [0.5 * slope[0][0] + 0.25 * slope[1][0], -1.0 * slope[0][1] + 1.5 * slope[1][1]]
    np.testing.assert_allclose(layer.gradients()[0], dw, rtol=1e-12)


def test_the_layer_example_trains_from_the_experiment_of_the_page(layer_example: tuple[ModuleType, Path]) -> None:
    _, path = layer_example
    result = fit(Experiment.from_file(path), track=False)
    assert len(result.history) == 5
    assert result.experiment is not None
    layer = result.experiment.model.layers[0]
    assert layer.type == "scale"
    # The resolved config writes the components out with their params, the default `init` included.
    assert layer.component_params() == {
        "activation": {"name": "leaky_relu", "negative_slope": 0.1},
        "init": {"name": "constant", "value": 1.0},
    }


def test_a_bad_param_of_the_layers_activation_is_refused_naming_its_key(
    layer_example: tuple[ModuleType, Path],
) -> None:
    _, path = layer_example
    with pytest.raises(
        ConfigError, match=r"model\.layers\.0\.activation\.negative_slope: .*greater than or equal to 0"
    ):
        fit(Experiment.from_file(path, ["model.layers.0.activation.negative_slope=-1"]), track=False)
    with pytest.raises(UnknownComponentError, match=r"model\.layers\.0\.init\.name: unknown initializer 'ones'"):
        fit(Experiment.from_file(path, ["model.layers.0.init.name=ones"]), track=False)


@pytest.mark.slow
def test_the_example_installs_is_listed_runs_and_passes_its_tests(tmp_path: Path) -> None:
    package = tmp_path / "backprop-quantile"  # a copy: installing writes metadata next to the sources
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    python = make_venv(tmp_path / "venv")
    pip_install_editable(python, package)
    cli = ("-m", "framework.cli")

    listed = run_in(python, *cli, "plugins", "list", "--json", cwd=package)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    quantile = plugins["quantile"]
    assert quantile["source"] == "backprop-quantile 0.1.0" and quantile["version"] == "0.1.0"
    assert quantile["status"] == "active" and quantile["distribution"] == "backprop-quantile"
    assert quantile["hooks"] == ["register_commands", "register_losses"]
    assert quantile["components"] == {"loss": ["quantile"]} and quantile["commands"] == ["quantile-table"]
    for builtin in ("activations", "layers", "losses", "optimizers", "datasets", "metrics", "tracking"):
        assert plugins[builtin]["version"] and plugins[builtin]["status"] == "active"

    check = run_in(python, *cli, "plugins", "check", cwd=package)  # no name clashes with the built-ins
    assert check.returncode == 0, check.stdout + check.stderr
    table = run_in(python, *cli, "quantile-table", "--quantile", "0.9", cwd=package)
    assert table.returncode == 0, table.stderr
    shown = re.search(
        r"quantile-table --quantile 0\.9\n```\n\n```text\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S
    )
    assert shown is not None and table.stdout == shown[1], table.stdout
    refused = run_in(python, *cli, "quantile-table", "--quantile", "1", cwd=package)
    assert refused.returncode == 2 and "Invalid value for '--quantile': Input should be less than 1" in refused.stderr
    assert run_in(python, *cli, "validate", "quantile.toml", cwd=package).returncode == 0
    bad = run_in(python, *cli, "validate", "quantile.toml", "--set", "loss.quantile=1", cwd=package)
    assert bad.returncode == 2 and "loss.quantile: Input should be less than 1" in bad.stderr, bad.stderr
    run = run_in(python, *cli, "run", "quantile.toml", "--no-track", "-q", "--set", "training.epochs=3", cwd=package)
    assert run.returncode == 0, run.stderr
    assert "completed 3 epochs" in run.stdout
    disabled = run_in(python, *cli, "run", "quantile.toml", "--no-track", "--disable-plugin", "quantile", cwd=package)
    assert disabled.returncode == 2 and "unknown loss 'quantile'" in disabled.stderr

    tests = run_in(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
