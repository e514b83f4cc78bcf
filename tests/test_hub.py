"""KerasHub backbones from local presets: the real `from_preset` path on tiny random backbones the tests save."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from click.testing import CliRunner
from conftest import separable_images
from fixtures.hub_presets import save_presets

import tltf
from tltf._keras_internals import sublayers
from tltf.cli.main import main
from tltf.models.anatomy import backbone_network, feature_extractor, variable_key
from tltf.models.blocks import BlockMap
from tltf.train.layerwise import layer_decay_multipliers, variable_multipliers
from tltf.train.optimizers import LayerwiseSGD

keras_hub = pytest.importorskip("keras_hub", reason="KerasHub is the optional extra tltf[hub] (the test extra has it)")

TRANSFORMER_UNITS = ["stem", "block_0", "block_1", "top", "head"]
UNITS = {"hub_vit": TRANSFORMER_UNITS, "hub_dinov2": TRANSFORMER_UNITS, "hub_clip_vision": TRANSFORMER_UNITS,
         "hub_resnet": ["stem", "stack0_block0", "stack1_block0", "head"]}
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    return save_presets(tmp_path_factory.mktemp("presets"))


def hub_model_in(model):
    """The KerasHub backbone inside tltf's wrapper."""
    return next(layer for layer in sublayers(backbone_network(model)) if isinstance(layer, keras_hub.models.Backbone))


@pytest.mark.parametrize("family", list(UNITS))
def test_a_local_preset_loads_its_weights_and_scaling_and_maps_into_blocks(presets, family):
    folder = presets[family]
    model = tltf.build_model("hub", preset=str(folder), image_size=32, weights="imagenet", dropout=0.0)
    reference = keras_hub.models.Backbone.from_preset(str(folder))
    for loaded, saved in zip(hub_model_in(model).weights, reference.weights, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy(), err_msg=saved.path)
    fresh = tltf.build_model("hub", preset=str(folder), image_size=32, weights=None)
    assert any(not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(hub_model_in(fresh).weights, reference.weights) if a.shape.rank > 1)

    # Raw pixels in: the features are the hub backbone's on the preset converter's scaling, pooled.
    pixels = RNG.uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    converter_file = folder / "image_converter.json"
    config = json.loads(converter_file.read_text())["config"] if converter_file.exists() else {"scale": 1 / 255}
    scaled = pixels * np.asarray(config["scale"], "float32") + np.asarray(config.get("offset") or 0.0, "float32")
    inputs = {"images": scaled} if isinstance(reference.input, dict) else scaled
    raw = keras.ops.convert_to_numpy(reference(inputs))
    expected = raw[:, 0] if raw.ndim == 3 else raw.mean(axis=(1, 2))
    np.testing.assert_allclose(feature_extractor(model)(pixels).numpy(), expected, rtol=1e-4, atol=1e-5)

    block_map = BlockMap.of(model)
    assert block_map.names == UNITS[family]
    placed = [variable_key(v) for variables in block_map.variables.values() for v in variables]
    assert len(placed) == len(set(placed)) == len(model.weights)  # every variable in exactly one unit, keys unique


@pytest.mark.parametrize("family", list(UNITS))
def test_layer_decay_scales_each_blocks_sgd_step_exactly(presets, family):
    model = tltf.build_model("hub", preset=str(presets[family]), image_size=32, weights="imagenet", dropout=0.0,
                             bn="train")
    block_map = BlockMap.of(model)
    units = layer_decay_multipliers(block_map.names, 0.5)
    optimizer = LayerwiseSGD(learning_rate=0.01, lr_multipliers=variable_multipliers(block_map.path_to_unit(), units))
    x, y = RNG.uniform(0, 255, (4, 32, 32, 3)).astype("float32"), np.array([[0], [1], [0], [1]], "float32")
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(y, model(x, training=True))
    pairs = [(tf.convert_to_tensor(g), v)  # position embeddings' gradients come as IndexedSlices
             for g, v in zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
             if g is not None]  # DINOv2's mask token serves masked-image pretraining only: no gradient here
    before = [v.numpy().copy() for _, v in pairs]
    optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
    unit_of, moved = block_map.path_to_unit(), set()
    for (grad, variable), old in zip(pairs, before):
        unit = unit_of[variable_key(variable)]
        expected = old - grad.numpy() * (np.float32(0.01) * np.float32(units[unit]))
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, atol=1e-30, err_msg=variable.path)
        if np.abs(grad.numpy()).max() > 0:
            moved.add(unit)
    assert moved == set(block_map.names)


def test_lora_goes_on_the_attention_projections_and_only_adapters_and_head_move(presets):
    from tltf.models.lora import enable_backbone_lora

    model = tltf.build_model("hub", preset=str(presets["hub_vit"]), image_size=32, weights="imagenet", dropout=0.0)
    report = enable_backbone_lora(model, rank=2, alpha=4)
    assert {"query", "key", "value", "attention_output", "dense_1", "dense_2"} <= set(report.layers)
    # Counted, not silent: 2 blocks × 2 LayerNorms + the final one, the class token's holder, the position table.
    assert report.skipped == {"LayerNormalization (no LoRA in Keras)": 5,
                              "ViTPatchingAndEmbedding (no LoRA in Keras)": 1,
                              "embedding (tltf adapts kernels)": 1}
    backbone = backbone_network(model)
    frozen_before = {v.path: v.numpy().copy() for v in backbone.weights if "lora_kernel" not in v.path}
    b_before = {v.path: v.numpy().copy() for v in backbone.weights if v.path.endswith("lora_kernel_b")}
    head_before = [v.numpy().copy() for v in tltf.head_of(model).weights]
    model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    x, y = RNG.uniform(0, 255, (8, 32, 32, 3)).astype("float32"), np.array([[0], [1]] * 4, "float32")
    model.train_on_batch(x, y)
    for v in backbone.weights:
        if v.path in frozen_before:
            np.testing.assert_array_equal(v.numpy(), frozen_before[v.path], err_msg=v.path)
    assert sum(not np.array_equal(v.numpy(), b_before[v.path]) for v in backbone.weights if v.path in b_before) \
        == len(b_before)  # every adapter's B moved (A gets no gradient while B is zero)
    assert all(not np.array_equal(v.numpy(), old) for v, old in zip(tltf.head_of(model).weights, head_before))


def write_hub_data(root):
    arrays = {}
    for split, n, seed in (("train", 48, 0), ("val", 24, 1), ("test", 24, 2)):
        images, labels = separable_images(n, 32, seed=seed, channels=3)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez(root / "data.npz", **arrays)
    return root / "data.npz"


def hub_recipe(root, preset, **model):
    recipe = {
        "name": "hub", "data": {"source": "npz", "path": str(write_hub_data(root)), "image_size": 32},
        "model": {"backbone": "hub", "preset": str(preset), "dropout": 0.0, **model},
        "train": {"strategy": "warmup_then_finetune", "epochs": 3, "head_warmup": {"epochs": 1, "lr": 0.01},
                  "layer_decay": 0.7, "batch_size": 16, "lr": 1e-3, "seed": 1},
        "evaluate": {"bootstrap": 20},
    }
    path = root / "hub.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_hub_recipe_explains_fits_reloads_and_exports_with_parity(presets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = hub_recipe(tmp_path, presets["hub_dinov2"])
    runner = CliRunner()
    explained = runner.invoke(main, ["explain", str(recipe), "--json", str(tmp_path / "plan.json")])
    assert explained.exit_code == 0, explained.output
    fine_tune = json.loads((tmp_path / "plan.json").read_text())["phases"][-1]["blocks"]
    assert [b["name"] for b in fine_tune] == TRANSFORMER_UNITS and all(b["trainable"] for b in fine_tune)
    peaks = [b["lr"]["peak"] for b in fine_tune]  # layer decay 0.7 per unit, head at the base rate
    np.testing.assert_allclose(peaks, [1e-3 * 0.7 ** k for k in range(4, -1, -1)], rtol=1e-6)
    fitted = runner.invoke(main, ["fit", str(recipe), "--run-dir", str(tmp_path / "run")])
    assert fitted.exit_code == 0, fitted.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["n"] == 24

    built = tltf.build_model("hub", preset=str(presets["hub_dinov2"]), image_size=32, weights=None, dropout=0.0)
    from tltf.run_dir import load_run_model

    loaded = load_run_model(tmp_path / "run")
    # The optimizer's per-variable rates are keyed by variable_key: the same keys in a fresh and a reloaded model.
    assert sorted(variable_key(v) for v in loaded.weights) == sorted(variable_key(v) for v in built.weights)

    exported = runner.invoke(main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "serving")])
    assert exported.exit_code == 0, exported.output
    saved_model = tf.saved_model.load(str(next((tmp_path / "serving").glob("*/1"))))
    images = np.load(tmp_path / "data.npz")["test_images"][:8].astype("float32")
    served = saved_model.signatures["serving_default"](tf.constant(images))
    # The serving signature's probability of the positive class (binary: one per image), against the reloaded model.
    np.testing.assert_allclose(served["probabilities"].numpy(), loaded(images).numpy()[:, 0], atol=1e-5)


def test_hub_problems_are_one_line_errors_naming_the_key(presets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    cases = [
        ({"preset": None}, "model.preset: backbone hub needs model.preset"),
        ({"preset": str(tmp_path)}, "model.preset is not a KerasHub preset folder (no config.json there)"),
        ({"weights": "/some/file.h5"}, "model.weights: backbone hub loads its weights from model.preset"),
    ]
    recipe = hub_recipe(tmp_path, presets["hub_vit"])
    for overrides, message in cases:
        args = [f"model.{key}={'null' if value is None else value}" for key, value in overrides.items()]
        result = runner.invoke(main, ["validate", str(recipe), *[a for arg in args for a in ("--set", arg)]])
        assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
            (overrides, result.output)
    wrong_size = runner.invoke(main, ["validate", str(recipe), "--set", "data.image_size=64"])
    assert wrong_size.exit_code == 2
    assert "data.image_size: the ViTBackbone of" in wrong_size.stderr and "set data.image_size: 32" in wrong_size.stderr

    # Without KerasHub installed: one line saying what to install (a fresh process where the import fails).
    code = ("import sys; sys.modules['keras_hub'] = None\n"
            "from tltf.cli.main import main\n"
            f"main(['validate', {str(recipe)!r}])")
    missing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert missing.returncode == 2, missing.stderr[-2000:]
    assert missing.stderr.strip().splitlines()[-1] == ('tltf: error: model.backbone: hub needs KerasHub, which is '
                                                       'not installed; pip install "tltf[hub]" (keras-hub 0.32, '
                                                       'safetensors)')


@pytest.fixture(scope="module")
def clip_preset(tmp_path_factory):
    from fixtures.hub_presets import save_clip_preset

    return save_clip_preset(tmp_path_factory.mktemp("clip"))


def by_hand_zero_shot(folder, images, class_words, templates):
    """CLIP zero-shot probabilities computed here from KerasHub's own towers: unit image embedding, per class the
    renormalised mean of its prompts' unit text embeddings, softmax of exp(logit_scale) × cosine."""
    clip = keras_hub.models.Backbone.from_preset(str(folder))
    preprocessor = keras_hub.models.CLIPPreprocessor.from_preset(str(folder))
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    image = unit(keras.ops.convert_to_numpy(clip.get_vision_embeddings(images / 255.0)).astype("float64"))
    text = []
    for word in class_words:
        prompts = [template.format(word) for template in templates]
        tokens = preprocessor({"images": None, "prompts": prompts})["token_ids"]
        text.append(unit(unit(keras.ops.convert_to_numpy(clip.get_text_embeddings(tokens))).mean(axis=0)))
    logits = np.exp(float(clip.clip_head.logit_scale.numpy())) * image @ np.stack(text).T
    logits -= logits.max(axis=1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("class_words", [["dark", "bright"], ["dark", "bright", "normal"]])
def test_zero_shot_probabilities_are_clips_softmax_of_scaled_cosines(clip_preset, class_words):
    from tltf.models.zero_shot import init_zero_shot_head

    templates = ["a photo of {}", "a {} chest x-ray"]
    images = RNG.uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    expected = by_hand_zero_shot(clip_preset, images, class_words, templates)
    model = tltf.build_model("hub", preset=str(clip_preset), num_classes=len(class_words), image_size=32,
                             dropout=0.0)
    init_zero_shot_head(model, clip_preset, class_words, templates)
    predicted = model(images).numpy()
    if len(class_words) == 2:  # one sigmoid output: the probability of the second class
        np.testing.assert_allclose(predicted[:, 0], expected[:, 1], atol=1e-5)
    else:
        np.testing.assert_allclose(predicted, expected, atol=1e-5)
    # Not a comparison of constants: the probabilities vary across the images by over 20 times the tolerance.
    assert np.ptp(expected, axis=0).max() > 20 * 1e-5


def test_zero_shot_command_writes_a_run_that_compares_exports_and_starts_a_fine_tune(clip_preset, presets, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_hub_data(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["zero-shot", str(data), "--preset", str(clip_preset), "--template", "a photo of {}",
                                  "--template", "a {} chest x-ray", "--classes", "dark,bright",
                                  "--run-dir", str(tmp_path / "zero-shot")])
    assert result.exit_code == 0, result.output
    run = tmp_path / "zero-shot"
    assert {"metrics.json", "predictions.csv", "report.md", "roc.png", "model.keras", "recipe.yaml"} <= \
        {p.name for p in run.iterdir()}
    assert not (run / "learning_curves.png").exists() and not (run / "history.csv").exists()
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["train"]["strategy"] == "zero_shot"
    assert recipe["model"]["zero_shot"]["class_names"] == ["dark", "bright"]
    test_images = np.load(data)["test_images"].astype("float32")
    expected = by_hand_zero_shot(clip_preset, test_images, ["dark", "bright"], ["a photo of {}", "a {} chest x-ray"])
    rows = [line.split(",") for line in (run / "predictions.csv").read_text().splitlines()[1:]]
    stored = np.array([float(r[-1]) for r in rows if r[0] == "test"])
    np.testing.assert_allclose(stored, expected[:, 1], atol=1e-5)  # the run scored CLIP's zero-shot probabilities

    # The same head starts a fine-tune (model.zero_shot in a recipe); the two runs compare on the same images.
    tune = tmp_path / "tune.yaml"
    tune.write_text(yaml.safe_dump({**{k: v for k, v in recipe.items() if k != "evaluate"},
                                    "name": "from-zero-shot", "evaluate": {"bootstrap": 20},
                                    "train": {"strategy": "fine_tune", "epochs": 1, "batch_size": 16, "lr": 1e-4}}))
    from tltf.assemble import model_from_recipe
    from tltf.task import Task

    start = model_from_recipe(tltf.load_recipe(tune), Task(["class_0", "class_1"]))
    np.testing.assert_allclose(start(test_images).numpy()[:, 0], expected[:, 1], atol=1e-5)
    tuned = runner.invoke(main, ["fit", str(tune), "--run-dir", str(tmp_path / "tuned")])
    assert tuned.exit_code == 0, tuned.output
    compared = runner.invoke(main, ["compare", str(run), str(tmp_path / "tuned"), "--json", str(tmp_path / "c.json")])
    assert compared.exit_code == 0, compared.output
    assert json.loads((tmp_path / "c.json").read_text())["pairs"][0]["method"] == "delong"

    exported = runner.invoke(main, ["export", str(run), "--out", str(tmp_path / "serving")])
    assert exported.exit_code == 0, exported.output  # the parity check against model.keras passed

    refused = runner.invoke(main, ["zero-shot", str(data), "--preset", str(presets["hub_vit"])])
    assert refused.exit_code == 2 and "zero-shot needs a CLIP preset" in refused.stderr
    wrong_count = runner.invoke(main, ["zero-shot", str(data), "--preset", str(clip_preset), "--classes", "a,b,c"])
    assert wrong_count.exit_code == 2
    assert "model.zero_shot.class_names: 3 names (a, b, c) for 2 classes" in wrong_count.stderr


@pytest.mark.parametrize("strategy,frozen_units", [("feature_extraction", ["stem", "block_0", "block_1", "top"]),
                                                   ("gradual_unfreeze", ["stem", "block_0"])])
def test_strategies_freeze_the_hub_units_they_say(presets, tmp_path, strategy, frozen_units):
    """feature_extraction (the head on cached features) never moves the backbone; gradual unfreezing over 3
    epochs (head, + top, + block_1) never reaches block_0 and the stem."""
    from tltf.run_dir import load_run_model

    recipe = tltf.load_recipe(hub_recipe(tmp_path, presets["hub_vit"]), [
        f"train.strategy={strategy}", "train.layer_decay=null", "train.epochs=3", "train.gradual={every: 1, "
        "start_epochs: 1}", "train.lr=0.01"])
    result = tltf.fit(recipe, tmp_path / "run", verbose=0)
    trained = BlockMap.of(load_run_model(result.run_dir))
    preset = BlockMap.of(tltf.build_model("hub", preset=str(presets["hub_vit"]), image_size=32, dropout=0.0))
    for unit in frozen_units:
        for after, before in zip(trained.variables[unit], preset.variables[unit], strict=True):
            np.testing.assert_array_equal(after.numpy(), before.numpy(), err_msg=f"{unit}: {before.path}")
    moved = [u for u in trained.names if any(not np.array_equal(a.numpy(), b.numpy())
                                             for a, b in zip(trained.variables[u], preset.variables[u]))]
    assert "head" in moved and not set(moved) & set(frozen_units)
