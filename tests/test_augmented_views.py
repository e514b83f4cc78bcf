"""train.augmented_views: what stays frozen (a backbone, a gradual phase's lowest blocks), computed once for K
augmented views, one view per image per epoch."""

import keras
import numpy as np
import pytest
from conftest import images_seen, write_recipe

from tltf.assemble import assemble_training, model_from_recipe
from tltf.data.sources import load_splits
from tltf.errors import RecipeError
from tltf.recipe import load_recipe
from tltf.task import Task
from tltf.train import augmented_views
from tltf.train.augmented_views import AboveFrozenPrefixOnViews, HeadOnAugmentedViews
from tltf.train.trainer import Trainer

AUGMENT = {"flip": "horizontal", "rotation": 0.2}
# As tests/test_frozen_prefix.py: block2 trains from epoch 2; the stem (the image counter) and block1 never.
GRADUAL = {"strategy": "gradual_unfreeze", "epochs": 3, "gradual": {"every": 2, "start_epochs": 1}}


class Interrupt(Exception):
    pass


def views_plan(tmp_path, npz_path, name="tiny", views=3, **train):
    path = write_recipe(tmp_path / f"{name}.yaml", {"source": "npz", "path": str(npz_path)}, augment=AUGMENT,
                        train={"strategy": "feature_extraction", "epochs": 3, "augmented_views": views,
                               "deterministic": True, **train})
    recipe = load_recipe(path)
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    keras.utils.set_random_seed(0)
    model = model_from_recipe(recipe, Task(splits.class_names))
    return assemble_training(recipe, model, splits, verbose=0), model, splits


def rows_of(dataset) -> np.ndarray:
    return np.concatenate([np.asarray(batch[0]) for batch in dataset])


def views_drawn(dataset, views: np.ndarray) -> dict:
    """`{image: view}` of one epoch of `dataset`, checking each image comes once, as one of its own views."""
    rows = rows_of(dataset).reshape(-1, *views.shape[2:])
    matches = [np.argwhere(np.all((views == row).reshape(*views.shape[:2], -1), axis=-1)) for row in rows]
    assert all(len(match) >= 1 for match in matches)
    assert sorted(int(match[0][0]) for match in matches) == list(range(len(views)))
    return {int(match[0][0]): int(match[0][1]) for match in matches}


def test_the_backbone_sees_each_image_once_per_view_and_each_epoch_draws_one_view_per_image(tmp_path, npz_path):
    plan, model, splits = views_plan(tmp_path, npz_path)
    target = plan.phases[0].fit_target
    assert isinstance(target, HeadOnAugmentedViews)
    before = images_seen(model)
    train_ds, _ = target.datasets()
    assert images_seen(model) - before == 3 * len(splits.train) + len(splits.val)
    views = target.view_outputs[0]  # [N, 3, D]
    assert not np.allclose(views[:, 0], views[:, 1])  # the views are augmented differently
    drawn = [views_drawn(train_ds, views) for _ in range(2)]  # two epochs
    assert drawn[0] != drawn[1] and len(set(drawn[0].values())) > 1  # drawn anew, not one view for all
    Trainer(verbose=0).run(plan, tmp_path / "run", deliver=False)
    assert images_seen(model) - before == 3 * len(splits.train) + len(splits.val)  # training ran on the cache


def test_blocks_a_gradual_phase_never_unfreezes_are_computed_once_per_view_and_the_rest_trains_on_them(
        tmp_path, npz_path):
    plan, model, splits = views_plan(tmp_path, npz_path, **GRADUAL)
    target = plan.phases[0].fit_target
    assert isinstance(target, AboveFrozenPrefixOnViews)
    assert plan.summary_rows()[0][-1] == ("stem–block1 (2 units) (frozen all phase), 3 augmented views "
                                         "(an approximation)")
    before = images_seen(model)
    train_ds, _ = target.datasets()
    assert images_seen(model) - before == 3 * len(splits.train) + len(splits.val)
    views = target.view_outputs[0]  # [N, 3, H, W, C]: block1's output
    assert views.shape[:2] == (len(splits.train), 3) and not np.allclose(views[:, 0], views[:, 1])
    drawn = [views_drawn(train_ds, views) for _ in range(2)]
    assert drawn[0] != drawn[1] and len(set(drawn[0].values())) > 1
    start = {v.path: v.numpy().copy() for v in model.weights}
    Trainer(verbose=0).run(plan, tmp_path / "run", deliver=False)
    assert images_seen(model) - before == 3 * len(splits.train) + len(splits.val)  # training ran on the cache
    moved = {v.path for v in model.weights if not np.array_equal(v.numpy(), start[v.path])}
    assert any(path.startswith("block2_conv") for path in moved)
    assert not any(path.startswith("block1_") for path in moved)


def test_the_plan_says_it_is_an_approximation_and_why_not_when_the_views_would_not_fit(tmp_path, npz_path,
                                                                                     monkeypatch):
    plan, _, _ = views_plan(tmp_path, npz_path)
    assert plan.summary_rows()[0][-1] == "3 augmented views (an approximation)"
    monkeypatch.setattr(augmented_views, "MAX_VIEW_BYTES", 100)
    monkeypatch.setattr("tltf.train.caching.MAX_VIEW_BYTES", 100)
    plan, _, _ = views_plan(tmp_path, npz_path, name="big")
    assert plan.summary_rows()[0][-1].startswith("no (augmentation is on; train.augmented_views: 3 would take ")
    plan, _, _ = views_plan(tmp_path, npz_path, name="off", views=None)
    assert plan.summary_rows()[0][-1] == "no (augmentation is on)"


def test_the_prefix_views_count_every_view_against_the_memory_limit(tmp_path, npz_path, monkeypatch):
    """block1's output for a 16 px image is 8 x 8 x 4 float32. A limit that holds one view of every train image
    and the val images caches one view, not three."""
    splits = load_splits(load_recipe(write_recipe(tmp_path / "data.yaml", {"source": "npz", "path": str(
        npz_path)})).data, seed=1)
    limit = (len(splits.train) + len(splits.val)) * 8 * 8 * 4 * 4
    monkeypatch.setattr("tltf.train.frozen_prefix.CACHE_LIMIT_BYTES", limit)
    plan, _, _ = views_plan(tmp_path, npz_path, name="one", views=1, **GRADUAL)
    assert isinstance(plan.phases[0].fit_target, AboveFrozenPrefixOnViews)
    plan, _, _ = views_plan(tmp_path, npz_path, name="three", views=3, **GRADUAL)
    assert plan.summary_rows()[0][-1].startswith(
        "no (the backbone trains above stem–block1 (2 units) frozen all phase, not cached: augmentation is on; "
        "3 augmented views: their output would take ")


@pytest.mark.parametrize("strategy", [{}, GRADUAL], ids=["frozen backbone", "frozen prefix"])
def test_an_interrupted_run_on_views_continues_as_the_uninterrupted_run(tmp_path, npz_path, strategy):
    reference, _, _ = views_plan(tmp_path, npz_path, **strategy)
    Trainer(verbose=0).run(reference, tmp_path / "reference", deliver=False)

    def interrupt(epoch, logs):
        if epoch == 2:
            raise Interrupt

    stopped, _, _ = views_plan(tmp_path, npz_path, **strategy)
    with pytest.raises(Interrupt):
        Trainer(verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=interrupt)]).run(
            stopped, tmp_path / "stopped", deliver=False)
    continued, model, _ = views_plan(tmp_path, npz_path, **strategy)
    epochs = []
    Trainer(verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(
        epoch))]).run(continued, tmp_path / "stopped", deliver=False)
    assert epochs == [2]
    for a, b, variable in zip(model.get_weights(), reference.model.get_weights(), model.weights):
        if not variable.path.startswith("count_images"):  # the continued run computed its views again
            np.testing.assert_array_equal(a, b, err_msg=variable.path)


def test_views_of_images_mixed_across_the_batch_are_refused_in_one_line(tmp_path, npz_path):
    path = write_recipe(tmp_path / "mix.yaml", {"source": "npz", "path": str(npz_path), "class_weight": "none"},
                        augment={"mixup": 0.2}, train={"strategy": "feature_extraction", "augmented_views": 2})
    with pytest.raises(RecipeError, match=r"train\.augmented_views: cannot cache views of augment\.mixup/cutmix"):
        load_recipe(path)
