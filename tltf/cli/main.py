"""tltf's click commands: parse arguments, call the library, report.

Errors a user can fix (`tltf.errors.TltfError`) print one line on stderr and
exit with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import warnings

import click

from tltf.cli.domains import translate, zero_shot
from tltf.cli.recipes import explain, fit, lr_find, validate
from tltf.cli.runs import compare, ensemble, evaluate, export, predict, saliency
from tltf.cli.studies import study, tune
from tltf.cli.weights import weights


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tltf")
def main():
    """tltf: transfer learning from ImageNet backbones to your images.

    Write a YAML recipe (data, model, train), then `tltf validate` it and
    `tltf fit` it. Each run writes runs/<recipe>-<UTC time>/ with the best
    model (model.keras), history, metrics.json, report.md and plots.
    See recipes/ for worked examples and docs/ for the recipe reference.
    """
    import tltf

    tltf.log.use_handler(_ClickHandler())
    # Keras' own warnings join tltf's channel: stderr is kept for the one-line error a failing command ends with.
    warnings.showwarning = lambda message, *args, **kwargs: tltf.log.logger.warning(str(message))


class _ClickHandler(logging.Handler):
    """The `tltf` logger's lines through click: progress and warnings on stdout, a crash notice on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=record.levelno >= logging.ERROR)


for _command in (fit, validate, lr_find, explain, evaluate, compare, ensemble, export, predict, saliency, translate,
                 zero_shot, study, tune, weights):
    main.add_command(_command)

if __name__ == "__main__":
    main()
