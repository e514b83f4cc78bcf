"""`tltf weights add`: offline set-up of ImageNet weights in the Keras cache."""

from __future__ import annotations

import click

from tltf.cli.common import user_errors


@click.group()
def weights():
    """Manage the ImageNet weights that `model.weights: imagenet` reads from the Keras cache."""


@weights.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@user_errors
def add(files):
    """Put weights FILES into the Keras cache ($KERAS_HOME/models, else ~/.keras/models) under every name Keras
    looks for them under, and check that they load.

    For a machine without internet: after this, every recipe and command with
    `model.weights: imagenet` finds the weights. A MobileNetV2 file is cached
    under the name of each input size Keras knows (the no-top weights do not
    depend on it). Running it again changes nothing. Exit code 2 when a file
    is missing or does not load as the backbone its name says.
    """
    from tltf.models.weights_cache import add_weights

    for file in files:
        added = add_weights(file)
        what = f"checked: loads as {added.checked}" if added.checked else "not checked: no family knows the name"
        click.echo(f"{file}: {len(added.written)} written, {len(added.present)} already there in {added.cache} "
                   f"({what})")
