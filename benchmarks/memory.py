"""Resident memory of a 20-epoch run, epoch by epoch (it must not grow with the epochs).

Runs `recipes/pneumonia-mobilenet.yaml` (MobileNetV2-0.35 ImageNet at 96 px) for 20 epochs on the shared
PneumoniaMNIST and weights, and prints the process's peak resident memory after epoch 2 and after epoch 20
and their ratio (goal: at most 1.05), and the current RSS within the fine-tuning phase (epoch 4 against the
last): the recipe's first 2 epochs train the head on cached features, which needs far less memory than
fine-tuning, so the peak ratio mixes the phase change with any growth.

    python benchmarks/memory.py [--epochs 20] [--shared ../shared]
"""

import argparse
import resource
import tempfile
from pathlib import Path

import keras

import tltf  # first: it imports TensorFlow without the native start-up notices

tltf.log.logger.setLevel("WARNING")  # the numbers only, not the run's progress
ROOT = Path(__file__).resolve().parents[1]


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakRss(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.peaks, self.current = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux → MiB
        self.current.append(current_rss_mib())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    shared = Path(args.shared)
    weights = shared / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    recipe = tltf.load_recipe(ROOT / "recipes" / "pneumonia-mobilenet.yaml",
                              [f"data.root={shared / 'data'}", f"model.weights={weights}",
                               f"train.epochs={args.epochs}", "evaluate.bootstrap=0"])
    peak = PeakRss()
    with tempfile.TemporaryDirectory() as work:
        tltf.fit(recipe, Path(work) / "run", verbose=0, callbacks=[peak])
    print("current RSS per epoch (MiB):", " ".join(f"{value:.0f}" for value in peak.current))
    print(f"peak RSS after epoch 2: {peak.peaks[1]:.0f} MiB; after epoch {len(peak.peaks)}: {peak.peaks[-1]:.0f} MiB; "
          f"ratio {peak.peaks[-1] / peak.peaks[1]:.3f} (goal ≤ 1.05)")
    print(f"current RSS in fine-tuning, epoch 4: {peak.current[3]:.0f} MiB; epoch {len(peak.current)}: "
          f"{peak.current[-1]:.0f} MiB; ratio {peak.current[-1] / peak.current[3]:.3f}")


if __name__ == "__main__":
    main()
