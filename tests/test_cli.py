import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import MOBILENET_WEIGHTS, PNEUMONIA_NPZ, SHARED, write_recipe
from PIL import Image

import tltf
from tltf.cli.main import main
from tltf.recipe import load_recipe


@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def run(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run


def assert_user_error(result, *fragments, cwd=None):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tltf: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    if cwd is not None:
        assert not (cwd / "runs").exists() or not any((cwd / "runs").iterdir())


def image_folders(root, counts):
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("L", (12, 12), 40 if name == "a" else 210).save(root / name / f"{i}.png")
    return root


def test_help_explains_commands(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ("fit", "validate", "evaluate"):
        assert command in result.output
    fit_help = run_cli("fit", "--help").output
    assert "--set KEY=VALUE" in fit_help and "--run-dir" in fit_help and "Exit code 2" in fit_help


def test_validate_prints_the_resolved_recipe(run_cli, tmp_path, npz_path):
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)})
    result = run_cli("validate", recipe, "--set", "train.epochs=7")
    assert result.exit_code == 0
    resolved = yaml.safe_load(result.stdout)
    assert resolved["train"]["epochs"] == 7 and resolved["model"]["bn"] == "train"


def test_fit_then_evaluate(run_cli, tmp_path, npz_path):
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)})
    result = run_cli("fit", recipe, "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    assert "plan: fine_tune on tiny_test" in result.stdout and "trainable params" in result.stdout
    assert "auc 95% CI" in result.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("tiny-") and run_dir.name.endswith("Z")
    assert result.stdout.count(run_dir.name) == 1 and "\nMetrics:\n" in result.stdout  # said once, not twice
    assert "## Metrics\n" in (run_dir / "report.md").read_text()
    saved = json.loads((run_dir / "metrics.json").read_text())

    again = run_cli("evaluate", run_dir, "--json", tmp_path / "eval.json")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0].split() == ["metric", "test"]  # one column: the split evaluated
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["auc"] == pytest.approx(saved["test"]["auc"], abs=1e-6)
    assert evaluated["at_threshold"] == pytest.approx(saved["test"]["at_threshold"])


def test_unknown_key(run_cli, tmp_path, npz_path):
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)}, model={"bakbone": "x"})
    assert_user_error(run_cli("fit", recipe), "model.bakbone: unknown key; did you mean 'backbone'?", cwd=tmp_path)


def test_bad_data_is_one_line_and_exit_2(run_cli, tmp_path):
    """One data error through the CLI; test_data.py covers each kind of bad data."""
    root = image_folders(tmp_path / "images", {"a": 3, "b": 3})
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"garbage" * 20)
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "directory", "path": str(root)})
    assert_user_error(run_cli("fit", recipe), "broken.jpg", cwd=tmp_path)


def test_offline_weights(run_cli, tmp_path, npz_path, monkeypatch):
    monkeypatch.setattr("keras.src.applications.mobilenet_v2.BASE_WEIGHT_PATH", (tmp_path / "offline").as_uri() + "/")
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path), "image_size": 32},
                          model={"backbone": "mobilenet_v2", "alpha": 0.35, "weights": "imagenet"})
    result = run_cli("fit", recipe)
    assert_user_error(result, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
                      "model.weights", cwd=tmp_path)
    assert "warning: `input_shape` is undefined or non-square" in result.stdout  # Keras' note, kept off stderr


def test_existing_run_dir_is_never_overwritten(run_cli, tmp_path, npz_path):
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)})
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert_user_error(run_cli("fit", recipe, "--run-dir", tmp_path / "taken"), "already exists")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_real_process_prints_one_line_and_exits_2(tmp_path):
    """The installed entry point, TensorFlow's own start-up output included."""
    root = image_folders(tmp_path / "images", {"a": 2, "b": 2})
    (root / "a" / "empty.png").write_bytes(b"")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"source": "directory", "path": str(root), "image_size": 32},
                                      "model": {"backbone": "mobilenet_v2", "weights": "none"}}))
    result = subprocess.run([sys.executable, "-m", "tltf.cli.main", "fit", str(recipe)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"tltf: error: {root / 'a' / 'empty.png'}: empty file (0 bytes); remove it or replace it with the real image"]
    assert not (tmp_path / "runs").exists()


def test_library_route_example_runs(tmp_path):
    """docs/examples/library_route.py, shortened: the library docs stay runnable."""
    if not (MOBILENET_WEIGHTS.exists() and PNEUMONIA_NPZ.exists()):
        pytest.skip("../shared assets are absent")
    script = Path(__file__).resolve().parents[1] / "docs" / "examples" / "library_route.py"
    result = subprocess.run([sys.executable, str(script), "1", "1", "256"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "SHARED": str(SHARED)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test AUC" in result.stdout and (tmp_path / "library-route.keras").exists()


@pytest.mark.parametrize("command", ["validate", "explain", "fit"])
def test_weights_that_cannot_be_had_fail_before_the_data_is_read(run_cli, tmp_path, command):
    """The data path does not exist either: the weights error comes first, as one line, exit 2."""
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(tmp_path / "not-read.npz"),
                                                "image_size": 32},
                          model={"backbone": "mobilenet_v2", "alpha": 0.35, "weights": str(tmp_path / "w.h5")})
    assert_user_error(run_cli(command, recipe), "w.h5: model.weights file not found", cwd=tmp_path)


def test_compare_pairs_runs_on_the_same_test_images_and_refuses_other_images(tmp_path, npz_path):
    from tltf.evaluate.paired import delong_test

    runs = []
    for seed, epochs in ((1, 1), (2, 3)):
        path = write_recipe(tmp_path / f"r{seed}.yaml", {"source": "npz", "path": str(npz_path)},
                            train={"epochs": epochs, "seed": seed}, evaluate={"bootstrap": 0})
        runs.append(tltf.fit(load_recipe(path), tmp_path / f"run{seed}", verbose=0).run_dir)
    result = CliRunner().invoke(main, ["compare", *map(str, runs), "--json", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    (pair,) = json.loads((tmp_path / "c.json").read_text())["pairs"]
    labels, a = tltf.evaluate.read_predictions(runs[0])
    _, b = tltf.evaluate.read_predictions(runs[1])
    expected = delong_test(labels, a, b)
    assert (pair["a"], pair["b"], pair["method"]) == (str(runs[0]), str(runs[1]), "delong")
    assert pair["difference"] == pytest.approx(expected.difference) and pair["p"] == pytest.approx(expected.p)
    assert pair["auc_b"] == pytest.approx(json.loads((runs[1] / "metrics.json").read_text())["test"]["auc"])
    # A run without predictions.csv (made before it existed): `tltf evaluate` writes its split's rows.
    (runs[0] / "predictions.csv").unlink()
    missing = CliRunner().invoke(main, ["compare", *map(str, runs)])
    assert missing.exit_code == 2 and f"tltf evaluate {runs[0]} --split test` writes them" in missing.stderr
    assert CliRunner().invoke(main, ["evaluate", str(runs[0])]).exit_code == 0
    relabels, rescored = tltf.evaluate.read_predictions(runs[0])
    assert np.array_equal(relabels, labels) and np.abs(rescored - a).max() < 1e-6
    again = CliRunner().invoke(main, ["compare", *map(str, runs), "--json", str(tmp_path / "c2.json")])
    assert again.exit_code == 0 and json.loads((tmp_path / "c2.json").read_text())["pairs"][0]["p"] == pair["p"]
    # Another test set (fewer test images): one line naming the run, exit 2.
    other = np.load(npz_path)
    np.savez(tmp_path / "other.npz", **{k: (v[:12] if k.startswith("test") else v) for k, v in other.items()})
    path = write_recipe(tmp_path / "o.yaml", {"source": "npz", "path": str(tmp_path / "other.npz")},
                        train={"epochs": 1}, evaluate={"bootstrap": 0})
    odd = tltf.fit(load_recipe(path), tmp_path / "odd", verbose=0).run_dir
    refused = CliRunner().invoke(main, ["compare", str(runs[0]), str(odd)])
    assert refused.exit_code == 2 and "compare needs runs evaluated on the same test set" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
