"""Small data: the scratch arm trains, BatchNorm calibration, label subsamples, step budgets."""

import json

import keras
import numpy as np
import pytest
from conftest import separable_images, write_recipe

import tltf
from tltf.callbacks import BatchNormCalibration
from tltf.data.subsample import subsample_count, subsample_indices
from tltf.recipe import load_recipe


@pytest.fixture
def small_npz(tmp_path):
    """96 training images (two classes told apart by brightness), 64 val, 64 test, 32 px RGB."""
    images, labels = separable_images(224, 32, channels=3, seed=5)
    path = tmp_path / "small.npz"
    np.savez(path, train_images=images[:96], train_labels=labels[:96], val_images=images[96:160],
             val_labels=labels[96:160], test_images=images[160:], test_labels=labels[160:])
    return path


def scratch_recipe(tmp_path, npz, **model):
    """The scratch arm of a study: a warm-up-then-fine-tune recipe with `model.weights: none`."""
    return load_recipe(write_recipe(
        tmp_path / "scratch.yaml", {"source": "npz", "path": str(npz), "image_size": 32},
        model={"backbone": "mobilenet_v2", "alpha": 0.35, "weights": None, "bn": None, "bn_momentum": None,
               "dropout": 0.0, **model},
        train={"strategy": "warmup_then_finetune", "epochs": "auto", "min_steps": 60, "batch_size": 32, "lr": None,
               "head_warmup": {"epochs": 1}, "seed": 3},
    ))


def test_the_scratch_arm_trains_a_deep_random_network_on_few_images(tmp_path, small_npz, tltf_log):
    # A random MobileNetV2 validated with its initial BatchNorm statistics passes activations of ~1e-11 and
    # predicts a constant (val AUC exactly 0.5), however well it fits in training mode: that is what
    # `--set model.weights=none` gave on 5% of PneumoniaMNIST. The weights-none defaults must prevent it.
    recipe = scratch_recipe(tmp_path, small_npz)
    assert recipe.model.bn == "train" and recipe.model.bn_calibration == 16
    result = tltf.fit(recipe, tmp_path / "run", verbose=0)
    assert [row[0] for row in result.plan] == ["fine_tune"]  # nothing frozen: no warm-up on random features
    assert result.plan[0][1] == 20  # epochs auto: 60 steps at 3 steps an epoch
    printed = "\n".join(tltf_log)
    assert "budget: 20 epochs × 3 steps = 60 optimizer steps (epochs auto" in printed
    assert "(train.strategy warmup_then_finetune runs as fine_tune)" in printed and "weights none" in printed
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    test = np.load(small_npz)
    scores = model.predict(test["test_images"], verbose=0).ravel()
    assert scores.std() > 1e-3, f"constant prediction: {scores[:5]}"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val"]["auc"] > 0.6 and metrics["test"]["auc"] > 0.6
    assert metrics["health"]["status"] != "collapsed"


def test_batch_norm_calibration_sets_the_average_of_batch_statistics_and_nothing_else():
    rng = np.random.default_rng(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, name="hidden")(inputs)
    normed = keras.layers.BatchNormalization(momentum=0.99, name="bn")(hidden)
    outputs = keras.layers.Dense(1)(keras.layers.Dropout(0.5, seed=1)(normed))
    model = keras.Model(inputs, outputs)
    images = rng.normal(3.0, 2.0, (40, 6)).astype("float32")
    weights = [w.numpy() for w in model.trainable_weights]
    dropout_state = [v.numpy() for v in model.non_trainable_variables if "seed" in v.path]
    assert dropout_state  # the dropout's generator state is a variable the forward pass moves

    calibration = BatchNormCalibration(images, batch_size=16, batches=2)
    calibration.set_model(model)
    calibration.on_test_begin()

    features = model.get_layer("hidden")(images[:32]).numpy()
    batches = [features[:16], features[16:32]]  # 2 batches of 16: the last 8 images are not used
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([b.mean(0) for b in batches], 0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([b.var(0) for b in batches], 0), rtol=1e-4)
    assert bn.momentum == 0.99
    for before, after in zip(weights, model.trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())
    np.testing.assert_array_equal(dropout_state, [v.numpy() for v in model.non_trainable_variables
                                                  if "seed" in v.path])


def test_subsamples_are_stratified_seeded_and_nested():
    labels = np.repeat([0, 1, 2], [100, 300, 7])
    small = subsample_indices(labels, fraction=0.05, seed=4)
    large = subsample_indices(labels, fraction=0.25, seed=4)
    assert np.bincount(labels[small]).tolist() == [5, 15, 1]  # a class never vanishes
    assert np.bincount(labels[large]).tolist() == [25, 75, 2]
    assert set(small) <= set(large)
    assert not np.array_equal(small, subsample_indices(labels, fraction=0.05, seed=5))
    assert np.bincount(labels[subsample_indices(labels, per_class=20)]).tolist() == [20, 20, 7]


def test_train_fraction_trains_on_fewer_images_with_the_same_val_and_test(tmp_path, small_npz):
    from tltf.data import load_splits, peek_data

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(small_npz),
                                                            "image_size": 32, "train_fraction": 0.25}))
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 64, 64)
    assert "train subsampled from 96" in splits.summary()
    assert peek_data(recipe.data).train_count == 24 == subsample_count([48, 48], recipe.data)
    other_seed = load_recipe(write_recipe(tmp_path / "s.yaml", {"source": "npz", "path": str(small_npz),
                                                                "image_size": 32, "train_fraction": 0.25},
                                          train={"seed": 99}))
    # The training seed does not change which images train.
    np.testing.assert_array_equal(load_splits(other_seed.data, seed=99).train.images, splits.train.images)


def test_subsample_settings_are_checked(tmp_path, small_npz):
    from tltf.errors import RecipeError

    with pytest.raises(RecipeError, match="train_fraction or train_per_class"):
        load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(small_npz),
                                                       "train_fraction": 0.5, "train_per_class": 3}))
    with pytest.raises(RecipeError, match="feature_extraction"):
        load_recipe(write_recipe(tmp_path / "f.yaml", {"source": "npz", "path": str(small_npz)},
                                 model={"weights": None}, train={"strategy": "feature_extraction"}))
