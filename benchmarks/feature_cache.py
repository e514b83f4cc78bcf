"""Feature cache vs. running the frozen backbone every epoch, measured side by side.

Prints wall-time ratios (cached / uncached) for feature extraction with
MobileNetV2-0.35 at 96 px on synthetic images. Ratios, not seconds: the
machines are noisy. With `--strategy gradual_unfreeze` the cache is the frozen
prefix's (the blocks a phase of `--epochs` never unfreezes, one more unit every
`--every` epochs after one head-only epoch), and each repeat also prints how far
apart the two arms' trained weights ended (the cache is exact up to float
rounding). With `--views K` both arms augment (the shipped recipe's zoom, flip,
rotation and contrast): the uncached arm runs the frozen backbone on new
augmented images every epoch (the frozen prefix too, with `--strategy
gradual_unfreeze`), the cached one on K augmented views computed once
(`train.augmented_views`, an approximation: their weights differ by design).

    python benchmarks/feature_cache.py [--images 1024] [--epochs 5] [--repeats 3] [--shared ../shared]
    python benchmarks/feature_cache.py --strategy gradual_unfreeze --epochs 12 --every 2
    python benchmarks/feature_cache.py --views 4 --epochs 20
    python benchmarks/feature_cache.py --strategy gradual_unfreeze --epochs 12 --every 2 --views 4

The backbone loads the ImageNet weights file from `--shared` (tltf refuses a frozen random backbone).

Each repeat runs both arms back to back; the ratio is printed per repeat,
then its min and median over the repeats.
"""

import argparse
import tempfile
import time
from pathlib import Path

import tltf  # first: it imports TensorFlow without the native start-up notices

tltf.log.logger.setLevel("WARNING")  # the ratios only, not each run's progress

import keras
import numpy as np

from tltf.assemble import assemble_training, model_from_recipe
from tltf.data import ImageSplits, Split
from tltf.recipe import validate_recipe
from tltf.task import Task
from tltf.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_AUGMENTATION = {"zoom": 0.1, "flip": "horizontal", "rotation": 0.05, "contrast": 0.1}
WEIGHTS = "weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def timed_run(feature_cache: bool, splits: ImageSplits, epochs: int, weights: str, strategy: str,
              every: int, views=None) -> tuple[float, list, str]:
    """Seconds of the run, its final weights, and its plan's cache column (`views`: the augmented arms)."""
    recipe = validate_recipe({
        "data": {"source": "npz", "path": "unused", "image_size": 96},
        "model": {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": weights},
        "augment": SHIPPED_AUGMENTATION if views else {},
        "train": {"strategy": strategy, "epochs": epochs, "batch_size": 64, "feature_cache": feature_cache,
                  "gradual": {"every": every, "start_epochs": 1}, "deterministic": True, "stop": "never",
                  "augmented_views": views if views and feature_cache else None},
    })
    keras.utils.set_random_seed(0)
    model = model_from_recipe(recipe, Task(splits.class_names))
    plan = assemble_training(recipe, model, splits, verbose=0)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        Trainer(verbose=0).run(plan, Path(work), deliver=False)
        return time.perf_counter() - start, model.get_weights(), plan.summary_rows()[-1][-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--strategy", default="feature_extraction", choices=["feature_extraction", "gradual_unfreeze"])
    parser.add_argument("--every", type=int, default=2, help="gradual_unfreeze: epochs between two unfreezings")
    parser.add_argument("--views", type=int, default=None,
                        help="augment both arms; the cached arm uses this many augmented views")
    args = parser.parse_args()
    weights = str(Path(args.shared) / WEIGHTS)
    rng = np.random.default_rng(0)
    make = lambda n: Split(rng.integers(0, 255, (n, 96, 96, 3), dtype=np.uint8), np.arange(n) % 2)  # noqa: E731
    splits = ImageSplits(["a", "b"], make(args.images), make(args.images // 4), None)
    print(f"tltf {tltf.__version__}: {args.strategy}, {args.images} train images, {args.epochs} epochs, "
          f"{args.repeats} repeats" + (f", augmented, {args.views} views" if args.views else ""))
    ratios = []
    for repeat in range(args.repeats):
        arms = [timed_run(cache, splits, args.epochs, weights, args.strategy, args.every, args.views)
                for cache in (False, True)]
        (uncached, uncached_weights, _), (cached, cached_weights, column) = arms
        ratios.append(cached / uncached)
        apart = max(float(np.max(np.abs(a - b))) for a, b in zip(cached_weights, uncached_weights))
        exact = "" if args.views else f"; weights at most {apart:.2g} apart"
        print(f"  repeat {repeat + 1}: uncached {uncached:6.1f} s, cached {cached:6.1f} s ({column}), "
              f"ratio {ratios[-1]:.2f}{exact}")
    print(f"cached / uncached: min {min(ratios):.2f}, median {np.median(ratios):.2f}")


if __name__ == "__main__":
    main()
