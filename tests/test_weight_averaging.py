"""`train.ema` and `tltf.callbacks.WeightAveraging`: a moving average of the weights is validated and delivered."""

import json

import keras
import numpy as np
import pytest
from conftest import write_recipe

import tltf
from tltf.callbacks import WeightAveraging
from tltf.models.anatomy import variable_key
from tltf.recipe import load_recipe
from tltf.run_dir import load_run_model


class RecordWeights(keras.callbacks.Callback):
    """The model's weights after every batch (as the optimizer left them) and at every epoch end."""

    def __init__(self):
        super().__init__()
        self.after_batch, self.at_epoch_end = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.after_batch.append([w.numpy().copy() for w in self.model.trainable_weights])

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append({variable_key(w): w.numpy().copy() for w in self.model.weights})


def test_the_average_equals_a_hand_computed_one_and_validation_sees_it():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), loss="mse")
    start = [w.numpy().copy() for w in model.trainable_weights]
    averaging, record = WeightAveraging(momentum=0.8), RecordWeights()
    history = model.fit(x, y, batch_size=16, epochs=3, validation_data=(x, y), verbose=0,
                        callbacks=[averaging, record])
    expected = start
    for weights in record.after_batch:  # 12 steps
        expected = [0.8 * e + 0.2 * w for e, w in zip(expected, weights)]
    raw = [w.numpy().copy() for w in model.trainable_weights]
    np.testing.assert_array_equal(raw[0], record.after_batch[-1][0])  # training ends with the raw weights in
    averaging.swap_in()
    for variable, value in zip(model.trainable_weights, expected):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-6)
    # the last validation ran on the averaged weights, and callbacks after it saw them at the epoch's end
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    first_kernel = variable_key(model.trainable_weights[0])
    np.testing.assert_allclose(record.at_epoch_end[-1][first_kernel], expected[0], rtol=1e-5, atol=1e-6)
    assert np.abs(raw[0] - expected[0]).max() > 1e-3
    averaging.swap_out()
    np.testing.assert_array_equal(model.trainable_weights[0].numpy(), raw[0])


def test_a_run_with_ema_delivers_the_average_of_its_best_epoch(npz_path, tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                                      train={"strategy": "fine_tune", "epochs": 4, "ema": 0.7}))
    record = RecordWeights()
    result = tltf.fit(recipe, tmp_path / "run", verbose=0, callbacks=[record])
    best = json.loads((tmp_path / "run" / "metrics.json").read_text())["best_epoch"]
    delivered = load_run_model(result.run_dir)
    seen = record.at_epoch_end[best - 1]  # the fitted model's variables, the classifier's among them
    compared = [v for v in delivered.weights if variable_key(v) in seen]
    assert len(compared) == len(delivered.weights)
    for variable in compared:
        np.testing.assert_array_equal(variable.numpy(), seen[variable_key(variable)], err_msg=variable.path)
    head = delivered.get_layer("head").weights[0].numpy()
    assert not any(np.array_equal(head, weights[-2]) for weights in record.after_batch)  # not a raw step's weights


def test_on_cached_features_the_average_sees_every_step(npz_path, tmp_path):
    """A feature-extraction phase fits the head on cached features, normally 16 steps per Keras call; with
    `train.ema` it runs one per call, so the average at each epoch end is the hand-computed one over every step."""
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                                      train={"strategy": "feature_extraction", "epochs": 2, "ema": 0.5}))

    class Start(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.kernel = self.model.trainable_weights[0].numpy().copy()

    start, record = Start(), RecordWeights()
    tltf.fit(recipe, tmp_path / "run", verbose=0, callbacks=[start, record])
    assert len(record.after_batch) == 8  # 64 images, batch 16, 2 epochs: every step seen
    average = start.kernel
    for step, weights in enumerate(record.after_batch, start=1):
        average = 0.5 * average + 0.5 * weights[0]
        if step % 4 == 0:
            seen = [v for k, v in record.at_epoch_end[step // 4 - 1].items() if v.shape == average.shape]
            np.testing.assert_allclose(seen[0], average, rtol=1e-5, atol=1e-6)


def test_a_layer_unfrozen_within_the_fit_starts_its_average_when_it_first_trains():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="late"), keras.layers.Dense(1)])

    class Unfreeze(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.get_layer("late").trainable = True
                self.model.make_train_function(force=True)

    model.compile(keras.optimizers.SGD(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)  # slots for every variable, then the late layer frozen
    model.get_layer("late").trainable = False
    averaging, record = WeightAveraging(momentum=0.5), RecordWeights()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[averaging, Unfreeze(), record])
    late_steps = [weights[0] for weights in record.after_batch[2:]]  # epoch 1: the late kernel trains first
    expected = late_steps[0]
    for weights in late_steps[1:]:
        expected = 0.5 * expected + 0.5 * weights
    averaging.swap_in()
    np.testing.assert_allclose(model.get_layer("late").kernel.numpy(), expected, rtol=1e-5, atol=1e-6)
