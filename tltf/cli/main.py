"""tltf's click commands: parse arguments, call the library, report.

Errors a user can fix (`tltf.errors.TltfError`) print one line on stderr and
exit with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings

import click

from tltf.cli.common import SET_HELP, data_source_from_text, user_errors
from tltf.cli.studies import study, tune


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


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
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
    click.echo(f"\ntest metrics ({result.metrics['test']['split']}):")
    click.echo(tltf.evaluate.format_table(tltf.evaluate.metrics_rows(result.metrics)))
    for line in tltf.evaluate.adaptation_lines(result.metrics) + tltf.evaluate.health_lines(result.metrics):
        click.echo(line)
    click.echo(f"\nrun: {result.run_dir}")


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
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


@main.command("lr-find")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--phase", default=None, help="The phase to sweep (tltf explain lists them); default the last one.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--out", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where lr_find.png and lr_find.json go.")
@click.option("--steps", type=click.IntRange(min=3), default=100, show_default=True,
              help="At most this many training steps, one rate each.")
@click.option("--min-lr", type=click.FloatRange(min=0, min_open=True), default=1e-7, show_default=True)
@click.option("--max-lr", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@user_errors
def lr_find(recipe, phase, overrides, out, steps, min_lr, max_lr):
    """Suggest a learning rate for a phase of RECIPE: a short exponential sweep.

    Trains the phase for at most --steps steps, one rate each from --min-lr to
    --max-lr, smooths the loss, stops when it diverges, and suggests the rate
    where it falls fastest. The model is never saved and nothing else is
    written: only OUT/lr_find.png and OUT/lr_find.json ({"suggested_lr",
    "rule", "lrs", "losses"}). The suggestion is for the phase's base rate
    (train.lr, or train.head_warmup.lr for a warm-up).
    """
    import tltf
    from tltf.lr_find import find_learning_rate, write_learning_rate_finder

    if min_lr >= max_lr:
        raise tltf.errors.TltfError(f"--min-lr {min_lr:g} must be below --max-lr {max_lr:g}")
    result = find_learning_rate(tltf.load_recipe(recipe, list(overrides)), phase, steps, min_lr, max_lr)
    json_path, png_path = write_learning_rate_finder(result, out)
    suggestion = "none (the loss never fell)" if result["suggested_lr"] is None else f"{result['suggested_lr']:.3g}"
    click.echo(f"phase {result['phase']}: suggested learning rate {suggestion} ({result['rule']}); "
               f"{len(result['lrs'])} steps swept")
    click.echo(f"wrote {png_path} and {json_path}")


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
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


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True,
              help="Which split of the run's data to evaluate.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics to this JSON file.")
@user_errors
def evaluate(run_dir, split, json_path):
    """Re-evaluate a saved run's best model (RUN_DIR/model.keras) on one split.

    The binary decision threshold is the one chosen on val at training time
    (RUN_DIR/metrics.json).
    """
    import json

    import tltf

    metrics = tltf.evaluate.evaluate_run(run_dir, split)
    click.echo(tltf.evaluate.format_table(tltf.evaluate.single_split_rows(metrics), header=("metric", split)))
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(metrics, handle, indent=2)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="Which split's per-image predictions to pair.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help='Also write {"pairs": [{"a", "b", "auc_a", "auc_b", "difference", "ci", "p", "method"}]}.')
@user_errors
def compare(run_dirs, split, json_path):
    """Compare runs paired on the same test images: AUC difference (B - A), 95% CI and p for every pair.

    Binary runs use DeLong's test for correlated AUCs, multiclass runs a paired
    bootstrap of the macro one-vs-rest AUC. The runs must have been evaluated on
    the same images (same count and labels, in order): each run directory keeps
    them in predictions.csv.
    """
    import json

    import tltf

    pairs = tltf.evaluate.compare_runs(list(run_dirs), split)
    rows = [(p["a"], p["b"], f"{p['auc_a']:.4f}", f"{p['auc_b']:.4f}", f"{p['difference']:+.4f}",
             f"[{p['ci'][0]:+.4f}, {p['ci'][1]:+.4f}]", f"{p['p']:.3g}", p["method"]) for p in pairs]
    click.echo(tltf.evaluate.format_table(rows, header=("A", "B", "AUC A", "AUC B", "B - A", "95% CI", "p", "method")))
    if json_path:
        with open(json_path, "w") as handle:
            json.dump({"pairs": pairs}, handle, indent=2)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="exports", show_default=True,
              help="TF Serving base folder; the model goes in OUT/<recipe name>/<version>/.")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Version number (default: one more than the highest present).")
@click.option("--force", is_flag=True, help="Replace an existing version folder.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Reload the SavedModel and compare both signatures with the Keras model before publishing.")
@click.option("--verify-images", type=click.IntRange(min=2), default=16, show_default=True,
              help="Validation images the parity check uses.")
@user_errors
def export(run_dir, out, version, force, verify, verify_images):
    """Export RUN_DIR's best model as a SavedModel for TF Serving.

    Two signatures: serving_default (float32 images, raw 0-255 pixels, any
    size) and serving_bytes (encoded JPEG/PNG/BMP/GIF strings). Both return
    probabilities, class_id (binary: at the threshold chosen on val) and
    class_name. Also writes warm-up requests and OUT/<name>/model_card.md.
    The version is built aside and renamed into place only once verified.
    """
    import tltf

    result = tltf.export.export_run(run_dir, out, version, force, verify, verify_images)
    click.echo(f"model card: {result.model_card}")


@main.command()
@click.argument("target", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@user_errors
def predict(target, images, fmt):
    """Predict IMAGES (files, folders or globs) with TARGET.

    TARGET is a run directory (model.keras), a SavedModel version folder, or
    a TF Serving model folder (its highest version is used). Each file gets
    its predicted class (binary: at the threshold chosen on val) and
    class_probability, the model's probability of that class; --format json
    also lists the probability of every class. A file that cannot be decoded
    gets an error row and the others go on; the exit code is 1 when any file
    failed.
    """
    import tltf

    rows = tltf.export.Predictor(target).predict(tltf.export.expand_inputs(images))
    click.echo(tltf.export.predict.format_predictions(rows, fmt), nl=False)
    failed = sum(row.error is not None for row in rows)
    if failed:
        click.echo(f"tltf: {failed} of {len(rows)} files could not be predicted", err=True)
        sys.exit(1)


@main.command()
@click.argument("target", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True)
@click.option("--out", type=click.Path(file_okay=False), default="saliency", show_default=True,
              help="Where <image>_saliency.png go.")
@user_errors
def saliency(target, images, out):
    """Grad-CAM heat maps of IMAGES (files, folders or globs) for TARGET.

    TARGET is a run directory (model.keras) or an exported SavedModel (a
    version folder, or a TF Serving model folder whose highest version is
    used; tltf exports carry a `saliency` signature). Each image gets
    OUT/<image name>_saliency.png: the image as the model takes it, under a
    heat map of where the evidence for the class the model decides is (red:
    most; binary models decide at the threshold chosen on val). The map is
    Grad-CAM on the backbone's last feature map.
    """
    from tltf.export import expand_inputs, write_saliency_files

    written = write_saliency_files(target, expand_inputs(images), out)
    click.echo(f"{len(written)} saliency map{'s' if len(written) != 1 else ''} written to {out}/")


@main.command()
@click.option("--source", "source", required=True, metavar="DATA",
              help="The labelled source: an .npz file, a folder of class folders, or a YAML mapping like a recipe's "
                   "data section, e.g. '{source: medmnist, name: pneumoniamnist}'.")
@click.option("--target", "target", required=True, metavar="DATA",
              help="The target domain, the same way (its labels are not used).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="The .npz to write.")
@click.option("--image-size", type=click.IntRange(min=8), default=32, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Passes over the larger image set.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--filters", type=click.IntRange(min=1), default=16, show_default=True,
              help="First-layer channels of the generators and discriminators (their size and speed).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-4, show_default=True,
              help="Adam's learning rate (beta_1 0.5) for the generators and the discriminators.")
@click.option("--seed", type=int, default=0, show_default=True)
@user_errors
def translate(source, target, out, image_size, epochs, batch_size, filters, lr, seed):
    """Translate a labelled source into a target domain's look (CycleGAN).

    Trains a small CycleGAN on the two image sets (unpaired), then writes
    OUT: every labelled split of the source, translated, with its labels
    ({split}_images, {split}_labels, class_names), which `tltf fit` trains on
    with data: {source: npz, path: OUT}. Beside it: <OUT stem>_translation.png
    (source, translated, translated back; target, target to source) and
    <OUT stem>_losses.csv (each loss per epoch).
    """
    from tltf.adapt.translate import TranslationSettings, translate_source

    settings = TranslationSettings(image_size=image_size, epochs=epochs, batch_size=batch_size, filters=filters,
                                   lr=lr, seed=seed)
    result = translate_source(data_source_from_text(source, "--source"), data_source_from_text(target, "--target"),
                              out, settings, verbose=1 if sys.stdout.isatty() else 2)
    click.echo(f"translated source: {result.npz}; samples: {result.grid}; losses: {result.losses}")


@main.command("zero-shot")
@click.argument("data", metavar="DATA")
@click.option("--preset", required=True, metavar="PRESET",
              help="A CLIP preset: a local folder saved with save_to_preset (both towers, tokenizer, image "
                   "converter) or a KerasHub preset name (downloaded once).")
@click.option("--template", "templates", multiple=True, metavar="TEXT",
              help="A prompt template, {} for the class name (repeatable: the prompts' embeddings are averaged). "
                   "Default: 'a photo of a {}.'")
@click.option("--classes", default=None, metavar="A,B,...",
              help="The words for each class in the prompts, in label order. Default: the data's class names.")
@click.option("--image-size", type=click.IntRange(min=8), default=None,
              help="The images' size in pixels. Default: the preset's.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Write the run here (new or empty) instead of runs/zero-shot-<UTC time>/.")
@user_errors
def zero_shot(data, preset, templates, classes, image_size, overrides, run_dir):
    """Classify DATA with CLIP and no training: the zero-shot baseline.

    DATA is an .npz file, a folder of class folders, or a YAML mapping like a
    recipe's data section. Each class becomes prompts (every --template with
    its name); an image's class probabilities are the softmax of its CLIP
    image embedding's cosine similarity with each class's averaged text
    embedding, times CLIP's temperature. The run directory is an ordinary
    run's (metrics.json with AUC and CI, predictions.csv, report.md, ROC,
    confusion matrix, model.keras, recipe.yaml with train.strategy
    zero_shot), so `tltf compare` sets it against fine-tuned runs and `tltf
    export` serves it. The same head can start a fine-tune: model.zero_shot
    in a recipe (docs/backbones.md).
    """
    import tltf
    from tltf.recipe.load import zero_shot_recipe

    recipe = zero_shot_recipe(data_source_from_text(data, "DATA"), preset, list(templates) or None,
                              classes.split(",") if classes else None, image_size, overrides)
    result = tltf.fit(recipe, run_dir)
    click.echo(f"\ntest metrics ({result.metrics['test']['split']}):")
    click.echo(tltf.evaluate.format_table(tltf.evaluate.metrics_rows(result.metrics)))
    click.echo(f"\nrun: {result.run_dir}")


main.add_command(study)
main.add_command(tune)

if __name__ == "__main__":
    main()
