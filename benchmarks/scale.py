"""Peak memory against dataset size, and training throughput from images on disk against images in memory.

Scale: synthetic class folders of 2,000, 8,000 and 32,000 JPEGs (256 px, two classes) are each fitted by
`tltf fit` in a fresh process with a feature-extraction recipe at 224 px (MobileNetV2-0.35, one epoch,
`data.cache: auto`, a cold cache: every file is decoded and checked first). Prints each run's peak RSS,
the decode pass's rate, and peak RSS at the largest size over the smallest (goal: at most 1.1). The
2,000-image folder is also run with `data.cache: disk`.

Throughput: on the 2,000-image folder at 96 px, one process fine-tunes MobileNetV2-0.35 (batch 64, the
recipe augmentation) on the images decoded in memory and on the images kept on disk (a warm cache),
alternating epoch by epoch; prints images/s of each and disk / memory, min and median over the repeats
(goal: at least 0.9).

    python benchmarks/scale.py [--sizes 2000 8000 32000] [--repeats 3] [--work DIR] [--shared ../shared]
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_jpegs(folder: Path, count: int, size: int = 256) -> Path:
    """`count` JPEGs in two class folders (brightness and noise), written once."""
    from PIL import Image

    if (folder / "done").exists():
        return folder
    rng = np.random.default_rng(0)
    for i in range(count):
        label = i % 2
        image = np.clip(60 + 120 * label + rng.normal(0, 40, (size // 8, size // 8, 3)), 0, 255).astype(np.uint8)
        target = folder / ("a", "b")[label]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((size, size)).save(target / f"{i:06d}.jpg", quality=90)
    (folder / "done").write_text(str(count))
    return folder


def recipe_dict(folder: Path, cache: str, cache_dir: Path, weights: Path, image_size: int) -> dict:
    return {
        "name": "scale", "data": {"source": "directory", "path": str(folder), "image_size": image_size,
                                  "cache": cache, "cache_dir": str(cache_dir)},
        "model": {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": str(weights)},
        "train": {"strategy": "feature_extraction", "epochs": 1, "batch_size": 64},
        "evaluate": {"bootstrap": 0},
    }


def child(args) -> None:
    """One `tltf.fit` in this process; prints its peak RSS and times as JSON."""
    import tltf

    tltf.log.logger.setLevel("WARNING")
    recipe = tltf.recipe.validate_recipe(json.loads(args.child))
    start = time.perf_counter()
    splits = tltf.data.load_splits(recipe.data, seed=0)  # the decode-and-check pass, timed alone
    decoded, images = time.perf_counter() - start, sum(len(split) for _, split in splits.items())
    del splits  # fit loads them again: from the disk cache, or (memory) decoded again
    with tempfile.TemporaryDirectory() as work:
        tltf.fit(recipe, Path(work) / "run", verbose=0)
    print(json.dumps({"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "decode_s": decoded, "total_s": time.perf_counter() - start, "images": images}))


def scale(args, weights: Path) -> None:
    work = Path(args.work)
    runs = [(size, "auto") for size in args.sizes] + [(min(args.sizes), "disk")]
    peaks = {}
    for size, cache in runs:
        folder = write_jpegs(work / f"jpegs-{size}", size)
        cache_dir = work / f"cache-{size}-{cache}-{time.time_ns()}"  # cold: decoded and checked in this run
        recipe = recipe_dict(folder, cache, cache_dir, weights, 224)
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(recipe)], capture_output=True,
                             text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[(size, cache)] = result["rss_mib"]
        print(f"{size:>6} images, cache {cache:<4}: peak RSS {result['rss_mib']:7.0f} MiB; decode and check "
              f"{result['decode_s']:6.1f} s ({result['images'] / result['decode_s']:.0f} images/s); "
              f"whole run {result['total_s']:.0f} s", flush=True)
    small, large = min(args.sizes), max(args.sizes)
    print(f"peak RSS {large} / {small} images (cache auto): {peaks[(large, 'auto')] / peaks[(small, 'auto')]:.3f}"
          f" (goal ≤ 1.1); against {small} on disk: {peaks[(large, 'auto')] / peaks[(small, 'disk')]:.3f}")


def throughput(args, weights: Path) -> None:
    import keras

    import tltf
    from tltf.data.pipeline import build_augmenter, make_dataset
    from tltf.task import Task

    tltf.log.logger.setLevel("WARNING")
    work, size = Path(args.work), min(args.sizes)
    folder = write_jpegs(work / f"jpegs-{size}", size)
    loaded = {}
    for cache in ("memory", "disk"):
        recipe = tltf.recipe.validate_recipe(recipe_dict(folder, cache, work / "cache-throughput", weights, 96))
        loaded[cache] = tltf.data.load_splits(recipe.data, seed=0).train
    recipe = tltf.recipe.validate_recipe({**recipe_dict(folder, "memory", work, weights, 96),
                                          "augment": {"flip": "horizontal", "rotation": 0.05, "contrast": 0.1}})
    task = Task(["a", "b"])
    model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=96, weights=str(weights), bn="frozen")
    model.compile(keras.optimizers.AdamW(1e-4), loss=task.loss())
    datasets = {cache: make_dataset(split.images, split.labels, task, 64, training=True,
                                    augmenter=build_augmenter(recipe.augment, 0)) for cache, split in loaded.items()}
    for ds in datasets.values():
        model.fit(ds, epochs=1, verbose=0)  # tracing and warm caches, not timed
    rates = {cache: [] for cache in datasets}
    for _ in range(args.repeats):
        for cache, ds in datasets.items():
            start = time.perf_counter()
            model.fit(ds, epochs=1, verbose=0)
            rates[cache].append(len(loaded[cache]) / (time.perf_counter() - start))
    ratios = [d / m for d, m in zip(rates["disk"], rates["memory"])]
    for cache, values in rates.items():
        print(f"fine-tuning from {cache:<6}: {' '.join(f'{v:.1f}' for v in values)} images/s")
    print(f"disk / memory throughput: {min(ratios):.3f} (min) / {statistics.median(ratios):.3f} (median) "
          "(goal ≥ 0.9)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "tltf-scale-benchmark"))
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--part", choices=["scale", "throughput", "both"], default="both")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    weights = Path(args.shared) / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    if args.part in ("scale", "both"):
        scale(args, weights)
    if args.part in ("throughput", "both"):
        throughput(args, weights)


if __name__ == "__main__":
    main()
