"""What validating every epoch costs when an epoch is a few steps: `train.validate_every_steps` 1 against 8.

The shipped CPU recipe (recipes/pneumonia-mobilenet.yaml) at `--fraction` of PneumoniaMNIST's labels (1%: 47
images, one optimizer step an epoch, 524 validation images), `train.stop: never` so both arms train the same
epochs, one `tltf.fit` each, timed whole; the arms alternate, `--repeats` times. Prints each run's wall time
and test AUC, and the ratio of the two arms' times in each repeat (min, median).

    python benchmarks/validation_rate.py [--fraction 0.01] [--repeats 2] [--shared ../shared]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import tltf  # first: it imports TensorFlow without the native start-up notices

ROOT = Path(__file__).resolve().parents[1]


def timed_fit(args, every: int, seed: int) -> tuple[float, float]:
    from tltf.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "pneumonia-mobilenet.yaml", overrides=[
        f"data.root={Path(args.shared) / 'data'}", f"data.train_fraction={args.fraction}", "train.stop=never",
        f"train.validate_every_steps={every}", f"train.seed={seed}"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        result = tltf.fit(recipe, Path(work) / "run", verbose=0)
    return time.perf_counter() - start, result.metrics["test"]["auc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    tltf.log.logger.setLevel("WARNING")
    ratios = []
    for repeat in range(args.repeats):
        every_epoch, auc_1 = timed_fit(args, 1, repeat)
        every_8_steps, auc_8 = timed_fit(args, 8, repeat)
        ratios.append(every_8_steps / every_epoch)
        print(f"  repeat {repeat + 1} (seed {repeat}): every epoch {every_epoch:.0f} s (test AUC {auc_1:.4f}), every "
              f"8 steps {every_8_steps:.0f} s (test AUC {auc_8:.4f}); ratio {ratios[-1]:.2f}", flush=True)
    print(f"validate_every_steps 8 / 1 wall time: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
