"""The frozen-prefix cache: blocks that stay frozen through a phase are computed once, and training is unchanged."""

import dataclasses

import keras
import numpy as np
import pytest
from conftest import images_seen, write_recipe

from tltf.assemble import assemble_training, model_from_recipe
from tltf.data.sources import load_splits
from tltf.recipe import load_recipe
from tltf.task import Task
from tltf.train.frozen_prefix import AboveFrozenPrefix, find_cut
from tltf.train.trainer import Trainer

# Three epochs, unfreezing every two after one head-only epoch: block2 trains from epoch 2; the stem (the tests'
# image counter) and block1 never.
GRADUAL = {"strategy": "gradual_unfreeze", "epochs": 3, "gradual": {"every": 2, "start_epochs": 1}}


def gradual_plan(tmp_path, npz_path, name="tiny", augment=None, **train):
    sections = {"augment": augment} if augment else {}
    path = write_recipe(tmp_path / f"{name}.yaml", {"source": "npz", "path": str(npz_path)},
                        train={**GRADUAL, **train}, **sections)
    recipe = load_recipe(path)
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    keras.utils.set_random_seed(0)
    model = model_from_recipe(recipe, Task(splits.class_names))
    return assemble_training(recipe, model, splits, verbose=0), model, splits


def test_blocks_frozen_all_phase_are_computed_once_and_train_the_same_weights(tmp_path, npz_path):
    weights, passes = {}, {}
    for cache in (True, False):
        plan, model, splits = gradual_plan(tmp_path, npz_path, feature_cache=cache, deterministic=True)
        target = plan.phases[0].fit_target
        assert isinstance(target, AboveFrozenPrefix) is cache
        before = images_seen(model)
        counted = []  # read at the end of fit: restoring the best epoch's weights rewinds the counter too
        at_end = keras.callbacks.LambdaCallback(on_train_end=lambda logs: counted.append(images_seen(model)))
        Trainer(verbose=0, callbacks=[at_end]).run(plan, tmp_path / str(cache), deliver=False)
        passes[cache] = (counted[-1] - before) / (len(splits.train) + len(splits.val))
        weights[cache] = model.get_weights()
    assert passes == {True: 1, False: 3}
    block1 = [w for w, v in zip(weights[True], model.weights) if v.path.startswith("block1_conv")]
    assert block1 and all(np.array_equal(a, b) for a, b in zip(block1, [
        w for w, v in zip(weights[False], model.weights) if v.path.startswith("block1_conv")]))
    # The blocks above and the head trained alike, to float rounding (the prefix ran batched differently).
    for cached, uncached, variable in zip(weights[True], weights[False], model.weights):
        if variable.path.startswith("count_images"):
            continue  # the test's image counter
        np.testing.assert_allclose(cached, uncached, rtol=1e-4, atol=1e-5, err_msg=variable.path)
    trained = [v.path for v, a, b in zip(model.weights, weights[True], gradual_plan(
        tmp_path, npz_path, name="fresh")[1].get_weights()) if not np.array_equal(a, b)]
    assert any(path.startswith("block2_conv") for path in trained)


def test_the_plan_names_the_cached_blocks_and_why_not_when_it_cannot(tmp_path, npz_path):
    plan, _, _ = gradual_plan(tmp_path, npz_path)
    assert plan.summary_rows()[0][-1] == "stem–block1 (2 units) (frozen all phase)"
    plan, _, _ = gradual_plan(tmp_path, npz_path, name="augmented", augment={"flip": "horizontal"})
    assert plan.summary_rows()[0][-1] == ("no (the backbone trains above stem–block1 (2 units) frozen all phase, "
                                         "not cached: augmentation is on)")
    plan, _, _ = gradual_plan(tmp_path, npz_path, name="all", epochs=4, gradual={"every": 1, "start_epochs": 1})
    assert plan.summary_rows()[0][-1] == "no (the backbone trains)"


@pytest.mark.parametrize("last_layer, cut", [(None, True), ("block_5_project_BN", False),
                                               ("block_5_expand_relu", False)])
def test_a_cut_is_the_one_tensor_between_the_frozen_blocks_and_the_rest(last_layer, cut):
    """MobileNetV2's stem to block_5 end in block_5's add, the one tensor the rest reads; cut inside block_5 (a
    unit map that ended there), the add still needs block_4's output from below the cut."""
    from tltf.models import build_model
    from tltf.models.anatomy import backbone_network
    from tltf.models.blocks import BlockMap

    model = build_model("mobilenet_v2", alpha=0.35, weights=None, image_size=32)
    block_map = BlockMap.of(model, "block")
    units = block_map.names[:block_map.names.index("block_5") + 1]
    if last_layer:
        index = block_map.names.index("block_5")
        layers = block_map.units[index].layers
        block_map.units[index] = dataclasses.replace(block_map.units[index],
                                                     layers=layers[:layers.index(last_layer) + 1])
    found = find_cut(model, block_map, units, images=10)
    if cut:
        assert found.boundary is backbone_network(model).get_layer("block_5_add").output
        assert found.text() == "stem–block_5 (7 units)"
    else:
        assert found == "more than one tensor runs from its frozen blocks to the rest"


def test_a_cache_too_large_for_memory_is_not_made():
    from tltf.models import build_model
    from tltf.models.blocks import BlockMap

    model = build_model("mobilenet_v2", alpha=0.35, weights=None, image_size=32)
    block_map = BlockMap.of(model, "block")
    # block_5's output is 4 x 4 x 16 floats: 1 KB an image.
    assert find_cut(model, block_map, block_map.names[:7], images=3_000_000).startswith(
        "their output would take 2.")


class Interrupt(Exception):
    pass


def test_a_run_with_a_frozen_prefix_cache_continues_after_an_interruption_as_the_uninterrupted_run(
        tmp_path, npz_path):
    """Stopped at the start of its third epoch (after block2 was unfrozen), then continued from the saved state by
    a new plan, as `tltf fit` would after a kill: the same weights as the run never stopped."""
    reference, _, _ = gradual_plan(tmp_path, npz_path, deterministic=True)
    Trainer(verbose=0).run(reference, tmp_path / "reference", deliver=False)

    def interrupt(epoch, logs):
        if epoch == 2:
            raise Interrupt

    stopped, _, _ = gradual_plan(tmp_path, npz_path, deterministic=True)
    with pytest.raises(Interrupt):
        Trainer(verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=interrupt)]).run(
            stopped, tmp_path / "stopped", deliver=False)
    continued, model, _ = gradual_plan(tmp_path, npz_path, deterministic=True)
    epochs = []  # a run started over would give the same weights too: it must run only the third epoch
    Trainer(verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(
        epoch))]).run(continued, tmp_path / "stopped", deliver=False)
    assert epochs == [2]
    for a, b, variable in zip(model.get_weights(), reference.model.get_weights(), model.weights):
        if not variable.path.startswith("count_images"):
            np.testing.assert_array_equal(a, b, err_msg=variable.path)


@pytest.mark.parametrize("cache", [True, False])
def test_a_gradual_run_that_never_unfreezes_its_lowest_blocks_delivers_a_model_that_reloads(tmp_path, npz_path,
                                                                                             cache):
    """Its optimizer was built for every unit: the saved model must reload with them all trainable (setup.cfg makes
    Keras' "Skipping variable loading" warning an error). Before the unfreezing callback restored them, block1
    stayed frozen in model.keras, cache or not."""
    import tltf
    from tltf.evaluate.compare import read_predictions

    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                        train={**GRADUAL, "feature_cache": cache})
    result = tltf.fit(load_recipe(path), tmp_path / "run", verbose=0)
    assert (result.plan[0][-1] == "stem–block1 (2 units) (frozen all phase)") is cache
    saved = keras.models.load_model(tmp_path / "run" / "model.keras")
    images = load_splits(load_recipe(path).data, seed=1).test.images
    _, scores = read_predictions(tmp_path / "run")
    np.testing.assert_allclose(saved.predict(images, verbose=0)[:, 0], scores, atol=1e-5)
