"""Progressive resizing: the last phase's first epochs train on shrunk images; validation and delivery at full size."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import separable_images, tiny_pretrained_weights, write_recipe

from tltf.assemble import assemble_training, model_from_recipe
from tltf.data.sources import load_splits
from tltf.errors import RecipeError
from tltf.layers import InputResolution
from tltf.models import backbones, build_model
from tltf.models.families.base import BackboneSpec
from tltf.recipe import load_recipe
from tltf.task import Task
from tltf.train.callbacks import ProgressiveResizing
from tltf.train.progressive_resizing import AtSmallerSize
from tltf.train.trainer import Trainer


class Interrupt(Exception):
    pass


def fixed_size_backbone(input_shape, weights=None):
    """Flattens its feature map: like a ViT's position table, it runs at one input size only."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    return keras.Model(inputs, keras.layers.Flatten()(x), name="fixed")


@pytest.fixture
def fixed_size_test(monkeypatch):
    """Registered for one test only: the registry is shared by every test in the worker."""
    spec = BackboneSpec("fixed_size_test", fixed_size_backbone, "tf", "fixed", min_size=8)
    monkeypatch.setitem(backbones._REGISTRY, spec.name, spec)
    return spec.name


def test_input_resolution_passes_full_size_images_through_and_shrinks_them_when_told():
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    layer = InputResolution(16)
    np.testing.assert_array_equal(layer(images), images)
    layer.size.assign(8)
    shrunk = layer(images)
    assert shrunk.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(shrunk, tf.image.resize(images, (8, 8), antialias=True), atol=1e-4)
    assert InputResolution.from_config(layer.get_config()).full_size == 16


def user_fit(callback, validation=None):
    """A plain-Keras fit of a 16 px classifier through an InputResolution, one epoch, with `callback`."""
    keras.utils.set_random_seed(0)
    classifier = build_model("tiny_test", image_size=16, weights=tiny_pretrained_weights(), dropout=0.0)
    images = keras.Input((16, 16, 3))
    fitted = keras.Model(images, classifier(InputResolution(16)(images)))
    fitted.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    x, y = separable_images(32, 16, channels=3)
    fitted.fit(x.astype("float32"), y, batch_size=8, epochs=1, shuffle=False, verbose=0, validation_data=validation,
               callbacks=[callback])
    return classifier, x.astype("float32"), y


def test_an_epoch_at_the_smaller_size_trains_as_a_model_built_at_that_size():
    classifier, x, y = user_fit(ProgressiveResizing(size=8, until_epoch=1))
    keras.utils.set_random_seed(0)
    twin = build_model("tiny_test", image_size=8, weights=tiny_pretrained_weights(), dropout=0.0)
    twin.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    twin.fit(tf.image.resize(x, (8, 8), antialias=True), y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b, variable in zip(classifier.get_weights(), twin.get_weights(), classifier.weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=variable.path)
    untrained = build_model("tiny_test", image_size=8, weights=tiny_pretrained_weights(), dropout=0.0)
    assert not all(np.array_equal(a, b) for a, b in zip(classifier.get_weights(), untrained.get_weights()))


def test_validation_during_a_shrunk_epoch_runs_at_the_full_size():
    seen = {}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen["val_loss"] = logs["val_loss"]
            seen["size"] = int(next(layer for layer in self.model.layers if isinstance(layer, InputResolution)).size)

    val_x, val_y = separable_images(16, 16, seed=1, channels=3)
    resizing = ProgressiveResizing(size=8, until_epoch=1)
    classifier, _, _ = user_fit(keras.callbacks.CallbackList([resizing, Record()]), (val_x.astype("float32"), val_y))
    classifier.compile(loss="binary_crossentropy")
    full = classifier.evaluate(val_x.astype("float32"), val_y, verbose=0)
    assert seen["size"] == 8  # the epoch went on at the smaller size after validating
    assert seen["val_loss"] == pytest.approx(full, rel=1e-5)


def resized_plan(tmp_path, npz_path, name="tiny", **train):
    path = write_recipe(tmp_path / f"{name}.yaml", {"source": "npz", "path": str(npz_path)},
                        train={"epochs": 3, "deterministic": True,
                               "progressive_resizing": {"size": 8, "epochs": 0.67}, **train})
    recipe = load_recipe(path)
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    keras.utils.set_random_seed(0)
    model = model_from_recipe(recipe, Task(splits.class_names))
    return assemble_training(recipe, model, splits, verbose=0)


class SizeRecorder(keras.callbacks.Callback):
    """Records the InputResolution size each epoch's training steps ran at."""

    def __init__(self, sizes: list):
        super().__init__()
        self.sizes = sizes

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            layers = [layer for layer in self.model.layers if isinstance(layer, InputResolution)]
            self.sizes.append(int(layers[0].size) if layers else None)


def test_a_recipe_trains_its_last_phase_first_epochs_shrunk_and_says_so(tmp_path, npz_path):
    plan = resized_plan(tmp_path, npz_path)
    assert isinstance(plan.phases[-1].fit_target, AtSmallerSize)
    assert ("the first 2 epochs of fine_tune's 3 train at 8 px, the rest at the full size, validation always at "
            "the full size, that phase without XLA (train.progressive_resizing)") in plan.budget
    sizes = []
    outcome = Trainer(verbose=0, callbacks=[SizeRecorder(sizes)]).run(plan, tmp_path / "run")
    assert sizes == [8, 8, 16]
    assert outcome.epochs_run == 3 and plan.model.input_shape == (None, 16, 16, 3)
    assert keras.models.load_model(tmp_path / "run" / "model.keras").input_shape == (None, 16, 16, 3)


def test_the_resized_phase_runs_without_xla_where_the_plan_would_compile_with_it(tmp_path, npz_path):
    """On a GPU `jit_compile: auto` turns XLA on, which cannot compile a size held in a variable; the phase's
    target compiles without it (the rest of the plan keeps XLA)."""
    plan = dataclasses.replace(resized_plan(tmp_path, npz_path, epochs=2), jit_compile=True)
    sizes = []
    Trainer(verbose=0, callbacks=[SizeRecorder(sizes)]).run(plan, tmp_path / "run", deliver=False)
    assert sizes == [8, 16]


def test_a_resized_run_continues_after_an_interruption_as_the_uninterrupted_run(tmp_path, npz_path):
    reference = resized_plan(tmp_path, npz_path)
    Trainer(verbose=0).run(reference, tmp_path / "reference", deliver=False)

    def interrupt(epoch, logs):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=interrupt)]).run(
            resized_plan(tmp_path, npz_path), tmp_path / "stopped", deliver=False)
    continued, sizes = resized_plan(tmp_path, npz_path), []
    Trainer(verbose=0, callbacks=[SizeRecorder(sizes)]).run(continued, tmp_path / "stopped", deliver=False)
    assert sizes == [8, 16]  # epochs 2 and 3 only, the second still shrunk
    for a, b, variable in zip(continued.model.get_weights(), reference.model.get_weights(), continued.model.weights):
        if not variable.path.startswith("count_images"):
            np.testing.assert_array_equal(a, b, err_msg=variable.path)


def test_a_model_that_runs_at_one_size_only_is_refused_naming_the_key(tmp_path, npz_path, fixed_size_test):
    path = write_recipe(tmp_path / "fixed.yaml", {"source": "npz", "path": str(npz_path)},
                        model={"backbone": fixed_size_test, "weights": None},
                        train={"progressive_resizing": {"size": 8}})
    recipe = load_recipe(path)
    splits = load_splits(recipe.data, seed=1)
    refused = r"^train\.progressive_resizing\.size: tltf_fixed_size_test cannot run at 8 px"
    with pytest.raises(RecipeError, match=refused):
        assemble_training(recipe, model_from_recipe(recipe, Task(splits.class_names)), splits, verbose=0)


@pytest.mark.parametrize("train, message", [
    ({"progressive_resizing": {"size": 16}}, r"train\.progressive_resizing\.size: 16 px is not below data\.image_size"),
    ({"progressive_resizing": {"size": 8}, "jit_compile": True}, r"train\.progressive_resizing: cannot run under XLA"),
])
def test_a_recipe_it_cannot_serve_is_refused_in_one_line(tmp_path, npz_path, train, message):
    path = write_recipe(tmp_path / "refused.yaml", {"source": "npz", "path": str(npz_path)}, train=train)
    with pytest.raises(RecipeError, match=message):
        load_recipe(path)

