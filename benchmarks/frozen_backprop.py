"""Step time with the early half of the backbone frozen, against a full fine-tune, side by side.

While early blocks are frozen the backward pass must not run through them:
only their forward pass should cost anything. Prints the ratio of median
step times (half frozen / full), measured in one process on the same data.

    python benchmarks/frozen_backprop.py [--backbone resnet50] [--size 224] [--batch 16] [--steps 8] [--repeats 3]
"""

import argparse
import time

import tltf  # first: it imports TensorFlow without the native start-up notices

tltf.log.logger.setLevel("WARNING")  # the ratios only, not each run's progress

import keras
import numpy as np

from tltf.models.blocks import BlockMap
from tltf.train.optimizers import LayerwiseAdamW
from tltf.train.unfreezing import backbone_units, set_trainable_units


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def median_step(model, x, y, batch: int, steps: int, warmup: int = 2) -> float:
    model.compile(LayerwiseAdamW(1e-4), "binary_crossentropy")
    timer = StepTimer()
    model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps + warmup, callbacks=[timer], verbose=0)
    return float(np.median(timer.times[warmup:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.batch * (args.steps + 2)
    x = rng.uniform(0, 255, (n, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 2, (n, 1)).astype("float32")
    model = tltf.build_model(args.backbone, image_size=args.size, weights=None, bn="frozen")
    block_map = BlockMap.of(model, "block")
    units = backbone_units(block_map)

    half = units[len(units) // 2:]
    print(f"tltf {tltf.__version__}: {args.backbone} at {args.size} px, batch {args.batch}, median of {args.steps} "
          f"steps per arm, {args.repeats} repeats; {len(units)} backbone units, the first {len(units) - len(half)} "
          "frozen in the half-frozen arm")
    ratios = {"first half frozen": [], "backbone frozen": []}
    for repeat in range(args.repeats):
        times = {}
        for arm, trainable in (("full", units), ("first half frozen", half), ("backbone frozen", [])):
            set_trainable_units(model, block_map, trainable)
            times[arm] = median_step(model, x, y, args.batch, args.steps)
        for arm in ratios:
            ratios[arm].append(times[arm] / times["full"])
        print(f"  repeat {repeat + 1}: full {times['full']:.3f} s/step; "
              + ", ".join(f"{arm} {ratios[arm][-1]:.2f}" for arm in ratios))
    for arm, values in ratios.items():
        print(f"{arm} / full fine-tune: min {min(values):.2f}, median {np.median(values):.2f}")


if __name__ == "__main__":
    main()
