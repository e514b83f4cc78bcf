"""L2-SP: the penalty's step, attached to a tltf classifier and through a recipe."""

import json

import keras
import numpy as np
import pytest
from conftest import separable_images, tiny_pretrained_weights, write_recipe
from keras import ops

import tltf
from tltf.models.anatomy import backbone_of, head_of, leaf_layers, parameters
from tltf.recipe import load_recipe
from tltf.regularizers import L2SP, apply_l2_sp
from tltf.train.distribution import dtype_policy


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_with_only_the_penalty_a_step_moves_each_weight_toward_its_start_by_rate_times_strength(precision):
    with dtype_policy(precision):
        model = tltf.build_model("tiny_test", image_size=16, weights=tiny_pretrained_weights(), dropout=0.0)
        backbone_of(model).trainable = True
        summary = apply_l2_sp(model, alpha=0.3, beta=0.2)
        backbone = [v for layer in leaf_layers(backbone_of(model)) for v in parameters(layer)]
        head = [v for layer in leaf_layers(head_of(model)) for v in parameters(layer)]
        assert summary.toward_start == sum(int(np.prod(v.shape)) for v in backbone)
        assert summary.toward_zero == sum(int(np.prod(v.shape)) for v in head)
        start = [v.numpy().copy() for v in backbone]
        rng = np.random.default_rng(0)
        for variable in backbone + head:  # away from the start, so the penalty has something to pull
            variable.assign(variable.numpy() + rng.normal(0, 0.5, variable.shape).astype("float32"))
        before = [v.numpy().copy() for v in backbone + head]
        # A loss with zero gradient: everything that moves, moves by the penalty alone.
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=lambda y, p: 0.0 * ops.sum(p))
        images, labels = separable_images(8, 16, channels=3)
        model.train_on_batch(images.astype("float32"), labels[:, None].astype("float32"))
    for variable, old, w0 in zip(backbone, before, start):
        np.testing.assert_allclose(variable.numpy(), old - 0.1 * 0.3 * (old - w0), rtol=1e-5, atol=1e-7,
                                   err_msg=variable.path)
    for variable, old in zip(head, before[len(backbone):]):
        np.testing.assert_allclose(variable.numpy(), old - 0.1 * 0.2 * old, rtol=1e-5, atol=1e-7,
                                   err_msg=variable.path)


def test_the_penalty_is_half_strength_times_squared_distance():
    reference = np.array([1.0, -2.0, 0.5], dtype="float32")
    weights = np.array([2.0, -2.0, 0.0], dtype="float32")
    assert float(L2SP(0.4, reference)(weights)) == pytest.approx(0.5 * 0.4 * (1.0 + 0.0 + 0.25))
    assert float(L2SP(0.4)(weights)) == pytest.approx(0.5 * 0.4 * (4.0 + 4.0))


def backbone_drift(run_dir, start) -> float:
    from tltf.run_dir import load_run_model

    model = load_run_model(run_dir)
    end = [v.numpy() for layer in leaf_layers(backbone_of(model)) for v in parameters(layer)]
    return max(float(np.abs(a - b).max()) for a, b in zip(end, start))


def test_recipe_l2_sp_is_explained_and_holds_the_backbone_near_its_start(tmp_path, npz_path):
    from tltf.explain import explain, format_explanation

    start_model = tltf.build_model("tiny_test", image_size=16, weights=tiny_pretrained_weights())
    start = [v.numpy() for layer in leaf_layers(backbone_of(start_model)) for v in parameters(layer)]
    drift = {}
    for name, regularization in (("plain", {}), ("l2_sp", {"l2_sp": {"alpha": 50.0, "beta": 0.0}})):
        path = write_recipe(tmp_path / f"{name}.yaml", {"source": "npz", "path": str(npz_path)},
                            train={"strategy": "fine_tune", "epochs": 4, "lr": 0.01, "weight_decay": 0.0,
                                   "regularization": regularization})
        recipe = load_recipe(path)
        tltf.fit(recipe, tmp_path / name, verbose=0)
        drift[name] = backbone_drift(tmp_path / name, start)
    assert drift["l2_sp"] < 0.5 * drift["plain"], drift
    text = format_explanation(explain(recipe))
    assert "L2-SP: alpha 50 pulls" in text and "pretrained backbone parameters toward their starting values" in text
    with_decay = load_recipe(path, ["train.weight_decay=0.01"])
    assert any("set train.weight_decay: 0" in w for w in explain(with_decay)["warnings"])
    assert json.loads((tmp_path / "l2_sp" / "metrics.json").read_text())["test"]["auc"] > 0.5
