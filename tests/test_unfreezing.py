import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import separable_images, write_recipe

import tltf
from tltf.callbacks import GradualUnfreezing, IntentCheck, IntentViolation
from tltf.models.anatomy import variable_key
from tltf.models.blocks import HEAD, BlockMap
from tltf.recipe import load_recipe
from tltf.train.layerwise import layer_decay_multipliers, variable_multipliers
from tltf.train.optimizers import LayerwiseAdamW, LayerwiseSGD
from tltf.train.unfreezing import unfrozen_count


def test_unfreezing_schedule():
    assert [unfrozen_count(e, 3, every=2, start_epochs=1) for e in range(8)] == [0, 1, 1, 2, 2, 3, 3, 3]
    assert [unfrozen_count(e, 2, every=1, start_epochs=0) for e in range(3)] == [1, 2, 2]


def tiny_model():
    return tltf.build_model("tiny_test", image_size=16, weights=None, bn="frozen", dropout=0.0)


def data(n=16):
    images, labels = separable_images(n, 16, seed=3, channels=3)
    return images.astype("float32"), labels.astype("float32")[:, None]


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self, model):
        super().__init__()
        self.tracked = model
        self.begin, self.end = [], []

    def snapshot(self):
        optimizer = self.model.optimizer
        slots = {v.path.rsplit("/", 1)[1]: v.numpy().copy() for v in optimizer.variables}
        return {"train_function": self.model.train_function, "iterations": int(optimizer.iterations.numpy()),
                "trainable": [variable_key(v) for v in self.model.trainable_variables], "slots": slots,
                "weights": {variable_key(v): v.numpy().copy() for v in self.tracked.weights}}

    def on_epoch_begin(self, epoch, logs=None):
        self.begin.append(self.snapshot())

    def on_epoch_end(self, epoch, logs=None):
        self.end.append(self.snapshot())


def test_gradual_unfreezing_in_a_plain_keras_fit():
    model = tiny_model()
    model.compile(LayerwiseAdamW(1e-2), "binary_crossentropy")
    unfreezing = GradualUnfreezing(every=1, unit="block", start_epochs=1, verbose=0)
    recorder = EpochRecorder(model)
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=5, callbacks=[unfreezing, recorder], verbose=0)
    # Units top down: block2, block1, then the stem (whose only variable is the test's image counter).
    assert unfreezing.unfrozen == ["stem", "block1", "block2"]
    trainable = [set(k.split("/")[0] for k in b["trainable"]) for b in recorder.begin]
    assert trainable[0] == {"logit"}
    assert trainable[1] == {"logit", "block2_conv", "block2_bn"}
    assert trainable[2] == trainable[4] == {"logit", "block2_conv", "block2_bn", "block1_conv", "block1_bn"}
    # Each unfreezing rebuilt the train function; no unfreezing, no rebuild.
    functions = [b["train_function"] for b in recorder.begin]
    assert len({id(f) for f in functions[:4]}) == 4 and functions[3] is functions[4]
    # Slots and the step count carry over each switch.
    for end, begin in zip(recorder.end[:-1], recorder.begin[1:]):
        assert begin["iterations"] == end["iterations"]
        assert all(np.array_equal(end["slots"][k], begin["slots"][k]) for k in end["slots"])
    assert np.any(recorder.begin[1]["slots"]["head_logit_kernel_momentum"] != 0)
    # Frozen blocks do not move; once unfrozen they do.
    first, second = recorder.begin[0]["weights"], recorder.end[0]["weights"]
    assert np.array_equal(first["block2_conv/kernel"], second["block2_conv/kernel"])
    assert not np.array_equal(recorder.begin[1]["weights"]["block2_conv/kernel"],
                              recorder.end[1]["weights"]["block2_conv/kernel"])
    assert np.array_equal(recorder.begin[1]["weights"]["block1_conv/kernel"],
                          recorder.end[1]["weights"]["block1_conv/kernel"])


def test_newly_unfrozen_blocks_get_their_layer_decay_rate():
    model = tiny_model()
    block_map = BlockMap.of(model, "block")
    units = layer_decay_multipliers(block_map.names, 0.5)
    optimizer = LayerwiseSGD(0.1, lr_multipliers=variable_multipliers(block_map.path_to_unit(), units))
    model.compile(optimizer, "binary_crossentropy")
    x, y = data(8)
    recorder = EpochRecorder(model)
    # One step per epoch: epoch 1 is block2's first step.
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[GradualUnfreezing(1, "block", 1, verbose=0), recorder],
              verbose=0, shuffle=False)
    kernel = model.get_layer("backbone").layer.get_layer("block2_conv").kernel
    for v in model.weights:  # back to the state before epoch 1's step, to recompute its gradient
        v.assign(recorder.begin[1]["weights"][variable_key(v)])
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.losses.binary_crossentropy(y, model(x, training=True)))
    grad = tape.gradient(loss, kernel).numpy()
    expected = recorder.begin[1]["weights"]["block2_conv/kernel"] - grad * np.float32(0.1 * units["block2"])
    np.testing.assert_allclose(recorder.end[1]["weights"]["block2_conv/kernel"], expected, rtol=1e-5, atol=1e-7)
    assert units["block2"] == 0.5 and units[HEAD] == 1.0


def test_gradual_unfreezing_extends_an_already_built_optimizer():
    model = tiny_model()
    optimizer = LayerwiseAdamW(1e-2)
    model.get_layer("backbone").trainable = False
    model.compile(optimizer, "binary_crossentropy")
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    head_slots = {v.path.rsplit("/", 1)[1]: v.numpy().copy() for v in optimizer.variables}
    assert len(head_slots) == 6  # iteration, learning rate, 2 moments × (kernel, bias)
    recorder = EpochRecorder(model)
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[GradualUnfreezing(1, "block", 0, verbose=0), recorder],
              verbose=0)
    begin = recorder.begin[0]
    assert begin["iterations"] == 2
    assert all(np.array_equal(head_slots[k], begin["slots"][k]) for k in head_slots)
    assert "block1_conv_kernel_momentum" in begin["slots"]


def test_recipe_strategies_train_end_to_end(tmp_path, npz_path):
    for name, train in {
        "gradual": {"strategy": "gradual_unfreeze", "epochs": 3, "gradual": {"every": 1, "start_epochs": 1}},
        "llrd": {"strategy": "fine_tune", "epochs": 2, "layer_decay": 0.7},
        "discriminative": {"strategy": "warmup_then_finetune", "epochs": 3, "head_warmup": {"epochs": 1},
                           "discriminative": {"head": 1e-2, "range": [1e-4, 1e-3]}},
    }.items():
        path = write_recipe(tmp_path / f"{name}.yaml", {"source": "npz", "path": str(npz_path)}, train=train)
        checks = IntentCheck(None)
        result = tltf.fit(load_recipe(path), tmp_path / name, verbose=0, callbacks=[checks])
        assert np.isfinite(result.metrics["val"]["auc"]), name
        saved = keras.models.load_model(tmp_path / name / "model.keras")
        if name != "gradual":
            assert saved.optimizer.lr_multipliers  # the fine-tuning phase's multipliers were saved


def test_too_many_discriminative_groups_is_a_recipe_error(tmp_path, npz_path):
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                        train={"discriminative": {"head": 1e-2, "groups": [1e-4] * 9}})
    with pytest.raises(tltf.errors.RecipeError, match="train.discriminative.groups: 9 rates for 3 backbone blocks"):
        tltf.fit(load_recipe(path), tmp_path / "run", verbose=0)


class Saboteur(keras.callbacks.Callback):
    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            self.variable.assign(self.variable + 1.0)


@pytest.mark.parametrize("layer, variable, freeze_backbone, message", [
    ("block1_conv", "kernel", True, "layer 'block1_conv' is frozen but its kernel changed"),
    ("block2_bn", "moving_mean", False, "BatchNorm 'block2_bn' is declared frozen"),
])
def test_intent_check_names_what_moved_against_the_plan(layer, variable, freeze_backbone, message):
    model = tiny_model()
    model.get_layer("backbone").trainable = not freeze_backbone
    model.compile(LayerwiseAdamW(1e-2), "binary_crossentropy")
    target = getattr(model.get_layer("backbone").layer.get_layer(layer), variable)
    x, y = data()
    with pytest.raises(IntentViolation, match=message):
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[Saboteur(target), IntentCheck()], verbose=0)


class PinMovingMean(keras.callbacks.Callback):
    """Puts a BatchNorm's moving mean back after each step, as a model that never updates it would."""

    def __init__(self, norm):
        super().__init__()
        self.norm = norm

    def on_train_batch_begin(self, batch, logs=None):
        self.saved = self.norm.moving_mean.numpy().copy()

    def on_train_batch_end(self, batch, logs=None):
        self.norm.moving_mean.assign(self.saved)


def test_intent_check_names_batch_norm_declared_to_train_that_did_not_move():
    model = tltf.build_model("tiny_test", image_size=16, weights=None, bn="train", dropout=0.0)
    model.compile(LayerwiseAdamW(1e-2), "binary_crossentropy")
    norm = model.get_layer("backbone").layer.get_layer("block2_bn")
    x, y = data()
    with pytest.raises(IntentViolation, match="BatchNorm 'block2_bn' is declared to train but its moving mean did not"):
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[PinMovingMean(norm), IntentCheck()], verbose=0)


def test_intent_check_passes_an_honest_fit_each_phase():
    model = tltf.build_model("tiny_test", image_size=16, weights=None, bn="train", dropout=0.0)
    model.compile(LayerwiseAdamW(1e-2), "binary_crossentropy")
    check = IntentCheck()
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[check], verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[check], verbose=0)
    assert check.checks == 2


def plain_keras_model():
    """A user's own model: a keras.applications backbone nested in a functional model with a Dense head."""
    backbone = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, pooling="avg",
                                              weights=None)
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="my_head")(backbone(inputs)))


def test_gradual_unfreezing_intent_check_and_multipliers_on_a_plain_keras_model():
    model = plain_keras_model()
    block_map = BlockMap.of(model, "stage")
    assert block_map.names[:2] == ["stem", "stage_1"] and block_map.names[-1] == HEAD  # MobileNetV2's own map
    multipliers = variable_multipliers(block_map.path_to_unit(), layer_decay_multipliers(block_map.names, 0.5))
    model.compile(LayerwiseAdamW(1e-3, lr_multipliers=multipliers), "binary_crossentropy")
    unfreezing = GradualUnfreezing(every=1, unit="stage", start_epochs=1, verbose=0)
    check = IntentCheck()
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = (np.arange(16) % 2).reshape(-1, 1).astype("float32")
    stem_kernel = model.layers[1].get_layer("Conv1").kernel
    before = stem_kernel.numpy().copy()
    model.fit(x, y, batch_size=8, epochs=3, callbacks=[unfreezing, check], verbose=0)
    assert unfreezing.unfrozen == block_map.names[-3:-1]  # two epochs after the first: the top two units
    assert np.array_equal(before, stem_kernel.numpy())  # the stem never unfroze
    assert model.optimizer.multiplier(model.get_layer("my_head").kernel) == 1.0
    assert model.optimizer.multiplier(stem_kernel) == 0.5 ** (len(block_map.names) - 1)


def test_a_model_without_a_nested_backbone_says_what_tltf_needs():
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    x, y = np.zeros((4, 16, 16, 3), "float32"), np.zeros((4, 1), "float32")
    with pytest.raises(ValueError, match="tltf needs the backbone as one nested model"):
        model.fit(x, y, epochs=1, callbacks=[GradualUnfreezing(verbose=0)], verbose=0)
