"""Time to quality: the Keras guide's transfer-learning recipe in plain Keras against `tltf fit`, same network,
same images, same machine, interleaved seed by seed.

- Keras guide ("Transfer learning & fine-tuning", keras.io): MobileNetV2-0.35 with the ImageNet weights, the
  base frozen and called with `training=False`, the guide's augmentation (horizontal flip, rotation 0.1),
  a new head (pooling, dropout 0.2, one sigmoid unit) trained `--head-epochs` epochs with Adam 1e-3, then the
  whole network unfrozen and fine-tuned `--finetune-epochs` epochs with Adam 1e-5; validation every epoch
  (as the guide does); the model of the last epoch is the one delivered.
- tltf: `tltf.fit` of the shipped quick-start recipe (recipes/pneumonia-mobilenet.yaml: its `epochs: auto`,
  `train.stop: auto` and `validate_every_steps`, nothing changed but the data's location and fraction and
  the seed), timed whole: loading, training, evaluation, report and plots, as a user waits for them.

Both see the same training images: `data.train_fraction` of PneumoniaMNIST's training split (tltf's seeded
subsample), validation and test in full, at 96 px, batch 64. Each run is its own process; the arms alternate
(Keras then tltf, seed by seed), so they share the machine's slow and fast moments. Printed: each run's wall
time and test AUC, then per seed the ratio tltf / Keras and the AUC difference, and their min and median.
Goal (issue "time to quality"): ratio ≤ 0.5 with tltf's test AUC at least Keras's − 0.005.

    python benchmarks/time_to_quality.py [--fraction 0.05] [--seeds 0 1 2] [--shared ../shared]
    python benchmarks/time_to_quality.py --tltf-set train.min_steps=120   # tltf on the guide's step count

`--tltf-set KEY=VALUE` (repeatable) changes tltf's recipe: not the goal's "defaults", a what-if.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = "weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
RECIPE = ROOT / "recipes" / "pneumonia-mobilenet.yaml"


def recipe_for(args, seed: int, extra=()):
    from tltf.recipe import load_recipe

    return load_recipe(RECIPE, overrides=[f"data.root={Path(args.shared) / 'data'}",
                                          f"data.train_fraction={args.fraction}", f"train.seed={seed}", *extra])


def keras_guide(args, seed: int) -> dict:
    """The guide's two stages on the recipe's images; returns wall seconds and test AUC."""
    import keras
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from tltf.data import load_splits

    start = time.perf_counter()
    recipe = recipe_for(args, seed)
    splits = load_splits(recipe.data, seed=seed)
    keras.utils.set_random_seed(seed)
    size = recipe.data.image_size
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)])
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35, include_top=False,
                                          weights=str(Path(args.shared) / WEIGHTS))
    base.trainable = False
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(augment(inputs))
    x = base(x, training=False)  # BatchNorm stays in inference mode when the base is unfrozen (the guide's point)
    x = keras.layers.Dropout(0.2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))

    def dataset(split, training):
        ds = tf.data.Dataset.from_tensor_slices((split.images, split.labels.astype("float32")))
        ds = ds.shuffle(len(split), seed=seed) if training else ds
        return ds.batch(64).map(lambda image, label: (tf.cast(image, tf.float32), label)).prefetch(2)

    train, val = dataset(splits.train, True), dataset(splits.val, False)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    model.fit(train, validation_data=val, epochs=args.head_epochs, verbose=0)
    base.trainable = True
    model.compile(keras.optimizers.Adam(1e-5), "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    model.fit(train, validation_data=val, epochs=args.finetune_epochs, verbose=0)
    scores = model.predict(dataset(splits.test, False), verbose=0)[:, 0]
    return {"seconds": time.perf_counter() - start, "test_auc": float(roc_auc_score(splits.test.labels, scores))}


def tltf_fit(args, seed: int) -> dict:
    import tltf

    tltf.log.logger.setLevel("WARNING")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        result = tltf.fit(recipe_for(args, seed, args.tltf_set), Path(work) / "run", verbose=0)
    return {"seconds": time.perf_counter() - start, "test_auc": result.metrics["test"]["auc"],
            "best_epoch": result.metrics["best_epoch"], "budget": result.metrics["budget"]}


def run_in_process(arm: str, args, seed: int) -> dict:
    command = [sys.executable, __file__, "--arm", arm, "--one-seed", str(seed), "--fraction", str(args.fraction),
               "--shared", args.shared, "--head-epochs", str(args.head_epochs),
               "--finetune-epochs", str(args.finetune_epochs), *[f"--tltf-set={item}" for item in args.tltf_set]]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{arm} seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.05, help="data.train_fraction of both arms")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--head-epochs", type=int, default=20, help="the guide's head stage")
    parser.add_argument("--finetune-epochs", type=int, default=10, help="the guide's fine-tuning stage")
    parser.add_argument("--tltf-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override tltf's recipe (a what-if, not its defaults)")
    parser.add_argument("--arm", choices=["keras", "tltf"], help=argparse.SUPPRESS)  # one run, in a child process
    parser.add_argument("--one-seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        print(json.dumps((keras_guide if args.arm == "keras" else tltf_fit)(args, args.one_seed)))
        return
    print(f"time to quality: PneumoniaMNIST, train_fraction {args.fraction}, seeds {args.seeds}; Keras guide "
          f"{args.head_epochs} + {args.finetune_epochs} epochs against tltf fit {RECIPE.name}"
          + (f" with {' '.join(args.tltf_set)}" if args.tltf_set else ""), flush=True)
    ratios, differences = [], []
    for seed in args.seeds:
        guide, ours = run_in_process("keras", args, seed), run_in_process("tltf", args, seed)
        ratios.append(ours["seconds"] / guide["seconds"])
        differences.append(ours["test_auc"] - guide["test_auc"])
        budget = ours["budget"]
        print(f"  seed {seed}: Keras guide {guide['seconds']:6.1f} s, test AUC {guide['test_auc']:.4f} | tltf "
              f"{ours['seconds']:6.1f} s, test AUC {ours['test_auc']:.4f} (best epoch {ours['best_epoch']}, "
              f"{budget['epochs_run']} of {budget['epochs_planned']} epochs) | ratio {ratios[-1]:.3f}, AUC "
              f"difference {differences[-1]:+.4f}", flush=True)
    print(f"wall time tltf / Keras guide: min {min(ratios):.3f}, median {statistics.median(ratios):.3f} "
          f"(goal ≤ 0.5); test AUC tltf − Keras: min {min(differences):+.4f}, median "
          f"{statistics.median(differences):+.4f} (goal ≥ −0.005)", flush=True)


if __name__ == "__main__":
    main()
