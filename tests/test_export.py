import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import PNEUMONIA_NPZ, needs_shared, separable_images, write_recipe
from PIL import Image

import tltf
from tltf.cli.main import main
from tltf.data.sources import load_splits
from tltf.errors import TltfError
from tltf.evaluate.evaluator import predict_probabilities
from tltf.evaluate.metrics import roc_auc
from tltf.export import export_run
from tltf.export.parity import FLOAT_TOLERANCE
from tltf.export.warmup import read_warmup_requests
from tltf.recipe import load_recipe
from tltf.run_dir import load_run_model

GOLDEN = Path(__file__).resolve().parent / "golden"


def train_run(root: Path, num_classes: int, name: str) -> Path:
    arrays = {}
    for split, n, seed in (("train", 60, 0), ("val", 24, 1)):
        images, labels = separable_images(n, 20, num_classes=num_classes, seed=seed, channels=3)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez(root / f"{name}.npz", **arrays)
    recipe = write_recipe(root / f"{name}.yaml", {"source": "npz", "path": str(root / f"{name}.npz")},
                          train={"epochs": 2}, evaluate={"bootstrap": 0})
    raw = load_recipe(recipe)
    raw.name = name
    tltf.fit(raw, root / f"run-{name}", verbose=0)
    return root / f"run-{name}"


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("binary"), 2, "binary")


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("multi"), 3, "multi")



def png(array: np.ndarray, mode=None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("which", ["binary", "multiclass"])
def test_export_reload_parity(which, binary_run, multiclass_run, tmp_path):
    run = binary_run if which == "binary" else multiclass_run
    result = export_run(run, tmp_path / "serving")
    assert result.parity.ok and result.parity.float_max_abs_diff <= FLOAT_TOLERANCE
    assert result.parity.png_max_abs_diff <= FLOAT_TOLERANCE
    loaded = tf.saved_model.load(str(result.version_dir))
    model = load_run_model(run)
    images = separable_images(5, 16, num_classes=3, seed=9, channels=3)[0]
    out = loaded.signatures["serving_default"](images=tf.constant(images, tf.float32))
    expected = predict_probabilities(model, images)
    assert np.abs(out["probabilities"].numpy() - expected).max() <= FLOAT_TOLERANCE
    names = json.loads((run / "metrics.json").read_text())["class_names"]
    assert [n.decode() for n in out["class_name"].numpy()] == [names[i] for i in out["class_id"].numpy()]
    if which == "binary":
        assert out["probabilities"].shape == (5,)
    else:
        assert out["probabilities"].shape == (5, 3)
        assert np.array_equal(out["class_id"].numpy(), expected.argmax(axis=1))


def test_binary_class_id_uses_the_stored_threshold(binary_run, tmp_path):
    metrics = json.loads((binary_run / "metrics.json").read_text())
    threshold = metrics["val"]["threshold"]
    result = export_run(binary_run, tmp_path / "serving", verify=False)
    loaded = tf.saved_model.load(str(result.version_dir))
    images = separable_images(40, 20, seed=5, channels=3)[0].astype("float32")
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    assert np.array_equal(out["class_id"].numpy(), (out["probabilities"].numpy() >= threshold).astype(int))


def test_float_signature_resizes_any_input_size(binary_run, tmp_path):
    result = export_run(binary_run, tmp_path / "serving", verify=False)
    loaded = tf.saved_model.load(str(result.version_dir))
    big = separable_images(3, 50, seed=3, channels=3)[0]
    out = loaded.signatures["serving_default"](images=tf.constant(big, tf.float32))
    from tltf.data.images import standardize

    expected = predict_probabilities(load_run_model(binary_run), standardize(big, 16))
    assert np.abs(out["probabilities"].numpy() - expected).max() <= FLOAT_TOLERANCE


def test_bytes_signature_decodes_png_jpeg_grey_rgba_and_rejects_non_images(binary_run, tmp_path):
    result = export_run(binary_run, tmp_path / "serving", verify=False)
    loaded = tf.saved_model.load(str(result.version_dir))
    serve_bytes = loaded.signatures["serving_bytes"]
    serve_float = loaded.signatures["serving_default"]
    rgb = separable_images(1, 16, seed=7, channels=3)[0][0]
    grey = rgb[..., 0]
    rgba = np.concatenate([rgb, np.full((16, 16, 1), 77, np.uint8)], axis=-1)

    def float_probability(array):
        return serve_float(images=tf.constant(array[None], tf.float32))["probabilities"].numpy()

    def bytes_probability(data):
        return serve_bytes(image_bytes=tf.constant([data]))["probabilities"].numpy()

    assert np.abs(bytes_probability(png(rgb)) - float_probability(rgb)).max() <= FLOAT_TOLERANCE
    grey_as_rgb = np.repeat(grey[..., None], 3, -1)
    assert np.abs(bytes_probability(png(grey)) - float_probability(grey_as_rgb)).max() <= FLOAT_TOLERANCE
    assert np.abs(bytes_probability(png(rgba, "RGBA")) - float_probability(rgb)).max() <= FLOAT_TOLERANCE
    jpeg = tf.io.encode_jpeg(rgb, quality=95).numpy()
    assert np.abs(bytes_probability(jpeg) - float_probability(tf.io.decode_jpeg(jpeg).numpy())).max() <= FLOAT_TOLERANCE
    batch = serve_bytes(image_bytes=tf.constant([png(rgb), jpeg, png(grey)]))
    assert batch["probabilities"].shape == (3,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        serve_bytes(image_bytes=tf.constant([b"this is not an image"]))


def test_versioned_layout_model_card_and_warmup(binary_run, tmp_path):
    first = export_run(binary_run, tmp_path / "serving")
    second = export_run(binary_run, tmp_path / "serving", verify=False)
    model_dir = tmp_path / "serving" / "binary"
    assert (first.version_dir, second.version_dir) == (model_dir / "1", model_dir / "2")
    for name in ("saved_model.pb", "variables/variables.index", "assets.extra/tf_serving_warmup_requests"):
        assert (first.version_dir / name).exists(), name
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "model_card.md"]
    card = first.model_card.read_text()
    for fragment in ("## Classes", "## Input contract", "## Test metrics", "## Recipe", "TensorFlow 2.", "Keras 3.",
                     "serving_bytes", "Youden"):
        assert fragment in card, fragment

    logs = read_warmup_requests(first.version_dir)
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == ["serving_default", "serving_bytes"]
    loaded = tf.saved_model.load(str(first.version_dir))
    for log in logs:
        request = log.predict_log.request
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        out = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert out["probabilities"].shape[0] == 2


def test_existing_version_needs_force_and_force_replaces_atomically(binary_run, tmp_path):
    first = export_run(binary_run, tmp_path / "s", verify=False)
    stamp = (first.version_dir / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(TltfError, match="version 1 already exists; pass --force"):
        export_run(binary_run, tmp_path / "s", version=1, verify=False)
    time.sleep(0.01)
    export_run(binary_run, tmp_path / "s", version=1, force=True, verify=False)
    assert (first.version_dir / "saved_model.pb").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in (tmp_path / "s" / "binary").iterdir()) == ["1", "model_card.md"]


def test_failed_export_leaves_no_version_folder(binary_run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("tltf.export.exporter.write_warmup_requests", broken)
    with pytest.raises(OSError):
        export_run(binary_run, tmp_path / "s")
    assert not (tmp_path / "s" / "binary").exists()  # no version, and no empty model folder either


def test_a_failed_parity_check_stops_the_export_and_publishes_nothing(binary_run, tmp_path, monkeypatch, tltf_log):
    """A SavedModel whose probabilities really differ from the Keras model's (shifted by 0.01)."""
    from tltf.export import exporter

    real = exporter.serving_functions

    def drifting(model, class_names, threshold):
        serve_images, serve_bytes = real(model, class_names, threshold)

        def shifted(outputs):
            return {**outputs, "probabilities": outputs["probabilities"] * 0.99 + 0.01}

        return (lambda images: shifted(serve_images(images)), lambda data: shifted(serve_bytes(data)))

    monkeypatch.setattr(exporter, "serving_functions", drifting)
    with pytest.raises(TltfError, match="the exported model does not match the Keras model"):
        export_run(binary_run, tmp_path / "s")
    assert any("FAILED" in line for line in tltf_log)
    assert not (tmp_path / "s" / "binary").exists()


def test_killed_export_leaves_no_version_folder(binary_run, tmp_path):
    model_dir = tmp_path / "s" / "binary"
    command = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import conftest; "
               "from tltf.cli.main import main; main()")
    process = subprocess.Popen([sys.executable, "-c", command, "export", str(binary_run), "--out", str(tmp_path / "s")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not (
            model_dir.exists() and any(p.name.startswith(".tmp") for p in model_dir.iterdir())):
        time.sleep(0.02)
    assert process.poll() is None, f"the export ended before it could be killed: {process.stderr.read()[-1500:]}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not [p for p in model_dir.iterdir() if p.name.isdigit()]


def test_saved_model_cli_signatures_golden(binary_run, tmp_path):
    result = export_run(binary_run, tmp_path / "s", verify=False)
    shown = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir",
                            str(result.version_dir), "--all"], capture_output=True, text=True, check=True).stdout
    signatures = shown[shown.index("signature_def['saliency']"): shown.index("The MetaGraph with tag set")]
    assert signatures.strip() == (GOLDEN / "saved_model_cli_binary.txt").read_text().strip()


def test_predict_cli_rows_errors_and_exit_code(binary_run, tmp_path):
    images = separable_images(6, 20, seed=4, channels=3)[0]
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"img{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    export_run(binary_run, tmp_path / "s", verify=False)
    runner = CliRunner()
    by_run = runner.invoke(main, ["predict", str(binary_run), str(tmp_path / "*.png"), "--format", "json"])
    assert by_run.exit_code == 0, by_run.output
    by_saved_model = runner.invoke(main, ["predict", str(tmp_path / "s" / "binary"), str(tmp_path), "--format", "json"])
    assert by_saved_model.exit_code == 1
    assert "1 of 7 files could not be predicted" in by_saved_model.stderr
    run_rows = json.loads(by_run.stdout)
    model_rows = {row["file"]: row for row in json.loads(by_saved_model.stdout)}
    assert "not a decodable image" in model_rows[str(tmp_path / "broken.jpg")]["error"]
    for row in run_rows:
        assert row["probabilities"] == pytest.approx(model_rows[row["file"]]["probabilities"], abs=FLOAT_TOLERANCE)
        assert row["class_name"] == model_rows[row["file"]]["class_name"]
        # The probability shown is the predicted class's, never the other class's.
        assert row["class_probability"] == row["probabilities"][row["class_id"]]
    assert {row["class_name"] for row in run_rows} == {"class_0", "class_1"}  # both classes were predicted
    csv_out = runner.invoke(main, ["predict", str(binary_run), str(tmp_path / "img0.png"), "--format", "csv"]).stdout
    assert csv_out.splitlines()[0] == "file,class_name,class_probability,error"


def test_predict_in_small_batches_keeps_order_errors_and_probabilities(binary_run, tmp_path):
    """Files are decoded a batch ahead of the forward pass: with batches of 2, a bad file in the second
    batch still gets its own row, and every other row is what one batch of all of them gives."""
    from tltf.export.predict import Predictor

    images = separable_images(6, 20, seed=5, channels=3)[0]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(image).save(paths[-1])
    paths.insert(3, tmp_path / "broken.png")
    paths[3].write_bytes(b"\x89PNG not really")
    predictor = Predictor(binary_run)
    small, whole = predictor.predict(paths, batch_size=2), predictor.predict(paths, batch_size=64)
    assert [row.file for row in small] == [str(p) for p in paths]
    assert [bool(row.error) for row in small] == [False, False, False, True, False, False, False]
    for a, b in zip(small, whole):
        assert a.error == b.error and a.class_name == b.class_name
        if a.error:
            assert a.probabilities is None and b.probabilities is None
        else:
            assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)


@needs_shared(PNEUMONIA_NPZ)
def test_predict_on_pneumonia_pngs_matches_evaluate(tmp_path):
    recipe_path = write_recipe(tmp_path / "p.yaml", {"source": "medmnist", "name": "pneumoniamnist",
                                                    "root": str(PNEUMONIA_NPZ.parent), "image_size": 32},
                               train={"epochs": 1, "batch_size": 64})
    recipe = load_recipe(recipe_path)
    run = tmp_path / "run"
    tltf.fit(recipe, run, verbose=0)
    test = np.load(PNEUMONIA_NPZ)
    files = []
    for i, (image, label) in enumerate(zip(test["test_images"], test["test_labels"].ravel())):
        folder = tmp_path / "pngs" / ("pneumonia" if label else "normal")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
        files.append(folder / f"{i:04d}.png")
    exported = export_run(run, tmp_path / "s", verify=False)

    runner = CliRunner()
    evaluated = runner.invoke(main, ["evaluate", str(run), "--split", "test", "--json", str(tmp_path / "e.json")])
    assert evaluated.exit_code == 0, evaluated.output
    expected_auc = json.loads((tmp_path / "e.json").read_text())["auc"]
    splits = load_splits(recipe.data)
    in_process = predict_probabilities(load_run_model(run), splits.test.images)
    for target in (run, exported.version_dir.parent):
        out = runner.invoke(main, ["predict", str(target), str(tmp_path / "pngs"), "--format", "json"])
        assert out.exit_code == 0, out.output
        rows = {Path(row["file"]): row["probabilities"][1] for row in json.loads(out.stdout)}
        probabilities = np.array([rows[f] for f in files])
        assert np.abs(probabilities - in_process).max() <= FLOAT_TOLERANCE
        assert roc_auc(test["test_labels"].ravel(), probabilities) == pytest.approx(
            expected_auc, abs=1e-6)


@needs_shared(PNEUMONIA_NPZ)
def test_quick_start_sized_model_exports_with_like_for_like_parity(tmp_path, imagenet_cache):
    """The README's quick-start recipe (ImageNet MobileNetV2-0.35 at 96 px, head warm-up then fine-tuning) on
    512 PneumoniaMNIST images (256 to validate): the export passes parity at 1e-5 on every signature, JPEG
    included, and the model's JPEG sensitivity is reported in the model card instead of refusing the export."""
    with np.load(PNEUMONIA_NPZ) as data:
        np.savez(tmp_path / "subset.npz", train_images=data["train_images"][:512],
                 train_labels=data["train_labels"][:512], val_images=data["val_images"][:256],
                 val_labels=data["val_labels"][:256])
    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "pneumonia-mobilenet.yaml",
                         ["data.source=npz", f"data.path={tmp_path / 'subset.npz'}", "train.epochs=2",
                          "train.head_warmup.epochs=1"])
    tltf.fit(recipe, tmp_path / "run", verbose=0)
    result = export_run(tmp_path / "run", tmp_path / "serving")
    parity = result.parity
    assert parity.ok
    assert max(parity.float_max_abs_diff, parity.png_max_abs_diff, parity.jpeg_max_abs_diff) <= FLOAT_TOLERANCE
    assert parity.jpeg_sensitivity > parity.jpeg_max_abs_diff  # JPEG moves a real model's output; parity is exact
    assert f"moves its probabilities by up to {parity.jpeg_sensitivity:.2e}" in result.model_card.read_text()
