"""Per-unit learning rates: exact updates, ratios, frozen units, and the Keras machinery around them."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import calibrate_batch_norm

import tltf
from tltf.models.anatomy import variable_key
from tltf.models.blocks import HEAD, BlockMap
from tltf.recipe import TrainConfig
from tltf.train.layerwise import (
    discriminative_multipliers,
    layer_decay_multipliers,
    split_groups,
    variable_multipliers,
)
from tltf.train.optimizers import LayerwiseAdamW, LayerwiseSGD, build_optimizer, ensure_slots
from tltf.train.schedules import PhaseSchedule
from tltf.train.unfreezing import backbone_units, set_trainable_units

RNG = np.random.default_rng(0)
BACKBONES = ["resnet50", "mobilenet_v2", "efficientnet_b0"]


def batch(n=4, size=32):
    return RNG.uniform(0, 255, (n, size, size, 3)).astype("float32"), np.array([[0], [1]] * (n // 2), "float32")


def flush_denormals(values):
    return np.where(np.abs(values) < np.finfo(np.float32).tiny, np.float32(0), values)


def gradients(model, x, y):
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(y, model(x, training=True))
    variables = model.trainable_variables
    return tape.gradient(loss, variables), variables


def setup(name, decay=0.5, bn="frozen"):
    # No dropout, so the forward pass is deterministic and the step checkable exactly.
    model = tltf.build_model(name, image_size=32, weights=None, bn=bn, dropout=0.0,
                             alpha=0.35 if name == "mobilenet_v2" else None)
    if bn == "frozen":
        # Random-init backbones in inference mode output a constant: no gradient would reach the head's bias.
        calibrate_batch_norm(model, batch(8)[0])
    block_map = BlockMap.of(model, "block")
    units = layer_decay_multipliers(block_map.names, decay)
    return model, block_map, units, variable_multipliers(block_map.path_to_unit(), units)


@pytest.mark.parametrize("name", BACKBONES)
def test_sgd_step_is_exactly_minus_group_rate_times_gradient(name):
    model, block_map, units, multipliers = setup(name)
    optimizer = LayerwiseSGD(learning_rate=0.01, lr_multipliers=multipliers)
    x, y = batch()
    grads, variables = gradients(model, x, y)
    before = [v.numpy().copy() for v in variables]
    optimizer.apply(grads, variables)
    unit_of = block_map.path_to_unit()
    seen_units = set()
    for variable, grad, old in zip(variables, grads, before):
        unit = unit_of[variable_key(variable)]
        rate = np.float32(0.01) * np.float32(units[unit])
        expected = flush_denormals(old - grad.numpy() * rate)  # TensorFlow's CPU kernels flush them to zero
        np.testing.assert_array_equal(flush_denormals(variable.numpy()), expected, err_msg=variable.path)
        if np.abs(grad.numpy()).max() > 0:
            seen_units.add(unit)
    assert seen_units == set(block_map.names)  # every unit, stem to head, moved and was checked


@pytest.mark.parametrize("name", BACKBONES)
def test_adamw_first_step_updates_scale_with_group_rates(name):
    # BN on batch statistics keeps random-init activations (and gradients) healthy; a mild decay keeps every
    # update far above float32 resolution.
    model, block_map, units, multipliers = setup(name, decay=0.8, bn="train")
    optimizer = LayerwiseAdamW(learning_rate=1e-3, weight_decay=0.0, lr_multipliers=multipliers)
    x, y = batch()
    grads, variables = gradients(model, x, y)
    before = {v.path: v.numpy().copy() for v in variables}
    optimizer.apply(grads, variables)
    unit_of = block_map.path_to_unit()
    per_unit = {}
    for variable, grad in zip(variables, grads):
        g = grad.numpy()
        strong = np.abs(g) > 1e-4  # Adam's first step is lr·g/(|g|+1e-7): lr·sign(g) within 0.1% here
        if strong.any():
            step = (before[variable.path] - variable.numpy())[strong] / np.sign(g[strong])
            per_unit.setdefault(unit_of[variable_key(variable)], []).append(np.median(step))
    rates = {unit: np.median(steps) for unit, steps in per_unit.items()}
    top, other = HEAD, next(u for u in block_map.names[:-1] if u in rates)
    assert rates[top] == pytest.approx(1e-3, rel=2e-3)
    for unit in (other, block_map.names[-2]):
        assert rates[unit] / rates[top] == pytest.approx(units[unit] / units[top], rel=2e-3)


def test_frozen_units_never_move_in_fit():
    model, block_map, units, multipliers = setup("mobilenet_v2")
    names = backbone_units(block_map)
    set_trainable_units(model, block_map, names[len(names) // 2:])
    frozen = [v for name in names[: len(names) // 2] for v in block_map.variables[name]]
    before = [v.numpy().copy() for v in frozen]
    head_kernel = block_map.variables[HEAD][0]
    head_before = head_kernel.numpy().copy()
    model.compile(LayerwiseAdamW(1e-2, lr_multipliers=multipliers), "binary_crossentropy")
    x, y = batch(8)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, frozen))
    assert not np.array_equal(head_before, head_kernel.numpy())


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_weight_decay_follows_the_multiplier_and_skips_bias_and_bn(kind):
    """tltf's own optimizer factory, on a model with BatchNorm: kernels decay at lr × multiplier × wd."""
    model = tltf.build_model("tiny_test", image_size=16, weights=None, dropout=0.0)
    block_map = BlockMap.of(model, "block")
    units = {"stem": 1.0, "block1": 0.2, "block2": 1.0, HEAD: 3.0}
    multipliers = variable_multipliers(block_map.path_to_unit(), units)
    optimizer = build_optimizer(TrainConfig(optimizer=kind, weight_decay=0.5), 0.1, multipliers)
    variables = model.trainable_variables
    before = {v.path: v.numpy().copy() for v in variables}
    optimizer.apply([tf.zeros_like(v) for v in variables], variables)  # zero gradients: only decay moves them
    unit_of = block_map.path_to_unit()
    names = set()
    for variable in variables:
        name = variable.path.rsplit("/", 1)[-1]
        names.add(name)
        if name in ("bias", "gamma", "beta"):
            expected = before[variable.path]
        else:
            expected = before[variable.path] * (1 - 0.5 * 0.1 * units[unit_of[variable_key(variable)]])
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, err_msg=variable.path)
    assert {"kernel", "bias", "gamma", "beta"} <= names  # every kind of variable was checked


def test_multipliers_compose_with_a_schedule_loss_scaling_saving_and_a_strategy(tmp_path):
    model, block_map, units, multipliers = setup("mobilenet_v2")
    schedule = PhaseSchedule([{"steps": 4, "lr": 1e-3, "warmup_steps": 2, "decay": "cosine"}])
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        optimizer = keras.optimizers.LossScaleOptimizer(LayerwiseAdamW(schedule, lr_multipliers=multipliers))
        model.compile(optimizer, "binary_crossentropy")
    x, y = batch(8)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    inner = loaded.optimizer.inner_optimizer
    assert isinstance(inner, LayerwiseAdamW) and inner.lr_multipliers == multipliers
    assert int(inner.iterations.numpy()) == 2
    original, restored = model.optimizer.inner_optimizer.variables, inner.variables
    assert len(original) == len(restored) > 100  # Keras restores optimizer variables by position
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(original, restored))
    probe = next(v for v in loaded.trainable_variables if v.path.endswith("logit/kernel"))
    assert inner.multiplier(probe) == units[HEAD] == 1.0
    probe = next(v for v in loaded.trainable_variables if v.path == "Conv1/kernel")
    assert inner.multiplier(probe) == units["stem"] < 1.0


def test_ensure_slots_keeps_existing_moments_and_step_count():
    model, block_map, _, _ = setup("mobilenet_v2")
    names = backbone_units(block_map)
    set_trainable_units(model, block_map, names[-1:])
    optimizer = LayerwiseAdamW(1e-3)
    model.compile(optimizer, "binary_crossentropy")
    x, y = batch(8)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    saved = {v.path: v.numpy().copy() for v in optimizer.variables}
    set_trainable_units(model, block_map, names)
    added = ensure_slots(optimizer, model.trainable_variables)
    assert added and int(optimizer.iterations.numpy()) == 2
    after = {v.path: v.numpy() for v in optimizer.variables}
    assert all(np.array_equal(saved[path], after[path]) for path in saved)
    assert len(after) > len(saved)


def test_multiplier_rules():
    assert layer_decay_multipliers(["stem", "a", "head"], 0.9) == pytest.approx({"stem": 0.81, "a": 0.9, "head": 1.0})
    assert split_groups(["s", "a", "b", "c", "d"], 2) == [["s", "a"], ["b", "c", "d"]]
    multipliers = discriminative_multipliers(["s", "a", "b", "head"], 1e-4, 1e-3, lr_range=(1e-6, 1e-4))
    assert multipliers == pytest.approx({"s": 0.01, "a": 0.1, "b": 1.0, "head": 10.0})
