"""What every tltf command shares: the --set help and turning a user's error into one line and exit code 2."""

from __future__ import annotations

import functools
import sys

import click

SET_HELP = "Override a recipe field, e.g. --set train.epochs=3 (repeatable; VALUE is YAML)."


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
