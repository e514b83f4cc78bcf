"""Trainable parameters and step time of LoRA (ranks 4, 8, 16), L2-SP and feature extraction, against a full
fine-tune, side by side.

Each arm is its own model (the same backbone, same weights, same batch), compiled with tltf's optimizer; the
arms are timed in turn within every repeat, so drift on a busy machine hits all of them alike. Prints each
arm's trainable parameters and the ratio of its median step time to the full fine-tune's, min and median over
the repeats.

    python benchmarks/fine_tuning_methods.py [--size 96] [--batch 64] [--steps 10] [--repeats 5]
"""

import argparse
import time

import tltf  # first: it imports TensorFlow without the native start-up notices

tltf.log.logger.setLevel("WARNING")  # the ratios only

import numpy as np

from tltf.models.lora import enable_backbone_lora
from tltf.regularizers import apply_l2_sp
from tltf.train.optimizers import LayerwiseAdamW


def build(arm: str, size: int):
    model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=size, weights=None, bn="frozen")
    if arm == "feature extraction":
        tltf.backbone_of(model).trainable = False
    elif arm.startswith("LoRA"):
        rank = int(arm.split()[-1])
        enable_backbone_lora(model, rank=rank, alpha=2 * rank)
    elif arm == "L2-SP":
        apply_l2_sp(model, alpha=0.01, beta=0.01)
    model.compile(LayerwiseAdamW(1e-4), "binary_crossentropy")
    return model


def median_step(model, x, y, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 2, (args.batch, 1)).astype("float32")
    arms = ["full fine-tune", "feature extraction", "LoRA rank 4", "LoRA rank 8", "LoRA rank 16", "L2-SP"]
    models = {arm: build(arm, args.size) for arm in arms}
    for model in models.values():
        median_step(model, x, y, 3)  # traced and warm
    print(f"tltf {tltf.__version__}: MobileNetV2 (alpha 0.35) at {args.size} px, batch {args.batch}, median of "
          f"{args.steps} steps per arm, {args.repeats} repeats, the arms in turn within each repeat")
    ratios = {arm: [] for arm in arms[1:]}
    for repeat in range(args.repeats):
        times = {arm: median_step(models[arm], x, y, args.steps) for arm in arms}
        for arm in ratios:
            ratios[arm].append(times[arm] / times["full fine-tune"])
        print(f"  repeat {repeat + 1}: full {times['full fine-tune'] * 1000:.0f} ms/step; "
              + ", ".join(f"{arm} {ratios[arm][-1]:.2f}" for arm in ratios))
    full = sum(int(np.prod(v.shape)) for v in models["full fine-tune"].trainable_weights)
    print(f"{'arm':<20} {'trainable params':>16} {'step time / full: min':>22} {'median':>7}")
    print(f"{'full fine-tune':<20} {full:>16,} {1.0:>22.2f} {1.0:>7.2f}")
    for arm, values in ratios.items():
        params = sum(int(np.prod(v.shape)) for v in models[arm].trainable_weights)
        print(f"{arm:<20} {params:>16,} {min(values):>22.2f} {np.median(values):>7.2f}")


if __name__ == "__main__":
    main()
