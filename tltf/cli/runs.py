"""The commands that take a finished run (or its export): evaluate, compare, export, predict, saliency."""

from __future__ import annotations

import sys

import click

from tltf.cli.common import echo_metrics, user_errors
from tltf.ensemble.run import WEIGHTINGS


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
@click.argument("target", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--dicom-window", default=None, metavar="auto|none|CENTRE,WIDTH",
              help="How DICOM files are windowed. Default: the run's data.dicom.window; auto for a SavedModel "
                   "(give the window it was trained with).")
@user_errors
def predict(target, images, fmt, dicom_window):
    """Predict IMAGES (files, folders or globs) with TARGET.

    TARGET is a run directory (model.keras), a SavedModel version folder, or
    a TF Serving model folder (its highest version is used). Each file gets
    its predicted class (binary: at the threshold chosen on val) and
    class_probability, the model's probability of that class; --format json
    also lists the probability of every class. A file that cannot be decoded
    gets an error row and the others go on; the exit code is 1 when any file
    failed.

    DICOM (.dcm) and TIFF files are decoded here, at their full depth, and sent
    to a SavedModel's float signature: TF Serving cannot decode them. Only
    their pixels are read; nothing of a DICOM header reaches the output.
    """
    import tltf

    window = _dicom_window(dicom_window)
    rows = tltf.export.Predictor(target, window).predict(tltf.export.expand_inputs(images))
    click.echo(tltf.export.predict.format_predictions(rows, fmt), nl=False)
    failed = sum(row.error is not None for row in rows)
    if failed:
        click.echo(f"tltf: {failed} of {len(rows)} files could not be predicted", err=True)
        sys.exit(1)


@click.command()
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
    OUT/<image name>_saliency.png: the image as the model takes it, beside
    the same image under a heat map of where the evidence for the class the
    model decides is (red: most; with its colour scale), and above them that
    class and its probability (binary models decide at the threshold chosen
    on val). The map is Grad-CAM on the backbone's last feature map.
    """
    from tltf.export import expand_inputs, write_saliency_files

    written = write_saliency_files(target, expand_inputs(images), out)
    click.echo(f"{len(written)} saliency map{'s' if len(written) != 1 else ''} written to {out}/")


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--weights", "weighting", type=click.Choice(WEIGHTINGS), default="equal", show_default=True,
              help="equal, or val: the member weights with the least validation log-loss (fitted on val only).")
@click.option("--name", default=None, help="The ensemble's name (its recipe name). Default: the first run's "
                                           "recipe name with -ensemble.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Write the ensemble here (new or empty) instead of runs/<name>-<UTC time>/.")
@user_errors
def ensemble(run_dirs, weighting, name, run_dir):
    """Average finished runs into one run: an ensemble.

    RUN_DIRS are finished runs on the same data and classes (backbones,
    image sizes and seeds may differ: each member keeps its own
    preprocessing, and sees the input resized to its size). The new run
    directory's model.keras is one Keras model whose output is the weighted
    mean of the members' probabilities, evaluated like any run (metrics.json
    with the members and weights, predictions.csv, report.md, plots), so
    tltf evaluate, compare, export (with its parity check) and predict work
    on it unchanged. Saliency maps are made on a member. Members whose
    validation split was carved from train with different seeds are refused:
    their validation images trained each other.
    """
    import tltf

    result = tltf.ensemble.make_ensemble(list(run_dirs), run_dir, weighting, name)
    echo_metrics(result.metrics)


def _dicom_window(text):
    """`--dicom-window` as `read_dicom` takes it; a bad value is one line (`TltfError`, exit 2)."""
    from tltf.errors import TltfError

    if text is None or text in ("auto", "none"):
        return text
    try:
        centre, width = (float(part) for part in text.split(","))
    except ValueError:
        raise TltfError(f"--dicom-window {text}: expected auto, none or CENTRE,WIDTH (e.g. 40,400)") from None
    return centre, width
