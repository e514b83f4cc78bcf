"""The commands that take data and train or build without a recipe: translate, zero-shot."""

from __future__ import annotations

import sys

import click

from tltf.cli.common import data_source_from_text, echo_metrics, recipe_overrides, user_errors


@click.command()
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


@click.command("zero-shot")
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
@recipe_overrides
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
    echo_metrics(result.metrics)
