import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tltf.adapt import GradientReversalSchedule, ganin_lambda
from tltf.layers import GradientReversal


def test_forward_is_identity_and_gradient_is_minus_lambda_times_identity():
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 3)), tf.float32)
    reversal = GradientReversal(0.7)
    weights = tf.constant(np.arange(12, dtype="float32").reshape(4, 3))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        reversed_out = reversal(x)
        identity_out = tf.identity(x)
        loss_reversed = tf.reduce_sum(reversed_out * weights)
        loss_identity = tf.reduce_sum(identity_out * weights)
    np.testing.assert_array_equal(reversed_out.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss_reversed, x).numpy(),
                               -0.7 * tape.gradient(loss_identity, x).numpy(), rtol=0, atol=1e-6)


def test_lambda_is_a_variable_changed_without_retracing():
    reversal = GradientReversal(1.0)
    x = tf.ones((2, 2))
    reversal(x)  # built outside: variable creation inside a tf.function costs a second trace
    traces = []

    @tf.function
    def gradient(inputs):
        traces.append(1)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = tf.reduce_sum(reversal(inputs))
        return tape.gradient(out, inputs)

    assert gradient(x).numpy()[0, 0] == -1.0
    reversal.lambda_.assign(0.25)
    assert gradient(x).numpy()[0, 0] == -0.25
    assert len(traces) == 1


def test_gradient_reversal_serializes_in_a_model(tmp_path):
    inputs = keras.Input((3,))
    reversal = GradientReversal(0.3, name="reversal")
    model = keras.Model(inputs, keras.layers.Dense(1)(reversal(inputs)))
    reversal.lambda_.assign(0.6)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert float(loaded.get_layer("reversal").lambda_.numpy()) == pytest.approx(0.6)


@pytest.mark.parametrize("progress", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_ganin_schedule_matches_the_formula(progress):
    assert ganin_lambda(progress, 10.0, 1.0) == pytest.approx(2 / (1 + math.exp(-10 * progress)) - 1)
    assert ganin_lambda(progress, 5.0, 0.5) == pytest.approx(0.5 * (2 / (1 + math.exp(-5 * progress)) - 1))


def test_schedule_follows_the_optimizer_and_resumes():
    reversal = GradientReversal(0.0)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(reversal(inputs)))
    model.compile("sgd", "mse")
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    schedule = GradientReversalSchedule(reversal, total_steps=8, gamma=10.0)
    history = model.fit(x, y, batch_size=2, epochs=1, callbacks=[schedule], verbose=0)
    # The last step (iteration 3 before it ran) used λ at progress 3/8.
    assert float(reversal.lambda_.numpy()) == pytest.approx(ganin_lambda(3 / 8))
    assert history.history["lambda"] == [pytest.approx(ganin_lambda(3 / 8))]
    # Resumed: a new schedule object continues from the optimizer's step count.
    resumed = GradientReversalSchedule(reversal, total_steps=8, gamma=10.0)
    model.fit(x, y, batch_size=2, epochs=1, callbacks=[resumed], verbose=0)
    assert float(reversal.lambda_.numpy()) == pytest.approx(ganin_lambda(7 / 8))
    assert resumed.value_at(8) == pytest.approx(ganin_lambda(1.0))
    assert GradientReversalSchedule(reversal, 8, schedule="constant", maximum=0.4).value_at(5) == 0.4


def test_schedule_can_start_when_the_backbone_starts_training():
    schedule = GradientReversalSchedule(GradientReversal(0.0), total_steps=30, gamma=10.0, start_step=10)
    assert schedule.value_at(0) == schedule.value_at(9) == 0.0
    assert schedule.value_at(10) == pytest.approx(0.0)
    assert schedule.value_at(20) == pytest.approx(ganin_lambda(0.5))
    assert schedule.value_at(30) == pytest.approx(ganin_lambda(1.0))


def test_other_backends_get_a_clear_error(monkeypatch):
    # JAX and torch are not installed here; the check reads the configured backend name.
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(NotImplementedError, match="needs the TensorFlow backend.*'jax'"):
        GradientReversal(1.0)
