"""What every tltf command shares: the --set option and turning a user's error into one line and exit code 2."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

SET_HELP = "Override a recipe field, e.g. --set train.epochs=3 (repeatable; VALUE is YAML)."

# `--set KEY=VALUE` of every command that loads a recipe, declared once; the command receives `overrides`.
recipe_overrides = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)


def user_errors(command):
    """Turns `TltfError` into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from tltf.errors import TltfError

        try:
            return command(*args, **kwargs)
        except TltfError as error:
            click.echo(f"tltf: error: {error}", err=True)
            sys.exit(2)

    return wrapper


def data_source_from_text(text: str, option: str):
    """A data-source config from the command line: a `.npz` file, a folder of class folders, or a YAML mapping
    such as `{source: medmnist, name: pneumoniamnist}`.

    Raises:
        RecipeError: naming `option`, when the text is none of these or the mapping is not a valid source.
    """
    import yaml

    from tltf.errors import RecipeError
    from tltf.recipe.load import validate_data_source

    path = Path(text).expanduser()
    if text.endswith(".npz"):
        raw = {"source": "npz", "path": text}
    elif path.is_dir():
        raw = {"source": "directory", "path": text}
    else:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError:
            raw = None
        if not isinstance(raw, dict):
            raise RecipeError(f"{option} {text}: not an .npz file, a folder or a YAML mapping such as "
                              "'{source: npz, path: data.npz}'")
    return validate_data_source(raw, f"{option} {text}")


def echo_metrics(metrics: dict) -> None:
    """A finished run's metrics table under its title (which splits it holds), as `fit` and `zero-shot` print it."""
    from tltf.evaluate import format_table, metrics_rows, metrics_title

    click.echo("\n" + metrics_title(metrics) + ":")
    click.echo(format_table(metrics_rows(metrics)))
