"""Feature cache vs. running the frozen backbone every epoch, measured side by side.

Prints wall-time ratios (cached / uncached) for feature extraction with
MobileNetV2-0.35 at 96 px on synthetic images. Ratios, not seconds: the
machines are noisy.

    python benchmarks/feature_cache.py [--images 1024] [--epochs 5]
"""

import argparse
import tempfile
import time
from pathlib import Path

import tltf  # first: it imports TensorFlow without the native start-up notices

import numpy as np
from tltf.data.sources import ImageSplits, Split
from tltf.models import build_model_from_recipe
from tltf.recipe import validate_recipe
from tltf.train.fit import PhaseTrainer
from tltf.train.phases import plan_phases


def timed_run(feature_cache: bool, splits: ImageSplits, epochs: int) -> float:
    recipe = validate_recipe({
        "data": {"source": "npz", "path": "unused", "image_size": 96},
        "model": {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": None},
        "train": {"strategy": "feature_extraction", "epochs": epochs, "batch_size": 64,
                  "feature_cache": feature_cache},
    })
    model = build_model_from_recipe(recipe, 2)
    trainer = PhaseTrainer(model, splits, recipe, verbose=0)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        trainer.run(plan_phases(recipe.train), Path(work), log=lambda _: None)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    make = lambda n: Split(rng.integers(0, 255, (n, 96, 96, 3), dtype=np.uint8), np.arange(n) % 2)  # noqa: E731
    splits = ImageSplits(["a", "b"], make(args.images), make(args.images // 4), None)
    uncached = timed_run(False, splits, args.epochs)
    cached = timed_run(True, splits, args.epochs)
    print(f"tltf {tltf.__version__}: feature extraction, {args.images} train images, {args.epochs} epochs")
    print(f"  backbone every epoch : {uncached:7.1f} s  (1.00)")
    print(f"  feature cache        : {cached:7.1f} s  ({cached / uncached:.2f} of uncached)")


if __name__ == "__main__":
    main()
