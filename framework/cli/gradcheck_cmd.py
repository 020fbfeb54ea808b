"""`backprop gradcheck CONFIG`: the experiment's gradients against finite differences, in float64."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from framework.cli.common import EXIT_FAILURE, user_errors
from framework.cli.plugin_options import AddPlugin, DisablePlugin, extra_plugins

TOLERANCE = 1e-5  # framework.gradcheck.TOLERANCE, repeated so that --help does not import numpy


def gradcheck(
    config: Annotated[Path, typer.Argument(help="Experiment file (.toml, .yaml, .yml or .json).")],
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0.0, help="Largest relative error that passes (default 1e-5).")
    ] = TOLERANCE,
    samples: Annotated[int, typer.Option("--samples", min=1, help="How many training rows to check on.")] = 4,
    max_elements: Annotated[
        int, typer.Option("--max-elements", min=1, help="Positions checked per array (drawn with the seed).")
    ] = 200,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key, e.g. --set optimizer.lr=0.1 (repeatable)."),
    ] = None,
    disable_plugin: DisablePlugin = None,
    plugin: AddPlugin = None,
) -> None:
    """Check CONFIG's model and loss (with whatever plugins they use) against central finite differences in
    float64: the max relative error of every parameter array's gradient and of the input's. Exit 0 when all
    are within --tolerance, 1 naming the failing array and the component to blame."""
    failed: list[str] = []
    with user_errors():
        from framework.build import prepare_run
        from framework.config import Experiment
        from framework.gradcheck import check, suspects

        experiment = Experiment.from_file(config, [*(set_ or []), "dtype=float64"])
        run = prepare_run(experiment, track=False, plugins=extra_plugins(plugin), disabled_plugins=disable_plugin or [])
        checks = check(run, samples, max_elements)
        typer.echo(f"{config}: gradients against central finite differences (float64, tolerance {tolerance:g})")
        for c in checks:
            verdict = "ok" if c.ok(tolerance) else "FAIL"
            shape = "x".join(map(str, c.shape))
            typer.echo(f"  {c.name:<16} ({shape}, {c.checked} checked)  max relative error {c.error:.2e}  {verdict}")
        failed = [c.name for c in checks if not c.ok(tolerance)]
        if failed:
            blamed = suspects(run, checks, tolerance)
            typer.echo(
                f"error: {', '.join(failed)} {'does' if len(failed) == 1 else 'do'} not match finite differences; "
                "check the backward of: " + "; ".join(blamed),
                err=True,
            )
    if failed:
        raise typer.Exit(EXIT_FAILURE)
    typer.echo("ok: every gradient matches")
