"""LoRA on a backbone: what trains, merging for export, save/load, what cannot take adapters."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import separable_images, tiny_pretrained_weights, write_recipe

import tltf
from tltf.errors import RecipeError
from tltf.models.anatomy import leaf_layers, variable_key
from tltf.models.lora import enable_backbone_lora, merged_lora_copy, restart_adapters
from tltf.recipe import load_recipe


def lora_classifier(rank=2, **kwargs):
    model = tltf.build_model("tiny_test", image_size=16, weights=tiny_pretrained_weights(), dropout=0.0, **kwargs)
    report = enable_backbone_lora(model, rank=rank, alpha=4)
    return model, report


def lora_layers(model):
    return [layer for layer in leaf_layers(model) if getattr(layer, "lora_enabled", False)]


def perturb_adapters(model, seed=0):
    """Non-zero B matrices (Keras starts them at zero), so the adapters change the output."""
    rng = np.random.default_rng(seed)
    for layer in lora_layers(model):
        layer.lora_kernel_b.assign(rng.normal(0, 0.3, layer.lora_kernel_b.shape).astype("float32"))


def test_a_step_moves_only_adapters_and_head_and_unfreezing_does_not_undo_it():
    model, report = lora_classifier(bn="frozen")
    assert report.layers == ["block1_conv", "block2_conv"] and report.skipped == {}
    tltf.backbone_of(model).trainable = False
    tltf.backbone_of(model).trainable = True  # what the trainer does when fine-tuning starts
    adapters = {id(v) for layer in lora_layers(model) for v in (layer.lora_kernel_a, layer.lora_kernel_b)}
    head = {id(v) for v in model.get_layer("head").weights}
    # BatchNorm's scale and offset train as they do without LoRA (the policy governs only its statistics).
    norms = {id(v) for layer in leaf_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
             for v in (layer.gamma, layer.beta)}
    assert {id(v) for v in model.trainable_variables} == adapters | head | norms
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
    images, labels = separable_images(16, 16, channels=3)
    before = {id(v): v.numpy().copy() for v in model.weights}
    model.train_on_batch(images.astype("float32"), labels[:, None].astype("float32"))
    moved = {id(v) for v in model.weights if not np.array_equal(before[id(v)], v.numpy())
             and "count_images" not in v.path}  # the test backbone's image counter counts every forward pass
    assert moved and moved <= adapters | head | norms  # everything else bit-identical
    # B starts at zero, so the first step moves B (and not A, whose gradient is A's times B = 0).
    assert all(id(layer.lora_kernel_b) in moved for layer in lora_layers(model))


def test_merged_copy_computes_what_the_adapted_model_does_with_plain_kernels():
    model, _ = lora_classifier()
    perturb_adapters(model)
    images = separable_images(8, 16, channels=3)[0].astype("float32")
    merged = merged_lora_copy(model)
    assert not lora_layers(merged) and len(merged.weights) == len(model.weights) - 4
    np.testing.assert_allclose(merged.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
    # The adapters matter: the same model without them predicts otherwise.
    for layer in lora_layers(model):
        layer.lora_kernel_b.assign(tf.zeros_like(layer.lora_kernel_b))
    assert np.abs(model.predict(images, verbose=0) - merged.predict(images, verbose=0)).max() > 1e-3


def test_save_and_load_keep_outputs_the_frozen_set_and_the_optimizer_state(tmp_path):
    model, _ = lora_classifier()
    perturb_adapters(model)
    tltf.backbone_of(model).trainable = True
    model.compile(optimizer=tltf.optimizers.LayerwiseAdamW(1e-3), loss="binary_crossentropy")
    images, labels = separable_images(16, 16, channels=3)
    model.train_on_batch(images.astype("float32"), labels[:, None].astype("float32"))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    names = sorted(variable_key(v) for v in model.trainable_variables)
    assert sorted(variable_key(v) for v in loaded.trainable_variables) == names
    # The same slot values (paths differ between a built and a loaded model): Keras restored the state because
    # the loaded model trains exactly the same variables.
    def slot_values(optimizer):
        return sorted(v.numpy().tobytes() for v in optimizer.variables)

    assert int(loaded.optimizer.iterations.numpy()) == 1
    assert slot_values(loaded.optimizer) == slot_values(model.optimizer)
    # Keras loads the adapters as zeros (A and B: no gradient); fresh A matrices keep the outputs and let them learn.
    assert all(not np.any(layer.lora_kernel_a.numpy()) for layer in lora_layers(loaded))
    restart_adapters(loaded)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    b_before = [layer.lora_kernel_b.numpy().copy() for layer in lora_layers(loaded)]
    loaded.train_on_batch(images.astype("float32"), labels[:, None].astype("float32"))
    assert all(np.abs(layer.lora_kernel_b.numpy() - b).max() > 0 for layer, b in zip(lora_layers(loaded), b_before))


def test_layers_that_cannot_take_lora_are_skipped_and_counted():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 1, name="pointwise")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.Conv2D(4, 1, kernel_constraint=keras.constraints.MaxNorm(2.0), name="constrained")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    backbone = keras.Model(inputs, x, name="mobilenetv2_custom")
    outputs = keras.layers.Dense(1, activation="sigmoid", name="logit")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    report = enable_backbone_lora(model, rank=2)
    assert report.layers == ["pointwise"]
    assert report.skipped == {"depthwise or separable convolution (no LoRA in Keras)": 1, "kernel constraint": 1}
    assert "2 skipped" not in report.summary() and "1 skipped: kernel constraint" in report.summary()
    frozen = {v.path for v in model.non_trainable_variables}
    assert {"depthwise/kernel", "constrained/kernel", "pointwise/kernel", "pointwise/bias"} <= frozen


def test_recipe_lora_on_chosen_blocks_trains_explains_and_exports_merged(tmp_path, npz_path):
    from tltf.explain import explain, format_explanation
    from tltf.export import export_run

    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                        model={"lora": {"rank": 2, "alpha": 4, "blocks": ["block2"]}},
                        train={"strategy": "warmup_then_finetune", "epochs": 3, "head_warmup": {"epochs": 1}})
    recipe = load_recipe(path)
    explanation = explain(recipe)
    blocks = {b["name"]: b for b in explanation["phases"][-1]["blocks"]}
    assert blocks["block2"]["lora"] == {"rank": 2, "params": 2 * (4 * 9) + 2 * 8}  # A: 3·3·4 × 2, B: 2 × 8
    assert "lora" not in blocks["block1"] and "rank 2, 88" in format_explanation(explanation)
    tltf.fit(recipe, tmp_path / "run", verbose=0)
    result = export_run(tmp_path / "run", tmp_path / "serving")
    assert result.parity.ok and result.parity.float_max_abs_diff <= 1e-5
    served = tf.saved_model.load(str(result.version_dir))
    assert not any("lora" in v.name for v in served.variables)
    from tltf.run_dir import load_run_model

    reloaded = load_run_model(tmp_path / "run")
    assert [layer.name for layer in lora_layers(reloaded)] == ["block2_conv"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["auc"] > 0.5


def test_unknown_lora_blocks_are_one_error_naming_the_key(tmp_path, npz_path):
    from tltf.assemble import model_from_recipe
    from tltf.task import Task

    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                        model={"lora": {"rank": 2, "blocks": ["stage9"]}})
    with pytest.raises(RecipeError, match=r"model.lora.blocks: \['stage9'\] are not all blocks or all stages"):
        model_from_recipe(load_recipe(path), Task(["a", "b"]))
