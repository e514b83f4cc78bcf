"""Step time with `train.deterministic: true` against the default, side by side.

Op determinism is process-wide and cannot be turned off, so each arm runs in
its own fresh process: MobileNetV2-0.35 at 96 px, fine-tuning, batch 64, the
median step time of a fit on synthetic images. Arms alternate; the ratio
deterministic / default is printed per repeat, then its min and median.

    python benchmarks/determinism.py [--steps 20] [--repeats 3]
"""

import argparse
import statistics
import subprocess
import sys

ARM = """
import statistics, sys, time
import tltf
import keras, numpy as np, tensorflow as tf
if sys.argv[1] == "deterministic":
    from tltf.train.distribution import make_deterministic
    make_deterministic(0)
steps = int(sys.argv[2])
model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=96, weights=None)
model.compile(keras.optimizers.AdamW(1e-4), "binary_crossentropy")
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (64 * (steps + 3), 96, 96, 3)).astype("float32")
y = rng.integers(0, 2, (len(x), 1)).astype("float32")
times = []
class Timer(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()
    def on_train_batch_end(self, batch, logs=None):
        times.append(time.perf_counter() - self.start)
model.fit(x, y, batch_size=64, epochs=1, callbacks=[Timer()], verbose=0)
print("MEDIAN", statistics.median(times[3:]))
"""


def median_step(arm: str, steps: int) -> float:
    out = subprocess.run([sys.executable, "-c", ARM, arm, str(steps)], capture_output=True, text=True, check=True)
    return float(next(line for line in out.stdout.splitlines() if line.startswith("MEDIAN")).split()[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"MobileNetV2-0.35 at 96 px, batch 64, median of {args.steps} steps per arm, {args.repeats} repeats")
    ratios = []
    for repeat in range(args.repeats):
        default = median_step("default", args.steps)
        deterministic = median_step("deterministic", args.steps)
        ratios.append(deterministic / default)
        print(f"  repeat {repeat + 1}: default {default:.3f} s/step, deterministic {deterministic:.3f} s/step, "
              f"ratio {ratios[-1]:.2f}")
    print(f"deterministic / default: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
