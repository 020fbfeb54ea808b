"""`backprop new-plugin`: write a plugin package that installs with `pip install -e` and passes its tests.

The package has a `pyproject.toml` registering the module under the `backprop` entry-point group, the
module with a worked example of the chosen kind, a test that runs the conformance kit and a short training
run, and a README saying how to install, test and use it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from pprint import pformat
from string import Template

from framework.errors import UserError
from framework.scaffold.examples import MODULES, SUMMARIES, experiment

KINDS = tuple(MODULES)
DIST_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")

PYPROJECT = """[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A backprop plugin: $summary."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["backprop"]

# This is what makes backprop find the plugin: the entry-point name is the plugin's name.
[project.entry-points.backprop]
$component = "$module"

[tool.setuptools]
py-modules = ["$module"]

[tool.pytest.ini_options]
testpaths = ["tests"]
filterwarnings = ["error"]
"""

TEST = '''"""The $component plugin: the conformance kit, its entry point, and a short training run."""

from __future__ import annotations

from importlib.metadata import entry_points

import $module
from framework import Experiment, fit
from framework.testing import check_plugin

EXPERIMENT = $experiment


def test_the_plugin_passes_the_conformance_kit() -> None:
    check_plugin($module)


def test_the_plugin_is_installed_under_its_entry_point() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="backprop")}
    assert found.get("$component") == "$module", "install the package first: pip install -e ."


def test_an_experiment_trains_with_it() -> None:
    result = fit(Experiment.from_dict(EXPERIMENT), track=False)
    assert len(result.history) >= 1
'''

README = """# $dist

A [backprop](https://github.com/) plugin: $summary, registered as the $kind `$component`.

## Install and test

```bash
pip install -e .
pytest
```

The test runs backprop's conformance kit (`framework.testing.check_plugin`) over every component the plugin
registers, checks the entry point, and trains a short experiment with it.

## Use it

Once installed, backprop finds it through the `backprop` entry-point group:

```bash
backprop plugins list            # shows '$component' with its source, hooks and components
backprop validate experiment.toml
backprop run experiment.toml
```

where the experiment names it, for example:

```toml
$usage
```

Disable it for a run with `--disable-plugin $component` (or `BACKPROP_DISABLE_PLUGINS=$component`).
Edit `$module.py` to make it your own; keep `pytest` green.
"""


def names_for(name: str) -> tuple[str, str, str, str]:
    """The distribution, module, component and class names for a plugin called `name`."""
    if not DIST_PATTERN.match(name):
        raise UserError(f"plugin name {name!r}: use letters, digits, '-', '_' and '.', starting with a letter")
    module = re.sub(r"[-.]", "_", name).lower()
    component = module.removeprefix("backprop_") or module
    cls = "".join(part.capitalize() for part in component.split("_") if part)
    return name, module, component, cls


def _usage(kind: str, component: str) -> str:
    run = experiment(kind, component)
    if kind == "activation":
        return f'[model]\nlayers = [{{ units = 8, activation = "{component}" }}, {{ units = 1 }}]'
    if kind == "initializer":
        table = f'{{ name = "{component}", stddev = 0.1 }}'
        return f'[model]\nlayers = [\n  {{ units = 8, activation = "tanh", init = {table} }},\n  {{ units = 1 }},\n]'
    if kind == "callback":
        return f'[callbacks.{component}]\nmonitor = "val_loss"\ntarget = 0.05'
    section = {"optimizer": "optimizer", "loss": "loss", "dataset": "data"}[kind]
    lines = [f"[{section}]"] + [f"{key} = {json.dumps(value)}" for key, value in run[section].items()]
    return "\n".join(lines)


def write_plugin(parent: Path, name: str, kind: str) -> Path:
    """Write the plugin package `name` of `kind` into `parent / name` and return that directory."""
    if kind not in MODULES:
        raise UserError(f"unknown plugin kind {kind!r}; choose one of {', '.join(KINDS)}")
    dist, module, component, cls = names_for(name)
    target = parent / dist
    if target.exists():
        raise UserError(f"{str(target)!r} already exists; choose another name or directory")
    values = {
        "dist": dist,
        "module": module,
        "component": component,
        "Class": cls,
        "kind": kind,
        "summary": SUMMARIES[kind],
        "experiment": pformat(experiment(kind, component), width=100, sort_dicts=False),
        "usage": _usage(kind, component),
    }
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{module}.py": MODULES[kind],
        f"tests/test_{module}.py": TEST,
    }
    rendered = {path: Template(text).substitute(values) for path, text in files.items()}  # all or nothing
    for path, text in rendered.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text, encoding="utf-8")
    return target
