"""The learning-rate finder: the sweep, the suggestion, and no side effects."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import separable_images, tiny_pretrained_weights, write_recipe

import tltf
from tltf.callbacks import LearningRateFinder
from tltf.cli.main import main
from tltf.train import learning_rate_rules


def batches(n=64):
    import tensorflow as tf

    images, labels = separable_images(n, 16, channels=3)
    return tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels[:, None].astype("float32"))).batch(8)


def test_the_sweep_leaves_model_and_optimizer_bit_for_bit_as_they_were():
    model = tltf.build_model("tiny_test", image_size=16, weights=None, dropout=0.3)  # BatchNorm trains, dropout
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="binary_crossentropy")
    model.fit(batches(), epochs=1, verbose=0, shuffle=False)  # slots and step count that are not zero
    model_before = [v.numpy().copy() for v in model.variables]
    optimizer_before = [v.numpy().copy() for v in model.optimizer.variables]
    finder = LearningRateFinder(min_lr=1e-5, max_lr=1.0, steps=20)
    model.fit(batches().repeat(), steps_per_epoch=20, epochs=1, callbacks=[finder], verbose=0, shuffle=False)
    assert len(finder.lrs) >= 10
    for before, variable in zip(model_before, model.variables):
        assert np.array_equal(before, variable.numpy()), variable.path
    for before, variable in zip(optimizer_before, model.optimizer.variables):
        assert np.array_equal(before, variable.numpy()), variable.path
    # One rate per step, exponentially from min_lr to max_lr.
    np.testing.assert_allclose(finder.lrs, [1e-5 * (1e5) ** (i / 19) for i in range(len(finder.lrs))], rtol=1e-6)


def test_a_diverging_loss_stops_the_sweep_early():
    model = tltf.build_model("tiny_test", image_size=16, weights=None, dropout=0.0)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="binary_crossentropy")
    finder = LearningRateFinder(min_lr=1e-3, max_lr=1e6, steps=60)
    model.fit(batches().repeat(), steps_per_epoch=60, epochs=1, callbacks=[finder], verbose=0, shuffle=False)
    assert len(finder.lrs) < 60
    last = finder.losses[-1]
    assert not np.isfinite(last) or last > 4 * min(finder.losses)


def a_sweep_curve():
    """Flat, then falling (with a bump) from step 20 to 45, fastest at steps 24-27, then exploding."""
    lrs = np.geomspace(1e-6, 1.0, 60)
    losses = np.r_[np.full(20, 1.0), np.linspace(1.0, 0.2, 26)[1:], np.linspace(0.3, 5.0, 15)]
    losses[24:28] -= [0.1, 0.2, 0.3, 0.4]
    losses[28:45] -= 0.4 * np.linspace(1, 0, 17)
    losses[30] += 0.05
    return lrs, losses


def test_the_valley_rule_sits_half_way_along_the_longest_descent():
    lrs, losses = a_sweep_curve()
    suggested = learning_rate_rules.valley(lrs, losses)
    assert suggested == pytest.approx(lrs[(19 + 44) // 2])  # half way from the descent's first step to its last
    assert learning_rate_rules.valley(lrs[:10], np.linspace(1.0, 2.0, 10)) is None  # it never fell


def test_the_minimum_and_steepest_rules_read_the_curve_where_they_say():
    lrs, losses = a_sweep_curve()
    assert learning_rate_rules.minimum(lrs, losses) == pytest.approx(lrs[44] / 10)  # a tenth of the lowest point's
    steepest = learning_rate_rules.steepest(lrs, losses)
    assert lrs[22] <= steepest <= lrs[29]  # the window of 6 steps with the largest fall per decade
    assert set(learning_rate_rules.suggest_all(lrs, losses)) == set(learning_rate_rules.names())
    # A model that already fits: flat (noisy) for 40 steps, then rising; the edge is the last step within 5% of
    # the lowest loss, and the suggestion a third of its rate, whatever the noise put the lowest point.
    flat = np.r_[0.40 + 0.005 * np.sin(np.arange(40)), np.linspace(0.42, 2.0, 20)]
    assert learning_rate_rules.edge(lrs, flat) == pytest.approx(lrs[39] / 3)
    assert learning_rate_rules.steepest(lrs[:10], np.linspace(1.0, 2.0, 10)) is None
    with pytest.raises(ValueError, match="unknown learning-rate rule 'nope'; rules: edge, minimum, steepest, valley"):
        learning_rate_rules.get("nope")


def test_a_schedule_is_refused():
    model = tltf.build_model("tiny_test", image_size=16, weights=None)
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy")
    with pytest.raises(ValueError, match="not a schedule"):
        model.fit(batches(), epochs=1, callbacks=[LearningRateFinder()], verbose=0)


def test_lr_find_command_writes_its_two_files_and_nothing_else(tmp_path, npz_path, monkeypatch):
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                          model={"weights": tiny_pretrained_weights()},
                          train={"strategy": "warmup_then_finetune", "epochs": 3, "head_warmup": {"epochs": 1}})
    monkeypatch.chdir(tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    result = CliRunner().invoke(main, ["lr-find", str(recipe), "--out", "sweep", "--steps", "30", "--max-lr", "10"])
    assert result.exit_code == 0, result.output
    assert {p for p in tmp_path.rglob("*")} - before == {tmp_path / "sweep", tmp_path / "sweep" / "lr_find.png",
                                                         tmp_path / "sweep" / "lr_find.json"}
    written = json.loads((tmp_path / "sweep" / "lr_find.json").read_text())
    assert set(written) == {"suggested_lr", "rule", "rule_description", "suggestions", "lrs", "losses"}
    assert len(written["lrs"]) == len(written["losses"]) and set(written["suggestions"]) == set(
        learning_rate_rules.names())
    assert written["suggested_lr"] == written["suggestions"][written["rule"]]
    assert written["rule"] == "edge"  # auto: the fine-tuning phase starts where the warm-up left the model
    assert f"suggested learning rate {written['suggested_lr']:.3g} (rule {written['rule']}: " in result.output
    assert "other rules: " in result.output
    assert "phase fine_tune" in result.output
    wrong = CliRunner().invoke(main, ["lr-find", str(recipe), "--phase", "nope"])
    assert wrong.exit_code == 2 and "--phase nope: this recipe's phases are head_warmup, fine_tune" in wrong.stderr


def test_each_recorded_loss_is_its_own_batch_loss_not_the_running_mean():
    model = tltf.build_model("tiny_test", image_size=16, weights=tiny_pretrained_weights(), dropout=0.0)  # BN frozen
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="binary_crossentropy")
    expected = [model.evaluate(images, labels, verbose=0) for images, labels in batches()]
    # Rates so small that nothing moves, and no smoothing: each entry is that batch's loss.
    finder = LearningRateFinder(min_lr=1e-12, max_lr=2e-12, steps=8, smoothing=0.0)
    model.fit(batches(), epochs=1, callbacks=[finder], verbose=0, shuffle=False)
    np.testing.assert_allclose(finder.losses, expected, rtol=1e-4)


def test_a_fine_tuning_sweep_starts_from_the_warmed_up_head_as_in_fit(tmp_path, npz_path):
    """The sweep of the last phase first trains the warm-up, as `tltf fit` would: its first loss is the warmed-up
    model's, well below the random head's that the warm-up phase's own sweep starts from."""
    from tltf.lr_find import find_learning_rate

    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                          model={"weights": tiny_pretrained_weights(), "bn": "frozen"},  # as the shipped recipes
                          train={"strategy": "warmup_then_finetune", "epochs": 32,
                                 "head_warmup": {"epochs": 30, "lr": 0.1}})
    loaded = tltf.load_recipe(recipe)
    # Rates too small to move anything: the first loss (bias-corrected, so unsmoothed) is the starting model's.
    fine_tune = find_learning_rate(loaded, "fine_tune", steps=3, min_lr=1e-12, max_lr=2e-12)
    warm_up = find_learning_rate(loaded, "head_warmup", steps=3, min_lr=1e-12, max_lr=2e-12)
    print("first losses: fine_tune", fine_tune["losses"][:2], "head_warmup", warm_up["losses"][:2])
    assert fine_tune["losses"][0] < 0.25 * warm_up["losses"][0]
    assert (fine_tune["rule"], warm_up["rule"]) == ("edge", "steepest")  # auto: by how the phase starts


def test_a_head_on_cached_features_is_swept_one_rate_per_step(tmp_path, npz_path):
    """The feature cache runs many steps per call into TensorFlow; the sweep needs one (it sets each step's rate
    and reads each step's loss), and a model compiled otherwise is refused."""
    from tltf.lr_find import find_learning_rate

    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                          model={"weights": tiny_pretrained_weights(), "bn": "frozen"},
                          train={"strategy": "feature_extraction", "epochs": 3})
    result = find_learning_rate(tltf.load_recipe(recipe), steps=30, min_lr=1e-5, max_lr=1e-1)
    assert len(result["lrs"]) >= 20
    np.testing.assert_allclose(result["lrs"], [1e-5 * 1e4 ** (i / 29) for i in range(len(result["lrs"]))], rtol=1e-6)
    model = tltf.build_model("tiny_test", image_size=16, weights=None)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", steps_per_execution=4)
    with pytest.raises(ValueError, match="steps_per_execution=1, not 4"):
        model.fit(batches(), epochs=1, callbacks=[LearningRateFinder()], verbose=0)
