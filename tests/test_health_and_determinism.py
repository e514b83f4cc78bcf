"""Runs a user can trust: deterministic mode repeats a run exactly; a run that breaks says so."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
from conftest import write_recipe

import tltf
from tltf.recipe import load_recipe

TESTS = Path(__file__).resolve().parent


def test_deterministic_runs_repeat_exactly_with_augmentation_warm_up_and_dann(tmp_path):
    """Each recipe fitted twice in one fresh process (op determinism is process-wide): identical metrics.json
    and identical weights."""
    script = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        import numpy as np
        sys.path.insert(0, {str(TESTS)!r})
        import conftest
        from conftest import write_domain_pair, write_recipe
        import keras, tltf
        root = Path({str(tmp_path)!r})
        write_domain_pair(root)
        augment = {{"flip": "horizontal", "rotation": 0.1, "contrast": 0.2}}
        cases = {{
            "fine_tune": ({{"strategy": "fine_tune", "epochs": 2}}, []),
            "warmup": ({{"strategy": "warmup_then_finetune", "epochs": 3, "head_warmup": {{"epochs": 1}}}}, []),
            "dann": ({{"strategy": "fine_tune", "epochs": 2}},
                     [f"adaptation.target={{{{source: npz, path: {{root / 'target.npz'}}}}}}",
                      "adaptation.method=dann", "adaptation.domain_head.hidden=[8]",
                      "adaptation.compare_source_only=false"]),
        }}
        for name, (train, overrides) in cases.items():
            path = write_recipe(root / f"{{name}}.yaml", {{"source": "npz", "path": str(root / "source.npz")}},
                                train={{**train, "deterministic": True}}, augment=augment, model={{"dropout": 0.2}})
            runs = []
            for attempt in range(2):
                run = root / f"{{name}}-{{attempt}}"
                tltf.fit(tltf.load_recipe(path, overrides), run, verbose=0)
                weights = keras.models.load_model(run / "model.keras").get_weights()
                runs.append(((run / "metrics.json").read_text(), weights))
            same_metrics = runs[0][0] == runs[1][0]
            same_weights = all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
            print("CASE", name, same_metrics, same_weights, json.loads(runs[0][0])["val"]["auc"])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    cases = [line.split() for line in result.stdout.splitlines() if line.startswith("CASE")]
    assert [case[1] for case in cases] == ["fine_tune", "warmup", "dann"]
    for case in cases:
        assert case[2:4] == ["True", "True"], case


def fit_quietly(tmp_path, data: dict, **sections):
    path = write_recipe(tmp_path / "r.yaml", data, **sections)
    return tltf.fit(load_recipe(path), tmp_path / "run", verbose=0)


def test_a_diverging_run_stops_the_phase_keeps_the_best_checkpoint_and_says_so(tmp_path, npz_path):
    """A sound head warm-up, then fine-tuning at an absurd rate."""
    result = fit_quietly(tmp_path, {"source": "npz", "path": str(npz_path)},
                         train={"strategy": "warmup_then_finetune", "epochs": 5,
                                "head_warmup": {"epochs": 1, "lr": 1e-2},
                                "optimizer": "sgd", "lr": 1e6})
    health = json.loads((tmp_path / "run" / "metrics.json").read_text())["health"]
    assert health["status"] == "diverged" and result.metrics["health"] == health
    (event,) = health["events"]
    assert "try a lower learning rate" in event["message"] and "the phase was stopped" in event["message"]
    assert len(result.history["loss"]) == event["epoch"] < 5  # stopped at the divergence, not after five epochs
    assert result.metrics["best_epoch"] == 1  # the warm-up epoch: the diverged one is never the best
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert all(np.isfinite(w).all() for w in model.get_weights())  # the best checkpoint, not the diverged weights
    assert f"- training health: {event['message']}" in (tmp_path / "run" / "report.md").read_text()


def test_a_collapsed_run_is_reported(tmp_path):
    """Blank images: the model can only predict a constant, val AUC sits at exactly 0.5."""
    blank = np.zeros((48, 16, 16), np.uint8)
    labels = np.arange(48) % 2
    np.savez(tmp_path / "blank.npz", train_images=blank, train_labels=labels, val_images=blank[:16],
             val_labels=labels[:16])
    result = fit_quietly(tmp_path, {"source": "npz", "path": str(tmp_path / "blank.npz")},
                         train={"strategy": "fine_tune", "epochs": 5, "health": {"collapse_epochs": 2}})
    health = result.metrics["health"]
    assert health["status"] == "collapsed"
    assert health["events"][0]["epoch"] == 2
    assert "0.5 (a constant prediction) for 2 epochs" in health["events"][0]["message"]
    assert len(result.history["loss"]) == 2  # the phase stopped at the collapse


def test_a_healthy_run_says_ok(tmp_path, npz_path):
    result = fit_quietly(tmp_path, {"source": "npz", "path": str(npz_path)}, train={"epochs": 2})
    assert result.metrics["health"] == {"status": "ok", "events": []}
    assert "## Training health: ok" in (tmp_path / "run" / "report.md").read_text()


def test_training_health_works_in_a_plain_keras_fit():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(1e8), "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32") * 100
    y = (x[:, :1] > 0).astype("float32")
    health = tltf.callbacks.TrainingHealth(monitor="val_auc", divergence_factor=2.0)
    model.fit(x, y, validation_data=(x, y), epochs=5, batch_size=8, callbacks=[health], verbose=0)
    assert health.status == "diverged" and health.events[0]["kind"] == "diverged"


def test_a_run_that_diverges_at_once_has_no_best_epoch(tmp_path, npz_path):
    """Non-finite weights are never the best checkpoint, even when their val AUC is the first one seen."""
    result = fit_quietly(tmp_path, {"source": "npz", "path": str(npz_path)},
                         train={"strategy": "fine_tune", "epochs": 3, "optimizer": "sgd", "lr": 1e12})
    assert result.metrics["health"]["status"] == "diverged"
    assert result.metrics["best_epoch"] is None


def noisy_task(seed: int):
    """Labels from the first feature, a third of the training labels flipped: a wide net first learns the rule,
    then memorises the flipped labels, and its validation loss climbs."""
    rng = np.random.default_rng(seed)
    x, x_val = rng.normal(size=(48, 16)).astype("float32"), rng.normal(size=(200, 16)).astype("float32")
    y, y_val = (x[:, :1] > 0).astype("float32"), (x_val[:, :1] > 0).astype("float32")
    flipped = rng.permutation(48)[:16]
    y[flipped] = 1 - y[flipped]
    return x, y, x_val, y_val


def plateau_events(lr: float):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(lr), "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    x, y, x_val, y_val = noisy_task(0)
    health = tltf.callbacks.TrainingHealth(monitor="val_auc", stall_epochs=4)
    model.fit(x, y, validation_data=(x_val, y_val), epochs=16, batch_size=16, callbacks=[health], verbose=0)
    return health


def test_overfitting_is_told_from_a_stall_and_reported_once_with_the_best_epoch():
    health = plateau_events(3e-3)  # memorises the flipped labels: training loss down, validation loss up
    print([event["message"] for event in health.events])
    assert health.status == "overfitting" and [e["kind"] for e in health.events] == ["overfitting"]
    assert "while the training loss fell" in health.events[0]["message"]
    assert "(epoch " in health.events[0]["message"] and "past its best" in health.events[0]["message"]
    stuck = plateau_events(0.0)  # nothing moves: the validation AUC never improves on its first value
    assert stuck.status == "stalled" and [e["kind"] for e in stuck.events] == ["stalled"]
