"""train.stop: a run with epochs auto stops once its best epoch is the patience old, delivers that epoch, says
what it saved, and a run killed at the stop resumes to the same end."""

import json

import keras
import numpy as np
import pytest
from conftest import write_domain_pair, write_recipe

import tltf
from tltf.recipe import load_recipe

# 64 training images in batches of 16 (4 steps an epoch); min_steps 120 → 30 epochs planned. Separable images:
# validation AUC stops improving within a few epochs, so the run stops long before its budget.
STOPPING = {"strategy": "fine_tune", "epochs": "auto", "min_steps": 120, "lr": 1e-2, "deterministic": True,
            "stop": {"patience": 0.2, "min_patience_steps": 0}}


class WeightsEveryEpoch(keras.callbacks.Callback):
    """The model's weights at the end of each epoch, by 1-based epoch."""

    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = [w.copy() for w in self.model.get_weights()]


def test_a_run_past_its_best_stops_delivers_its_best_epoch_and_says_what_it_saved(tmp_path, npz_path, tltf_log):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)}, train=STOPPING))
    every = WeightsEveryEpoch()
    result = tltf.fit(recipe, tmp_path / "run", verbose=0, callbacks=[every])
    run_epochs, best = len(result.history["val_auc"]), result.metrics["best_epoch"]
    assert run_epochs == best + 6 < 30  # patience: 0.2 × 30 epochs
    assert result.metrics["budget"] == {"epochs_run": run_epochs, "epochs_planned": 30, "steps_run": 4 * run_epochs,
                                        "steps_planned": 120, "steps_saved": 120 - 4 * run_epochs}
    delivered = keras.models.load_model(tmp_path / "run" / "model.keras")
    for weight, at_best in zip(delivered.get_weights(), every.weights[best]):
        np.testing.assert_array_equal(weight, at_best)
    assert f"stopped at epoch {run_epochs}: val_auc has not improved" in "\n".join(tltf_log)
    assert "stops once the best epoch is 6 epochs old" in "\n".join(tltf_log)  # the plan line
    assert f"{run_epochs} of 30 epochs run" in (tmp_path / "run" / "report.md").read_text()


def test_epochs_n_runs_n_and_stop_never_runs_the_budget(tmp_path, npz_path):
    explicit = load_recipe(write_recipe(tmp_path / "a.yaml", {"source": "npz", "path": str(npz_path)},
                                        train={**STOPPING, "epochs": 12, "stop": "auto"}))
    assert explicit.train.spec().stop is None
    never = load_recipe(write_recipe(tmp_path / "b.yaml", {"source": "npz", "path": str(npz_path)},
                                     train={**STOPPING, "stop": "never"}))
    assert never.train.spec().stop is None
    assert load_recipe(write_recipe(tmp_path / "c.yaml", {"source": "npz", "path": str(npz_path)},
                                    train={**STOPPING, "stop": "auto"})).train.spec().stop is not None


def test_auto_does_not_stop_an_adapted_run_and_an_explicit_rule_does(tmp_path):
    from tltf.assemble import training_spec

    source, target = write_domain_pair(tmp_path)
    adaptation = {"method": "dann", "target": {"source": "npz", "path": str(target)}}
    auto, explicit = (load_recipe(write_recipe(tmp_path / f"{name}.yaml", {"source": "npz", "path": str(source)},
                                               train={**STOPPING, "stop": stop}, adaptation=adaptation))
                      for name, stop in (("auto", "auto"), ("explicit", {"patience": 0.3})))
    assert training_spec(auto).stop is None
    assert training_spec(explicit).stop.patience == 0.3


class KillAtTheStop(keras.callbacks.Callback):
    """Fails as the phase ends, after the last epoch's state is saved and before the trainer records the phase
    done: a kill in the one window where a resumed run could start an epoch the stopped run never ran."""

    def on_train_end(self, logs=None):
        if self.model.stop_training:
            raise KeyboardInterrupt("killed at the stop")


@pytest.mark.parametrize("validate_every_steps", [8])  # validations every 2 epochs: the harder case
def test_a_run_killed_at_its_stop_resumes_to_the_same_end(tmp_path, npz_path, validate_every_steps):
    data = {"source": "npz", "path": str(npz_path)}
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", data,
                                      train={**STOPPING, "validate_every_steps": validate_every_steps}))
    reference = tltf.fit(recipe, tmp_path / "reference", verbose=0)
    with pytest.raises(KeyboardInterrupt):
        tltf.fit(recipe, tmp_path / "run", verbose=0, callbacks=[KillAtTheStop()])
    resumed = tltf.fit(recipe, tmp_path / "run", verbose=0, resume=True)
    assert len(resumed.history["val_auc"]) == len(reference.history["val_auc"])
    assert (tmp_path / "run" / "metrics.json").read_text() == (tmp_path / "reference" / "metrics.json").read_text()


def test_stop_when_done_in_a_plain_keras_fit():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(0.1), "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    stop = tltf.callbacks.StopWhenDone(monitor="val_auc", mode="max", patience=3)
    history = model.fit(x, y, validation_data=(x, y), epochs=40, batch_size=16, callbacks=[stop], verbose=0)
    epochs = len(history.history["loss"])
    assert stop.stopped_epoch == epochs < 40 and stop.epochs_saved == 40 - epochs
    assert int(np.argmax(history.history["val_auc"])) + 1 == epochs - 3


def test_epochs_that_are_not_eligible_neither_count_nor_stop():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stop = tltf.callbacks.StopWhenDone(monitor="dev_risk", mode="min", patience=2, eligible="dev_trusted")
    stop.set_model(model)
    stop.set_params({"epochs": 10, "steps": 4})
    model.stop_training = False
    stop.on_train_begin()
    for epoch, (risk, trusted) in enumerate([(0.1, 0), (0.5, 1), (0.9, 0), (0.9, 0), (0.6, 1)]):
        stop.on_epoch_end(epoch, {"dev_risk": risk, "dev_trusted": trusted})
    assert not model.stop_training  # one judged epoch after the best: patience 2 not spent
    stop.on_epoch_end(5, {"dev_risk": 0.7, "dev_trusted": 1})
    assert model.stop_training and stop.stopped_epoch == 6 and stop.epochs_saved == 4
    assert stop.best_epoch == 1  # epoch 0's lower risk was not judged


def test_metrics_json_of_a_run_that_ran_its_budget_saves_nothing(tmp_path, npz_path):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                                      train={"epochs": 2}))
    tltf.fit(recipe, tmp_path / "run", verbose=0)
    budget = json.loads((tmp_path / "run" / "metrics.json").read_text())["budget"]
    assert budget["steps_saved"] == 0 and budget["epochs_run"] == budget["epochs_planned"] == 2


def test_a_run_of_short_epochs_validates_every_few_and_chooses_among_those(tmp_path, npz_path, tltf_log):
    """4 steps an epoch, validate_every_steps 8: epochs 2, 4, ... and the last validate; the others log no
    validation metrics, cannot be delivered, and do not count toward the stop's patience."""
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                                      train={**STOPPING, "validate_every_steps": 8, "min_steps": 36}))
    result = tltf.fit(recipe, tmp_path / "run", verbose=0)
    val_auc = np.asarray(result.history["val_auc"])
    validated = [epoch + 1 for epoch in np.flatnonzero(np.isfinite(val_auc))]
    run_epochs = len(val_auc)
    assert validated == [e for e in range(2, run_epochs + 1, 2)] + ([run_epochs] if run_epochs % 2 else [])
    assert np.isfinite(result.history["loss"]).all() and len(result.history["loss"]) == run_epochs
    assert result.metrics["best_epoch"] in validated
    # 9 epochs planned (min_steps 36); patience 0.2 × 9 → 2 epochs, one validation: the first that does not improve
    assert run_epochs == min(result.metrics["best_epoch"] + 2, 9)
    assert "validates every 2 epochs and at the end of each phase" in "\n".join(tltf_log)
    if run_epochs < 9:  # the line counts epochs, not validations
        assert f"(epoch {result.metrics['best_epoch']}) for 2 epochs" in "\n".join(tltf_log)
    assert "nan" in (tmp_path / "run" / "history.csv").read_text()


def test_the_patience_is_a_fraction_of_the_epochs_or_the_least_steps_whichever_is_longer():
    from tltf.train.spec import StopRule

    assert StopRule(0.2, 0).patience_epochs(100, 1) == 20
    assert StopRule(0.2, 0).patience_epochs(12, 74) == 3  # ceil(2.4)
    assert StopRule(0.2, 100).patience_epochs(30, 4) == 25  # 100 steps of 4
    assert StopRule(0.01, 0).patience_epochs(12, 74) == 1
