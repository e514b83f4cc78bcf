"""Which feature map should Grad-CAM explain at the shipped recipe's size? A localisation check on real X-rays.

PneumoniaMNIST images (upsampled to the recipe's 96 px) get a bright square at a random place in half of them
(the label); nothing else tells the classes apart. The shipped CPU recipe (MobileNetV2-0.35, ImageNet weights)
learns it, then Grad-CAM explains the positive test images at each candidate layer: the last map of each
spatial size (3×3, 6×6, 12×12 at 96 px). Two scores per layer, higher is better:
  - inside: the share of the map's mass inside the square (grown by a quarter of its side on each side);
  - pointing: how often the map's peak falls inside that area (the "pointing game").
  - empty: the share of maps that are zero everywhere (the channel-averaged gradient negative all over).
The evidence moves with the square, so a map that stays put (a blob in the middle) scores low on both.

With `--run RUN` (a run of the shipped recipe on PneumoniaMNIST) it also explains that run's 624 real test
X-rays at each layer, for the class each is decided as: empty maps; how alike the maps of different images are
(the mean correlation between two images' maps: near 1, the same blob everywhere); and the median share of a
map in the outer eighth of the image on every side (44% of the area).

    python benchmarks/saliency_localisation.py [--seeds 0 1 2] [--square 14] [--shared ../shared] [--run RUN]
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

import tltf  # first: it imports TensorFlow without the native start-up notices

ROOT = Path(__file__).resolve().parents[1]
SIZE = 96


def planted(images, rng, square: int):
    """(images at SIZE px with a square in half of them, labels, each square's (top, left))."""
    import tensorflow as tf

    big = tf.image.resize(images[..., None].astype("float32"), (SIZE, SIZE)).numpy()[..., 0]
    labels = rng.permutation(np.arange(len(big)) % 2)
    corners = rng.integers(4, SIZE - square - 4, (len(big), 2))
    for image, label, (top, left) in zip(big, labels, corners):
        if label:
            image[top:top + square, left:left + square] = 235 + rng.normal(0, 5, (square, square))
    return big.clip(0, 255).astype(np.uint8), labels, corners


def candidate_layers(network) -> dict:
    """side → the layer Grad-CAM explains when `feature_map_layer`'s least side is that side (the last map of
    that side): the benchmark measures the product's own rule at each setting."""
    from tltf.saliency.grad_cam import feature_map_layer

    sides = {int(layer.output.shape[1]) for layer in network.layers if len(layer.output.shape) == 4}
    chosen = {feature_map_layer(network, side) for side in sides}
    return {int(layer.output.shape[1]): layer.name for layer in sorted(chosen, key=lambda layer: layer.name)}


def empty(maps) -> float:
    return float(np.mean(maps.max(axis=(1, 2)) == 0))


def alike(maps) -> float:
    """The mean correlation between the maps of two different images."""
    flat = maps.reshape(len(maps), -1) - maps.reshape(len(maps), -1).mean(axis=1, keepdims=True)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True) + 1e-12
    return float((np.sum(flat @ flat.T) - len(flat)) / (len(flat) * (len(flat) - 1)))


def border_share(maps) -> float:
    edge = maps.shape[1] // 8
    inner = maps[:, edge:-edge, edge:-edge].sum(axis=(1, 2))
    return float(np.median(1 - inner / np.maximum(maps.sum(axis=(1, 2)), 1e-12)))


def real_xrays(run: Path, shared: Path) -> None:
    import json

    import tensorflow as tf

    from tltf.models.anatomy import backbone_network
    from tltf.run_dir import load_run_model
    from tltf.saliency import GradCam

    model = load_run_model(run)
    threshold = json.loads((run / "metrics.json").read_text())["val"]["threshold"]
    test = np.load(shared / "data" / "pneumoniamnist.npz")["test_images"][..., None].astype("float32")
    images = np.repeat(tf.image.resize(test, (SIZE, SIZE)).numpy(), 3, axis=-1)
    print(f"\n{run}: {len(images)} real test X-rays, the decided class's map")
    print(f"{'layer':40s} {'empty':>6s} {'alike':>6s} {'border':>7s}")
    for side, name in sorted(candidate_layers(backbone_network(model)).items()):
        if 3 <= side <= SIZE // 8:
            maps, _ = GradCam(model, name)(images, threshold=threshold)
            print(f"{side}x{side} {name:34s} {empty(maps):6.2f} {alike(maps):6.2f} {border_share(maps):7.2f}")


def scores(maps, corners, square: int) -> tuple[float, float, float]:
    margin = square // 4
    inside, pointing = [], []
    for heat, (top, left) in zip(maps, corners):
        area = np.zeros_like(heat, bool)
        area[max(0, top - margin):top + square + margin, max(0, left - margin):left + square + margin] = True
        inside.append(heat[area].sum() / max(heat.sum(), 1e-12))
        pointing.append(area.flat[int(np.argmax(heat))])
    return float(np.mean(inside)), float(np.mean(pointing)), empty(maps)


def one_seed(seed: int, square: int, shared: Path, folder: Path) -> dict:
    from tltf.models.anatomy import backbone_network
    from tltf.recipe import load_recipe
    from tltf.run_dir import load_run_model
    from tltf.saliency import GradCam

    rng = np.random.default_rng(seed)
    source = np.load(shared / "data" / "pneumoniamnist.npz")
    arrays, corners = {}, {}
    for split, n in (("train", 800), ("val", 200), ("test", 200)):
        images, labels, corners[split] = planted(source[f"{split}_images"][:n], rng, square)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    np.savez(folder / "planted.npz", **arrays)
    weights = shared / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    recipe = load_recipe(ROOT / "recipes" / "pneumonia-mobilenet.yaml", [
        "data.source=npz", f"data.path={folder / 'planted.npz'}", "data.class_names=[none, square]",
        f"model.weights={weights}", "train.epochs=6", "train.min_steps=1", f"train.seed={seed}"])
    result = tltf.fit(recipe, folder / f"run-{seed}", verbose=0)
    model = load_run_model(result.run_dir)
    positives = arrays["test_labels"][:, 0] == 1
    images = np.repeat(arrays["test_images"][positives][..., None], 3, axis=-1)
    row = {"test_auc": result.metrics["test"]["auc"]}
    for side, name in sorted(candidate_layers(backbone_network(model)).items()):
        if side < 3 or side > SIZE // 4:
            continue
        maps, _ = GradCam(model, name)(images, target_class=1)
        row[f"{side}x{side} {name}"] = scores(maps, corners["test"][positives], square)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--square", type=int, default=14)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--run", type=Path, help="a run of the shipped recipe: its maps of the real test X-rays")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            rows.append(one_seed(seed, args.square, args.shared, Path(folder)))
            print(f"seed {seed}: test AUC {rows[-1]['test_auc']:.3f}; inside, pointing, empty by layer: "
                  + "; ".join(f"{key.split()[0]} {v[0]:.2f}, {v[1]:.2f}, {v[2]:.2f}" for key, v in rows[-1].items()
                              if key != "test_auc"), flush=True)
    print(f"\n{'layer':40s} {'inside (min/median)':>22s} {'pointing (min/median)':>24s} {'empty (max)':>12s}")
    for key in [k for k in rows[0] if k != "test_auc"]:
        inside, pointing = [r[key][0] for r in rows], [r[key][1] for r in rows]
        print(f"{key:40s} {min(inside):10.2f} {statistics.median(inside):10.2f} "
              f"{min(pointing):12.2f} {statistics.median(pointing):10.2f} {max(r[key][2] for r in rows):12.2f}")
    area = (args.square * 1.5) ** 2 / SIZE ** 2
    print(f"\na map spread evenly: inside {area:.2f}, pointing {area:.2f}")
    if args.run:
        real_xrays(args.run, args.shared)


if __name__ == "__main__":
    main()
