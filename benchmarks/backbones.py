"""Images per second of the real backbones against MobileNetV2-0.35, side by side, repeated.

For each size, each backbone's classifier (tltf.build_model, ImageNet weights, linear head) trains and predicts
on random pixels: training steps of the whole network (everything trainable, AdamW) and inference batches,
after a traced warm-up. The backbones take turns within each repeat, so a slower machine moment hits them all;
the ratio to MobileNetV2-0.35 at the same size is the number to read (min and median over repeats).

    python benchmarks/backbones.py [--sizes 96 128] [--vit-sizes 56 112] [--repeats 3] [--shared ../shared]
"""

import argparse
import statistics
import time
from pathlib import Path

import keras
import numpy as np

import tltf  # first: it imports TensorFlow without the native start-up notices

ROOT = Path(__file__).resolve().parents[1]
BATCH = 32
STEPS = 5


def backbones(shared: Path, size: int, vit: bool) -> dict:
    """name → build arguments for the backbones measured at `size` (the ViT only at its own sizes)."""
    weights = shared / "weights"
    if vit:
        return {"vit_s14": {"backbone": "hub", "preset": str(weights / "dinov2_small_imgfocus")}}
    return {"mobilenet_v2_035": {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": str(
                weights / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")},
            "efficientnet_lite0": {"backbone": "hub", "preset": str(weights / "efficientnet_lite0_imagenet")}}


def rates(arguments: dict, size: int) -> tuple[float, float]:
    """(training, inference) images/s of one classifier on random images at `size`."""
    model = tltf.build_model(image_size=size, dropout=0.0, **{"weights": "imagenet", **arguments})
    model.compile(keras.optimizers.AdamW(1e-4), loss="binary_crossentropy")
    images = np.random.default_rng(0).integers(0, 256, (BATCH, size, size, 3)).astype("float32")
    labels = (np.arange(BATCH) % 2)[:, None].astype("float32")
    model.train_on_batch(images, labels)  # traces
    start = time.perf_counter()
    for _ in range(STEPS):
        model.train_on_batch(images, labels)
    training = STEPS * BATCH / (time.perf_counter() - start)
    model.predict_on_batch(images)  # traces
    start = time.perf_counter()
    for _ in range(STEPS):
        model.predict_on_batch(images)
    return training, STEPS * BATCH / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128])
    parser.add_argument("--vit-sizes", type=int, nargs="+", default=[56, 112])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    shared = Path(args.shared)
    plan = [(size, False) for size in args.sizes] + [(size, True) for size in args.vit_sizes]
    measured: dict = {}
    for _ in range(args.repeats):
        for size, vit in plan:
            for name, arguments in backbones(shared, size, vit).items():
                measured.setdefault((name, size), []).append(rates(arguments, size))
    print(f"images/s (batch {BATCH}, {STEPS} steps, {args.repeats} repeats: min / median); ratio to "
          "mobilenet_v2_035 at the same size (median), or at the nearest size for the ViT")
    reference = {size: statistics.median(r[0] for r in runs) for (name, size), runs in measured.items()
                 if name == "mobilenet_v2_035"}
    reference_infer = {size: statistics.median(r[1] for r in runs) for (name, size), runs in measured.items()
                       if name == "mobilenet_v2_035"}
    for (name, size), runs in measured.items():
        train, infer = [r[0] for r in runs], [r[1] for r in runs]
        nearest = min(reference, key=lambda s: abs(s - size)) if reference else None
        ratio = (f"train ×{statistics.median(train) / reference[nearest]:.2f}, infer "
                 f"×{statistics.median(infer) / reference_infer[nearest]:.2f} (vs {nearest} px)") if nearest else ""
        print(f"{name:>20} {size:>4} px  train {min(train):7.1f} / {statistics.median(train):7.1f}   "
              f"infer {min(infer):7.1f} / {statistics.median(infer):7.1f}   {ratio}")


if __name__ == "__main__":
    main()
