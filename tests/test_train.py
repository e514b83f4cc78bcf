import json
import math
import re

import keras
import numpy as np
import pytest
import yaml
from conftest import images_seen, separable_images, write_recipe
from sklearn.metrics import roc_auc_score

import tltf
from tltf.assemble import assemble_training, model_from_recipe
from tltf.data.sources import load_splits
from tltf.errors import TltfError
from tltf.models import backbone_of
from tltf.recipe import load_recipe, validate_recipe
from tltf.task import Task
from tltf.train.phases import Phase, budget_epochs, budget_text, plan_phases
from tltf.train.schedules import PhaseSchedule
from tltf.train.trainer import Trainer


def train_section(**train):
    """What `tltf.train` reads of a recipe's `train` section with these settings (its `TrainingSpec`)."""
    return validate_recipe({"data": {"source": "npz", "path": "x"}, "train": train}).train.spec()


def test_strategies_compile_to_phases():
    steps = 10
    assert plan_phases(train_section(strategy="feature_extraction", epochs=4, lr=1e-3), steps) == [
        Phase("feature_extraction", 4, False, 1e-3)]
    assert plan_phases(train_section(strategy="fine_tune", epochs=5), steps) == [
        Phase("fine_tune", 5, True, 1e-4, layerwise=True)]
    assert plan_phases(train_section(strategy="warmup_then_finetune", epochs=10, head_warmup={"epochs": 3, "lr": 1e-2},
                                     schedule="cosine"), steps) == [
        Phase("head_warmup", 3, False, 1e-2, schedule="cosine"),
        Phase("fine_tune", 7, True, 1e-4, schedule="cosine", layerwise=True)]
    assert plan_phases(train_section(strategy="gradual_unfreeze", epochs=9, gradual={"every": 3, "start_epochs": 2}),
                       steps) == [
        Phase("gradual_unfreeze", 9, True, 1e-4, layerwise=True, unfreeze_every=3, unfreeze_start=2)]


def test_without_pretrained_weights_every_strategy_trains_the_whole_network_at_the_scratch_rate():
    for strategy in ("fine_tune", "warmup_then_finetune", "gradual_unfreeze"):
        assert plan_phases(train_section(strategy=strategy, epochs=6), 10, pretrained=False) == [
            Phase("fine_tune", 6, True, 1e-3, layerwise=True)]
    # An explicit rate is the user's.
    assert plan_phases(train_section(strategy="fine_tune", epochs=6, lr=5e-4), 10, pretrained=False)[0].lr == 5e-4


def test_unset_learning_rates_default_by_what_the_phase_trains():
    assert plan_phases(train_section(strategy="feature_extraction", epochs=3), 10)[0].lr == 1e-3  # a new head
    assert plan_phases(train_section(strategy="fine_tune", epochs=3), 10)[0].lr == 1e-4  # a pretrained backbone
    warmup, tune = plan_phases(train_section(strategy="warmup_then_finetune", epochs=5), 10)
    assert (warmup.lr, tune.lr) == (1e-3, 1e-4)


@pytest.mark.parametrize("train_images, epochs", [(4708, 14), (1178, 53), (236, 100), (47, 100)])
def test_epochs_auto_buys_enough_optimizer_steps_and_stops_at_max_epochs(train_images, epochs):
    steps_per_epoch = math.ceil(train_images / 64)
    train = train_section(strategy="warmup_then_finetune", batch_size=64)  # epochs auto, min_steps 1000
    phases = plan_phases(train, steps_per_epoch)
    assert sum(p.epochs for p in phases) == epochs
    assert budget_epochs(train, steps_per_epoch) * steps_per_epoch >= min(1000, 100 * steps_per_epoch)
    text = budget_text(train, steps_per_epoch)
    assert text.startswith(f"{epochs} epochs × {steps_per_epoch} step{'s' if steps_per_epoch > 1 else ''} = ")
    assert ("capped at train.max_epochs=100" in text) == (epochs * steps_per_epoch < 1000)


def test_epochs_auto_keeps_a_fine_tuning_epoch_after_the_warmup():
    train = train_section(strategy="warmup_then_finetune", min_steps=10, head_warmup={"epochs": 3})
    assert [p.epochs for p in plan_phases(train, 100)] == [3, 1]
    assert [p.epochs for p in plan_phases(train, 100, pretrained=False)] == [1]


def test_phase_schedule_follows_each_phase():
    schedule = PhaseSchedule([
        {"steps": 10, "lr": 1e-2},
        {"steps": 20, "lr": 1e-3, "warmup_steps": 4, "decay": "cosine"},
    ])
    rate = lambda step: float(schedule(step))  # noqa: E731
    assert rate(0) == pytest.approx(1e-2) and rate(9) == pytest.approx(1e-2)
    assert rate(10) == pytest.approx(1e-3 / 4) and rate(13) == pytest.approx(1e-3)
    assert rate(14) == pytest.approx(1e-3)
    assert rate(10 + 4 + 8) == pytest.approx(0.5 * 1e-3 * (1 + math.cos(math.pi * 0.5)), rel=1e-5)
    assert rate(29) == pytest.approx(0.5 * 1e-3 * (1 + math.cos(math.pi * 15 / 16)), rel=1e-4)
    assert rate(500) == pytest.approx(0.0, abs=1e-12)  # stays at the end of the last phase
    again = PhaseSchedule.from_config(schedule.get_config())
    assert [float(again(s)) for s in (0, 12, 25)] == [rate(0), rate(12), rate(25)]
    assert schedule.boundaries() == [0, 10, 30]


def tiny_recipe(tmp_path, npz_path, **train):
    path = write_recipe(tmp_path / "tiny.yaml", {"source": "npz", "path": str(npz_path)}, train=train)
    return load_recipe(path)


def prepared_plan(recipe):
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    model = model_from_recipe(recipe, Task(splits.class_names))
    return assemble_training(recipe, model, splits, verbose=0), model, splits


class Recorder(keras.callbacks.Callback):
    """Snapshots of the optimizer and the weights at each fit's start and end."""

    def __init__(self, tltf_model):
        super().__init__()
        self.tltf_model = tltf_model
        self.events = []

    def _snapshot(self, when):
        optimizer = self.model.optimizer
        momentum = [v.numpy().copy() for v in optimizer.variables if v.path.endswith("logit_kernel_momentum")]
        backbone = [w.copy() for w in backbone_of(self.tltf_model).get_weights()]
        self.events.append({"when": when, "model": self.model.name, "iterations": int(optimizer.iterations.numpy()),
                            "momentum": momentum[0], "backbone": backbone})

    def on_train_begin(self, logs=None):
        self._snapshot("begin")

    def on_train_end(self, logs=None):
        self._snapshot("end")


def test_warmup_then_finetune_recompiles_and_keeps_head_slots(tmp_path, npz_path):
    recipe = tiny_recipe(tmp_path, npz_path, strategy="warmup_then_finetune", epochs=3, head_warmup={"epochs": 1})
    plan, model, splits = prepared_plan(recipe)
    recorder = Recorder(model)
    Trainer(verbose=0, callbacks=[recorder]).run(plan, tmp_path)
    warm_begin, warm_end, tune_begin, tune_end = recorder.events

    # Warm-up trained the head on cached features; the switch recompiled the full model with the same optimizer.
    assert (warm_end["model"], tune_begin["model"]) == ("head_on_features", model.name)
    assert model.optimizer is plan.optimizer
    # The head's Adam moments and the step count survive the switch.
    assert np.any(warm_end["momentum"] != 0)
    assert np.array_equal(warm_end["momentum"], tune_begin["momentum"])
    assert warm_end["iterations"] == tune_begin["iterations"] == plan.steps_per_epoch
    assert tune_end["iterations"] == 3 * plan.steps_per_epoch
    # Frozen during warm-up (bit-identical), trained after the switch.
    assert all(np.array_equal(a, b) for a, b in zip(warm_begin["backbone"], warm_end["backbone"]))
    assert not all(np.array_equal(a, b) for a, b in zip(tune_begin["backbone"], tune_end["backbone"]))


@pytest.mark.parametrize("feature_cache, passes", [(True, 1), (False, 3)])
def test_feature_cache_runs_the_backbone_once(tmp_path, npz_path, feature_cache, passes):
    recipe = tiny_recipe(tmp_path, npz_path, strategy="feature_extraction", epochs=3, feature_cache=feature_cache)
    plan, model, splits = prepared_plan(recipe)
    before = images_seen(model)
    counted = []  # read at the end of fit: restoring the best epoch's weights rewinds the counter too
    at_end = keras.callbacks.LambdaCallback(on_train_end=lambda logs: counted.append(images_seen(model)))
    Trainer(verbose=0, callbacks=[at_end]).run(plan, tmp_path)
    assert counted[-1] - before == passes * (len(splits.train) + len(splits.val))
    assert plan.phases[0].feature_cache is feature_cache
    saved = keras.models.load_model(tmp_path / "model.keras")
    assert saved.get_layer("backbone") is not None  # the deliverable is the full model


def test_a_head_on_features_runs_several_steps_a_call_with_the_weights_of_one_step_a_call(tmp_path, npz_path):
    """Several steps per call into TensorFlow (fast heads) change nothing but speed; with checkpoint_every the
    resume counts single steps, so it is one step a call. 22 steps an epoch: a call of 16, then one of 6."""
    weights = {}
    for checkpoint_every in (None, 1000):
        recipe = tiny_recipe(tmp_path, npz_path, strategy="feature_extraction", epochs=2, batch_size=3,
                             checkpoint_every=checkpoint_every)
        keras.utils.set_random_seed(0)
        plan, model, _ = prepared_plan(recipe)
        Trainer(verbose=0).run(plan, tmp_path / str(checkpoint_every))
        fitted = plan.phases[0].fit_target.model
        assert fitted.steps_per_execution == (16 if checkpoint_every is None else 1)
        weights[checkpoint_every] = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(*weights.values()))


def test_augmentation_disables_the_feature_cache(tmp_path, npz_path):
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                        train={"strategy": "feature_extraction"}, augment={"flip": "horizontal"})
    plan, _, _ = prepared_plan(load_recipe(path))
    assert not plan.phases[0].feature_cache


def test_fit_writes_a_complete_run_and_its_auc_matches_sklearn(tmp_path, npz_path):
    recipe = tiny_recipe(tmp_path, npz_path, strategy="warmup_then_finetune", epochs=3, head_warmup={"epochs": 1})
    result = tltf.fit(recipe, tmp_path / "run", verbose=0)
    run = tmp_path / "run"
    for name in ("recipe.yaml", "history.csv", "model.keras", "metrics.json", "report.md", "roc.png",
                 "learning_curves.png", "confusion_matrix.png", "logs"):
        assert (run / name).exists(), name
    assert not (tmp_path / "run.partial").exists()
    assert validate_recipe(yaml.safe_load((run / "recipe.yaml").read_text())).model.bn == "train"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert len(metrics["test"]["auc_ci"]) == 2 and 0 <= metrics["test"]["accuracy"] <= 1
    model = keras.models.load_model(run / "model.keras")
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    probabilities = model.predict(splits.test.images.astype("float32"), verbose=0)[:, 0]
    assert metrics["test"]["auc"] == pytest.approx(roc_auc_score(splits.test.labels, probabilities), abs=1e-9)
    assert metrics["test"]["auc"] > 0.9  # the classes differ in brightness: a working pipeline learns them
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 3
    labels, scores = tltf.evaluate.read_predictions(run, "test")  # predictions.csv: the same images and scores
    assert np.array_equal(labels, splits.test.labels) and np.abs(scores - probabilities).max() < 1e-6
    assert tltf.evaluate.read_predictions(run, "val")[0].tolist() == splits.val.labels.tolist()
    report = (run / "report.md").read_text()
    confusion = metrics["test"]["confusion"]
    # one decision everywhere: the confusion matrix counts the decisions at the threshold chosen on val
    threshold = metrics["val"]["threshold"]
    assert metrics["test"]["threshold"] == threshold and threshold != 0.5
    decided = (probabilities >= threshold).astype(int)
    assert confusion == [[int(((splits.test.labels == t) & (decided == p)).sum()) for p in (0, 1)] for t in (0, 1)]
    assert f"threshold {threshold:.3f}, chosen on val" in report
    first_row = rf"class_0 +{confusion[0][0]} +{confusion[0][1]}\n"
    assert re.search(r"true \\ predicted +class_0 +class_1\n" + first_row, report)
    assert "| head_warmup | 1 | 0.001 | frozen |" in report and "| no (the backbone trains) |" in report


def test_fit_multiclass(tmp_path):
    arrays = {}
    for split, n, seed in (("train", 90, 0), ("val", 30, 1)):
        images, labels = separable_images(n, 16, num_classes=3, seed=seed)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez(tmp_path / "three.npz", **arrays)
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(tmp_path / "three.npz")},
                        train={"epochs": 2}, model={"head": "mlp", "hidden_units": [8]})
    result = tltf.fit(load_recipe(path), tmp_path / "run", verbose=0)
    assert result.metrics["test"]["split"] == "val (no test split)"
    assert set(result.metrics["test"]["per_class_auc"]) == {"class_0", "class_1", "class_2"}
    assert np.array(result.metrics["test"]["confusion"]).shape == (3, 3)
    val, test = result.metrics["val"], result.metrics["test"]
    for key in ("n", "auc", "auc_ci", "accuracy", "confusion", "per_class_auc"):
        assert test[key] == val[key], key  # no test split: the test entry is val's, and says so


def test_class_weight_auto_reaches_fit(tmp_path):
    """On images that carry no signal the head can only learn the prior: 1 in 4 unweighted, 1 in 2 balanced."""
    labels = (np.arange(640) % 4 == 0).astype(np.int64)
    blank = np.zeros((640, 16, 16), np.uint8)
    np.savez(tmp_path / "blank.npz", train_images=blank, train_labels=labels, val_images=blank[:64],
             val_labels=labels[:64])
    mean_probability = {}
    for weighting in ("none", "auto"):
        path = write_recipe(tmp_path / f"{weighting}.yaml",
                            {"source": "npz", "path": str(tmp_path / "blank.npz"), "class_weight": weighting},
                            train={"strategy": "feature_extraction", "epochs": 1, "lr": 0.1})
        tltf.fit(load_recipe(path), tmp_path / weighting, verbose=0)
        model = keras.models.load_model(tmp_path / weighting / "model.keras")
        mean_probability[weighting] = float(model.predict(np.zeros((4, 16, 16, 3), "float32"), verbose=0).mean())
    assert mean_probability["none"] == pytest.approx(0.25, abs=0.08)
    assert mean_probability["auto"] == pytest.approx(0.5, abs=0.08)


class RaiseAtSecondEpoch(keras.callbacks.Callback):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise self.error


def test_a_user_error_during_a_run_removes_the_partial_folder(tmp_path, npz_path):
    recipe = tiny_recipe(tmp_path, npz_path)
    with pytest.raises(TltfError, match="bad input"):
        tltf.fit(recipe, tmp_path / "run", verbose=0,
                 callbacks=[RaiseAtSecondEpoch(TltfError("bad input"))])
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


def test_a_crash_keeps_the_partial_folder_and_says_where(tmp_path, npz_path, capsys):
    recipe = tiny_recipe(tmp_path, npz_path)
    with pytest.raises(RuntimeError, match="power cut"):
        tltf.fit(recipe, tmp_path / "run", verbose=0,
                 callbacks=[RaiseAtSecondEpoch(RuntimeError("power cut"))])
    partial = tmp_path / "run.partial"
    assert not (tmp_path / "run").exists()
    assert (partial / "recipe.yaml").is_file() and (partial / "model.keras").is_file()  # the first epoch's best
    assert f"what it had written is kept in {partial}" in capsys.readouterr().err


def test_early_stopping_moves_to_the_next_phase_on_schedule(tmp_path, npz_path):
    recipe = tiny_recipe(tmp_path, npz_path, strategy="warmup_then_finetune", epochs=8, head_warmup={"epochs": 5},
                         early_stopping={"patience": 1, "min_delta": 0.5})
    plan, model, _ = prepared_plan(recipe)
    recorder = Recorder(model)
    Trainer(verbose=0, callbacks=[recorder]).run(plan, tmp_path)
    warm_end, tune_begin = recorder.events[1], recorder.events[2]
    assert warm_end["iterations"] < 5 * plan.steps_per_epoch  # stopped early
    assert tune_begin["iterations"] == 5 * plan.steps_per_epoch  # fine-tuning starts at its own rate


def test_best_checkpoint_between_saves_keeps_the_best_in_memory_and_writes_it_when_the_fit_ends(tmp_path):
    from tltf.callbacks import BestModelCheckpoint

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    scores, weights, on_disk = [0.6, 0.5, 0.8, 0.7], [], []
    path = tmp_path / "best.keras"
    score = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(score=scores[epoch]))
    best = BestModelCheckpoint(path, monitor="score", min_seconds_between_saves=3600)
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: (
        weights.append(model.get_weights()), on_disk.append(keras.models.load_model(path).get_weights())))
    model.fit(x, (x[:, 0] > 0).astype("float32"), epochs=4, verbose=0, callbacks=[score, best, record])
    same = lambda a, b: all(np.array_equal(u, v) for u, v in zip(a, b))  # noqa: E731
    assert best.best_epoch == 2 and same(best.best_weights, weights[2])
    assert all(same(saved, weights[0]) for saved in on_disk)  # epoch 2's improvement came too soon to write
    assert same(keras.models.load_model(path).get_weights(), weights[2])  # written when fit ended
    assert same(model.get_weights(), weights[3]) and not same(weights[3], weights[2])  # the model kept its own


@pytest.mark.parametrize("trusted,expected_epoch,chosen_by", [
    ([0, 1, 1, 0], 2, "risk"),    # the lowest risk among the epochs it can judge (epoch 3's 0.1 is not one)
    ([0, 0, 0, 0], 1, "score"),   # none: the best fallback score, epoch 1
])
def test_best_checkpoint_ranks_only_eligible_epochs_and_falls_back_while_there_are_none(
        tmp_path, trusted, expected_epoch, chosen_by):
    from tltf.callbacks import BestModelCheckpoint

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    risks, scores, weights = [0.5, 0.4, 0.3, 0.1], [0.6, 0.9, 0.7, 0.8], []
    logs_of = lambda epoch, logs: logs.update(risk=risks[epoch], score=scores[epoch], ok=float(trusted[epoch]))  # noqa: E731
    best = BestModelCheckpoint(tmp_path / "best.keras", monitor="risk", mode="min", eligible="ok",
                               fallback_monitor="score")
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(model.get_weights()))
    model.fit(x, (x[:, 0] > 0).astype("float32"), epochs=4, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=logs_of), best, record])
    same = lambda a, b: all(np.array_equal(u, v) for u, v in zip(a, b))  # noqa: E731
    assert best.best_epoch == expected_epoch and best.chosen_by == chosen_by
    assert same(best.best_weights, weights[expected_epoch])
    assert same(keras.models.load_model(tmp_path / "best.keras").get_weights(), weights[expected_epoch])
    # The trackers survive a run's saved state: a fresh checkpoint given it chooses the same.
    meta, arrays = best.get_state()
    again = BestModelCheckpoint(tmp_path / "again.keras", monitor="risk", mode="min", eligible="ok",
                                fallback_monitor="score")
    again.set_state(json.loads(json.dumps(meta)), arrays)
    assert (again.best_epoch, again.chosen_by, again.best) == (best.best_epoch, best.chosen_by, best.best)
    assert same(again.best_weights, best.best_weights)
