"""tltf against the plain-Keras alternative, side by side in one process: ratios, min and median over repeats.

Three parts (`--part`, default all):

- feature-extraction (goal P1): PneumoniaMNIST at 96 px, MobileNetV2-0.35 with the ImageNet weights from
  `--shared`. The Keras guide's loop (the frozen base inside the model, run by `model.fit` every epoch,
  validation every epoch) against tltf's `feature_extraction` (the feature cache: the base runs once), both
  20 epochs, batch 64, no augmentation (a cache cannot hold augmented images). Times the training (tltf's
  `Trainer.run`: feature extraction, head epochs, checkpoints; Keras: `model.fit`) and prints each arm's test
  AUC. Goal: tltf / Keras ≤ 0.10, AUC within 0.01.
- fine-tune (goal P2): 2,048 synthetic images at 96 px, MobileNetV2-0.35, batch 64, AdamW 1e-4, the same
  augmentation layers (flip, rotation, contrast), validation every epoch. Images/s of tltf's trainer (a
  `fine_tune` plan, with its checkpoints and callbacks) and of the same network written in plain Keras
  with `model.fit` on a `tf.data` pipeline, alternating epoch by epoch (the first epoch of each, which
  traces, not counted), in float32 and in mixed_bfloat16; the ratio of each epoch pair. Goal: ≥ 0.95.
- predict: `Predictor(run).predict` on the 624 PneumoniaMNIST test images written as PNG files (decode,
  resize, batch, forward pass) against one `model.predict` over the same images already decoded in memory.
  Goal: ≤ 2.

    python benchmarks/speed.py [--part feature-extraction|fine-tune|predict|all] [--repeats 3]
        [--shared ../shared]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import tltf  # first: it imports TensorFlow without the native start-up notices

tltf.log.logger.setLevel("WARNING")  # the ratios only, not each run's progress

import keras
import numpy as np

from tltf.assemble import assemble_training, model_from_recipe
from tltf.data import ImageSplits, Split, load_splits
from tltf.evaluate.evaluator import predict_probabilities
from tltf.recipe import validate_recipe
from tltf.task import Task
from tltf.train import Trainer
from tltf.train.distribution import dtype_policy

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = "weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def summary(name: str, ratios: list, goal: str) -> None:
    print(f"{name}: min {min(ratios):.3f}, median {statistics.median(ratios):.3f} (goal {goal})", flush=True)


def auc(labels, probabilities) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, probabilities))


def keras_classifier(weights: str, size: int, trainable: bool, augment=None) -> keras.Model:
    """The Keras guide's classifier: scaling to [-1, 1], the base, pooling, dropout, a sigmoid unit."""
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35, include_top=False,
                                          weights=weights)
    base.trainable = trainable
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False) if not trainable else base(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", dtype="float32")(x))


def keras_dataset(split: Split, batch: int, training: bool, augment=None):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels.astype("float32")))
    if training:
        ds = ds.shuffle(len(split), seed=0)
    ds = ds.batch(batch).map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# --- feature extraction (P1) -------------------------------------------------------------------------

def feature_extraction(args) -> None:
    epochs = args.epochs or 20
    recipe = validate_recipe({
        "data": {"source": "medmnist", "name": "pneumoniamnist", "root": str(Path(args.shared) / "data"),
                 "image_size": 96},
        "model": {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": str(Path(args.shared) / WEIGHTS)},
        "train": {"strategy": "feature_extraction", "epochs": epochs, "batch_size": 64, "schedule": "constant",
                  "seed": 0},
        "evaluate": {"bootstrap": 0},
    })
    splits = load_splits(recipe.data, seed=0)
    print(f"feature extraction: PneumoniaMNIST {splits.summary()}, 96 px, {epochs} epochs, "
          f"{args.repeats} repeats", flush=True)
    ratios = []
    for repeat in range(args.repeats):
        keras.utils.set_random_seed(repeat)
        model = keras_classifier(str(Path(args.shared) / WEIGHTS), 96, trainable=False)
        model.compile(keras.optimizers.AdamW(1e-3), loss="binary_crossentropy", metrics=[keras.metrics.AUC()])
        train, val = keras_dataset(splits.train, 64, True), keras_dataset(splits.val, 64, False)
        start = time.perf_counter()
        model.fit(train, validation_data=val, epochs=epochs, verbose=0)
        guide = time.perf_counter() - start
        guide_auc = auc(splits.test.labels, model.predict(splits.test.images, batch_size=64, verbose=0)[:, 0])

        keras.utils.set_random_seed(repeat)
        classifier = model_from_recipe(recipe, Task(splits.class_names))
        plan = assemble_training(recipe, classifier, splits, verbose=0)
        with tempfile.TemporaryDirectory() as work:
            start = time.perf_counter()
            Trainer(verbose=0).run(plan, Path(work))
            cached = time.perf_counter() - start
        tltf_auc = auc(splits.test.labels, predict_probabilities(classifier, splits.test.images))
        ratios.append(cached / guide)
        print(f"  repeat {repeat + 1}: Keras guide {guide:6.1f} s (test AUC {guide_auc:.3f}), tltf feature cache "
              f"{cached:5.1f} s (test AUC {tltf_auc:.3f}); ratio {ratios[-1]:.3f}", flush=True)
    summary("feature extraction, tltf / Keras guide wall time", ratios, "≤ 0.10")


# --- fine-tuning throughput (P2) ---------------------------------------------------------------------

class Interleaved(keras.callbacks.Callback):
    """Given to tltf's trainer: at each of its epoch starts, runs one epoch of the plain Keras model first, so
    the two alternate epoch by epoch and share the machine's slow and fast moments. tltf's epoch is timed from
    there to its next epoch start (its validation and every end-of-epoch callback included)."""

    def __init__(self, plain: keras.Model, train, val):
        super().__init__()
        self.plain, self.train, self.val = plain, train, val
        self.tltf_seconds, self.keras_seconds, self._started = [], [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._stop_tltf_clock()
        start = time.perf_counter()
        self.plain.fit(self.train, validation_data=self.val, epochs=1, verbose=0)
        self.keras_seconds.append(time.perf_counter() - start)
        self._started = time.perf_counter()

    def on_train_end(self, logs=None):
        self._stop_tltf_clock()

    def _stop_tltf_clock(self):
        if self._started is not None:
            self.tltf_seconds.append(time.perf_counter() - self._started)
            self._started = None


def interleaved_rates(splits, precision: str, epochs: int, weights: str) -> list:
    """`(tltf, plain Keras)` images/s for each epoch after the first (which traces)."""
    recipe = validate_recipe({
        "data": {"source": "npz", "path": "unused", "image_size": 96},
        "augment": {"flip": "horizontal", "rotation": 0.05, "contrast": 0.1},
        "model": {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": weights, "bn": "train"},
        "train": {"strategy": "fine_tune", "epochs": epochs, "batch_size": 64, "optimizer": "adamw",
                  "lr": 1e-4, "schedule": "constant", "precision": precision},
        "evaluate": {"bootstrap": 0},
    })
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"),
                                keras.layers.RandomRotation(0.05, fill_mode="reflect"),
                                keras.layers.RandomContrast(0.1, value_range=(0, 255))])
    with dtype_policy(precision):
        plain = keras_classifier(weights, 96, trainable=True)
        plain.compile(keras.optimizers.AdamW(1e-4), loss="binary_crossentropy", metrics=[keras.metrics.AUC()])
        clock = Interleaved(plain, keras_dataset(splits.train, 64, True, augment), keras_dataset(splits.val, 64, False))
        model = model_from_recipe(recipe, Task(splits.class_names))
        plan = assemble_training(recipe, model, splits, verbose=0)
        with tempfile.TemporaryDirectory() as work:
            Trainer(verbose=0, callbacks=[clock]).run(plan, Path(work))
    n = len(splits.train)
    return [(n / ours, n / theirs) for ours, theirs in zip(clock.tltf_seconds[1:], clock.keras_seconds[1:])]


def fine_tune(args) -> None:
    epochs = args.epochs or 4
    weights = str(Path(args.shared) / WEIGHTS)
    rng = np.random.default_rng(0)
    make = lambda n: Split(rng.integers(0, 255, (n, 96, 96, 3), dtype=np.uint8), np.arange(n) % 2)  # noqa: E731
    splits = ImageSplits(["a", "b"], make(2048), make(512), None)
    print(f"fine-tuning throughput: 2,048 images at 96 px, {epochs} epochs of each, alternating (the first "
          f"not counted), {args.repeats} repeats", flush=True)
    for precision in ("float32", "mixed_bfloat16"):
        ratios = []
        for repeat in range(args.repeats):
            for ours, theirs in interleaved_rates(splits, precision, epochs, weights):
                ratios.append(ours / theirs)
                print(f"  {precision} repeat {repeat + 1}: tltf {ours:6.1f} images/s, plain Keras {theirs:6.1f} "
                      f"images/s, ratio {ratios[-1]:.3f}", flush=True)
        summary(f"fine-tuning {precision}, tltf / plain Keras images/s (every epoch pair)", ratios, "≥ 0.95")


# --- predict -----------------------------------------------------------------------------------------

def predict(args) -> None:
    from PIL import Image

    from tltf.export.predict import Predictor

    recipe = validate_recipe({
        "name": "predict-benchmark",
        "data": {"source": "medmnist", "name": "pneumoniamnist", "root": str(Path(args.shared) / "data"),
                 "image_size": 96},
        "model": {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": str(Path(args.shared) / WEIGHTS)},
        "train": {"strategy": "feature_extraction", "epochs": 1, "batch_size": 64},
        "evaluate": {"bootstrap": 0},
    })
    raw = np.load(Path(args.shared) / "data" / "pneumoniamnist.npz")
    with tempfile.TemporaryDirectory() as work:
        run = tltf.fit(recipe, Path(work) / "run", verbose=0).run_dir
        paths = []
        for i, image in enumerate(raw["test_images"]):
            paths.append(Path(work) / "png" / f"{i:04d}.png")
            paths[-1].parent.mkdir(exist_ok=True)
            Image.fromarray(image).save(paths[-1])
        predictor = Predictor(run)
        in_memory = load_splits(recipe.data, seed=0).test.images
        predictor.predict(paths[:64])  # tracing, not timed
        predictor.model.predict(in_memory[:64], verbose=0)
        print(f"predict: {len(paths)} PNG files, {args.repeats} repeats", flush=True)
        ratios = []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            rows = predictor.predict(paths)
            files = time.perf_counter() - start
            start = time.perf_counter()
            predictor.model.predict(in_memory, batch_size=64, verbose=0)
            forward = time.perf_counter() - start
            assert not any(row.error for row in rows)
            ratios.append(files / forward)
            print(f"  repeat {repeat + 1}: tltf predict on files {files:5.2f} s, one forward pass in memory "
                  f"{forward:5.2f} s, ratio {ratios[-1]:.2f}", flush=True)
    summary("predict on files / forward pass in memory", ratios, "≤ 2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["feature-extraction", "fine-tune", "predict", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="default 20 for feature extraction, 4 for fine-tuning")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    print(f"tltf {tltf.__version__}, TensorFlow {__import__('tensorflow').__version__}, Keras {keras.__version__}")
    for name, part in (("feature-extraction", feature_extraction), ("fine-tune", fine_tune), ("predict", predict)):
        if args.part in (name, "all"):
            part(args)


if __name__ == "__main__":
    main()
