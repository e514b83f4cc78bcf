import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_recipe

from tltf.cli.main import main
from tltf.explain import explain
from tltf.recipe import load_recipe
from tltf.train.schedules import PhaseSchedule
from tltf.train.segments import replica_warnings as _replica_warnings

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
BLOCK_KEYS = {"name", "trainable", "bn", "params", "lr", "weight_decay"}


def recipe(tmp_path, npz_path, **train):
    return load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)}, train=train))


def test_json_contract_and_layer_decay_rates(tmp_path, npz_path):
    result = explain(recipe(tmp_path, npz_path, strategy="warmup_then_finetune", epochs=4, head_warmup={"epochs": 1},
                            lr=1e-3, layer_decay=0.5, weight_decay=0.01))
    warmup, tune = result["phases"]
    assert (warmup["name"], warmup["epochs"], tune["name"], tune["epochs"]) == ("head_warmup", 1, "fine_tune", 3)
    names = [b["name"] for b in tune["blocks"]]
    assert names == ["stem", "block1", "block2", "head"]  # stem to head, head last
    for block in tune["blocks"]:
        assert set(block) == BLOCK_KEYS and set(block["lr"]) == {"start", "peak", "end"}
    assert [b["trainable"] for b in warmup["blocks"]] == [False, False, False, True]
    assert warmup["blocks"][0]["lr"] == {"start": 0.0, "peak": 0.0, "end": 0.0}
    assert warmup["blocks"][-1]["lr"]["peak"] == pytest.approx(1e-3)  # head_warmup.lr, no multiplier
    peaks = [b["lr"]["peak"] for b in tune["blocks"]]
    assert peaks == pytest.approx([1e-3 * 0.125, 1e-3 * 0.25, 1e-3 * 0.5, 1e-3])
    assert all(b["bn"] == "train" for b in tune["blocks"])  # weights none: bn defaults to train
    assert tune["blocks"][1]["weight_decay"] == 0.01
    assert json.loads(json.dumps(result))  # JSON-ready


def test_gradual_unfreezing_is_explained_step_by_step(tmp_path, npz_path):
    result = explain(recipe(tmp_path, npz_path, strategy="gradual_unfreeze", epochs=5,
                            gradual={"every": 2, "start_epochs": 1}, schedule="cosine"))
    phases = result["phases"]
    assert [p["name"] for p in phases] == ["gradual_unfreeze (head only)", "gradual_unfreeze (+block2)",
                                           "gradual_unfreeze (+block1)"]
    assert [p["epochs"] for p in phases] == [1, 2, 2]
    assert [[b["trainable"] for b in p["blocks"]] for p in phases] == [
        [False, False, False, True], [False, False, True, True], [False, True, True, True]]
    head = [p["blocks"][-1]["lr"] for p in phases]
    # One cosine over the whole phase: each segment starts where the one before it stopped.
    # 64 training images in batches of 16: 4 steps an epoch, 20 in all.
    cosine = PhaseSchedule([{"steps": 20, "lr": 1e-2, "decay": "cosine"}])
    for segment, first_step, last_step in ((0, 0, 3), (1, 4, 11), (2, 12, 19)):
        assert head[segment]["start"] == pytest.approx(float(cosine(first_step)), rel=1e-6)
        assert head[segment]["end"] == pytest.approx(float(cosine(last_step)), rel=1e-6)


def test_explain_reads_folder_names_not_images(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "data" / name / f"{i}.png").write_bytes(b"not decoded by explain")
    path = write_recipe(tmp_path / "r.yaml", {"source": "directory", "path": str(tmp_path / "data")})
    result = explain(load_recipe(path))
    assert result["phases"][0]["blocks"][-1]["params"] == 8 * 1 + 1  # head: 8 features → 1 logit


def test_warnings_for_pixel_range_and_class_balance(tmp_path):
    images = np.random.default_rng(0).random((44, 8, 8)).astype("float32")  # [0, 1] floats
    labels = np.array([0] * 40 + [1] * 4)
    np.savez(tmp_path / "f.npz", train_images=images, train_labels=labels)
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(tmp_path / "f.npz")})
    warnings = explain(load_recipe(path))["warnings"]
    assert any("floats in [0, 1]" in w and "Multiply them by 255" in w for w in warnings)
    assert any("classes are severely imbalanced (40 / 4" in w for w in warnings)


def test_moderate_imbalance_is_not_warned_about(tmp_path):
    """3:1, like PneumoniaMNIST: the AUC ignores it and the threshold is chosen on val."""
    labels = np.array([0] * 30 + [1] * 10)
    np.savez(tmp_path / "f.npz", train_images=np.zeros((40, 8, 8), np.uint8), train_labels=labels)
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(tmp_path / "f.npz")})
    assert not [w for w in explain(load_recipe(path))["warnings"] if "imbalanced" in w]


def test_replica_warning(tmp_path, npz_path, monkeypatch):
    import tensorflow as tf

    # No GPU here: pretend four are visible to check the wording of the advice.
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["gpu"] * 4)
    warnings = _replica_warnings(recipe(tmp_path, npz_path, distribution="mirrored", batch_size=32).train.spec())
    assert warnings and "global batch over 4 replicas (8 each)" in warnings[0]
    assert "train.distribution: 4 GPUs are visible" in _replica_warnings(recipe(tmp_path, npz_path).train.spec())[0]


@pytest.mark.parametrize("name", ["pneumonia-discriminative", "pneumonia-llrd", "pneumonia-gradual"])
def test_shipped_fine_tuning_recipes_explain(name, tmp_path, monkeypatch, imagenet_cache):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["explain", str(RECIPES / f"{name}.yaml"), "--set", "data.root=nowhere",
                                       "--json", "e.json"])
    assert result.exit_code == 0, result.output
    explanation = json.loads(Path("e.json").read_text())
    last = explanation["phases"][-1]["blocks"]
    assert last[-1]["name"] == "head" and last[0]["name"] == "stem"
    assert all(b["trainable"] for b in last)
    assert "lr peak" in result.stdout


ROOT = RECIPES.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "explain"


# ResNet50's ImageNet weights cannot be had offline: explain refuses the recipe as fit would, so its
# structure is explained without them (the BatchNorm policy kept as the recipe resolves it).
NO_RESNET_WEIGHTS = ["--set", "model.weights=none", "--set", "model.bn=frozen"]


@pytest.mark.parametrize("name", sorted(path.stem for path in RECIPES.glob("*.yaml")))
def test_explain_of_every_shipped_recipe_matches_its_golden(name, tmp_path, monkeypatch, imagenet_cache):
    """Byte for byte, text and JSON: the goldens were written before the plan/trainer restructure (and changed
    since only where the output was meant to: the moderate-imbalance warning went, "1 epoch" lost its s, adapted
    recipes gained their `adaptation:` line)."""
    monkeypatch.chdir(ROOT)  # the recipes name ../shared paths relative to the project
    recipe_path = RECIPES / f"{name}.yaml"
    recipe = load_recipe(recipe_path)
    if recipe.data.source in ("npz", "directory") and not Path(recipe.data.path).exists():
        pytest.skip(f"{recipe.data.path} is absent (../shared holds the real test assets)")
    extra = NO_RESNET_WEIGHTS if recipe.model.backbone == "resnet50" and recipe.model.weights else []
    result = CliRunner().invoke(main, ["explain", str(recipe_path), *extra, "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    # Keras' own note when it loads 224 px weights for another size comes first (from checking the weights).
    printed = "".join(line for line in result.stdout.splitlines(keepends=True)
                      if not line.startswith("warning: `input_shape` is undefined or non-square"))
    assert printed == (GOLDEN / f"{name}.txt").read_text()
    assert (tmp_path / "e.json").read_text() == (GOLDEN / f"{name}.json").read_text()


def test_explain_prints_the_plan_that_fit_executes(tmp_path, npz_path):
    from tltf.assemble import assemble_training, model_from_recipe
    from tltf.data import load_splits
    from tltf.task import Task

    tiny = recipe(tmp_path, npz_path, strategy="gradual_unfreeze", epochs=4, layer_decay=0.8, schedule="cosine")
    splits = load_splits(tiny.data, seed=tiny.train.seed)
    plan = assemble_training(tiny, model_from_recipe(tiny, Task(splits.class_names)), splits)
    assert explain(tiny) == json.loads(json.dumps(plan.to_dict()))
    assert len(plan.to_dict()["phases"]) == 3  # head only, +block2, +block1: a segment per unfreezing
