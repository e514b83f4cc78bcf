"""The commands that take a recipe: fit, validate, lr-find, explain."""

from __future__ import annotations

import click

from tltf.cli.common import echo_metrics, recipe_overrides, user_errors
from tltf.train import learning_rate_rules


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@recipe_overrides
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Write the run here (new or empty) instead of runs/<name>-<UTC time>/. If DIR.partial/ holds an "
                   "interrupted run of the same recipe, it is continued.")
@click.option("--resume", is_flag=True, help="Continue the newest interrupted run of this recipe under runs/.")
@click.option("--restart", is_flag=True, help="Discard the interrupted run in --run-dir and start again.")
@user_errors
def fit(recipe, overrides, run_dir, resume, restart):
    """Train and evaluate RECIPE, writing a run directory.

    The console shows the resolved plan (phases with trainable and frozen
    parameter counts), Keras progress while training and a table of test
    metrics. Exit code 2 means a recipe, data or weights problem, reported on
    one line; nothing is left half-written.

    A run is built in DIR.partial/ and saves its whole training state after
    every epoch; if it is killed, running the same command again continues
    from the last epoch saved (--resume finds it without --run-dir).
    """
    import tltf

    loaded = tltf.load_recipe(recipe, list(overrides))
    result = tltf.fit(loaded, run_dir, resume=resume, restart=restart)
    echo_metrics(result.metrics)
    for line in tltf.evaluate.adaptation_lines(result.metrics) + tltf.evaluate.health_lines(result.metrics):
        click.echo(line)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@recipe_overrides
@user_errors
def validate(recipe, overrides):
    """Check RECIPE without training, and print it with every default filled in.

    Checks the keys and values, and that the backbone's weights can be had (a
    local file, the Keras cache or a download) and fit; the data is checked
    by `tltf fit` and, as far as it reads it, by `tltf explain`.
    """
    import tltf

    loaded = tltf.load_recipe(recipe, list(overrides))
    tltf.check_weights(loaded)
    click.echo(loaded.to_yaml(), nl=False)
    click.echo(f"# {recipe}: valid", err=True)


@click.command("lr-find")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--phase", default=None, help="The phase to sweep (tltf explain lists them); default the last one.")
@recipe_overrides
@click.option("--out", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where lr_find.png and lr_find.json go.")
@click.option("--steps", type=click.IntRange(min=3), default=100, show_default=True,
              help="At most this many training steps, one rate each.")
@click.option("--min-lr", type=click.FloatRange(min=0, min_open=True), default=1e-7, show_default=True)
@click.option("--max-lr", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--rule", type=click.Choice([learning_rate_rules.AUTO, *learning_rate_rules.names()]),
              default=learning_rate_rules.AUTO, show_default=True, help="How the rate is read off the curve: "
              + "; ".join([f"auto: {learning_rate_rules.AUTO_DESCRIPTION}", *(
                  f"{name}: {learning_rate_rules.get(name).description}" for name in learning_rate_rules.names())]))
@user_errors
def lr_find(recipe, phase, overrides, out, steps, min_lr, max_lr, rule):
    """Suggest a learning rate for a phase of RECIPE: a short exponential sweep.

    Trains the phases before it as tltf fit does, then the phase itself for at
    most --steps steps, one rate each from --min-lr to --max-lr; smooths the
    loss, stops when it diverges, and suggests a rate by --rule (auto: the
    rule that fits how the phase starts; docs/fine-tuning.md measures each
    against rate sweeps). The other rules' rates are printed too. The
    model is never saved and nothing else is written: only OUT/lr_find.png
    and OUT/lr_find.json ({"suggested_lr", "rule", "rule_description",
    "suggestions", "lrs", "losses"}). The suggestion is for the phase's base
    rate (train.lr, or train.head_warmup.lr for a warm-up).
    """
    import tltf
    from tltf.lr_find import find_learning_rate, write_learning_rate_finder

    if min_lr >= max_lr:
        raise tltf.errors.TltfError(f"--min-lr {min_lr:g} must be below --max-lr {max_lr:g}")
    result = find_learning_rate(tltf.load_recipe(recipe, list(overrides)), phase, steps, min_lr, max_lr, rule)
    json_path, png_path = write_learning_rate_finder(result, out)
    suggestion = "none (the loss never fell)" if result["suggested_lr"] is None else f"{result['suggested_lr']:.3g}"
    click.echo(f"phase {result['phase']}: suggested learning rate {suggestion} (rule {result['rule']}: "
               f"{result['rule_description']}); {len(result['lrs'])} steps swept")
    others = ", ".join(f"{name} {rate:.2g}" if rate else f"{name} none" for name, rate in result["suggestions"].items()
                       if name != result["rule"])
    click.echo(f"other rules: {others} (docs/fine-tuning.md: which rule fits which curve, measured against rate "
               "sweeps)")
    click.echo(f"wrote {png_path} and {json_path}")


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@recipe_overrides
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the explanation to this JSON file.")
@user_errors
def explain(recipe, overrides, json_path):
    """Show the fine-tuning RECIPE asks for, block by block, without training.

    For each phase (and each step of a gradual unfreezing) and each block from
    the stem to the head: trainable or frozen, BatchNorm mode, parameters,
    effective learning rate at the phase's start, peak and end, and weight
    decay. Reads only the class names and counts of the data; builds the
    backbone without weights. Warns about pixel ranges, class weights and
    replica scaling.
    """
    import json

    import tltf

    explanation = tltf.explain(tltf.load_recipe(recipe, list(overrides)))
    click.echo(tltf.format_explanation(explanation), nl=False)
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(explanation, handle, indent=2)
