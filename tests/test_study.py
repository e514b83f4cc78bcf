"""`tltf study` and `tltf tune` on a local Ray, in real subprocesses, on tiny data."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import write_recipe

pytest.importorskip("ray.tune", reason="studies run on Ray Tune: pip install 'tltf[study]'")

import tltf  # noqa: E402
from tltf.cli.main import main  # noqa: E402
from tltf.data.sources import load_splits  # noqa: E402
from tltf.evaluate.paired import delong_test  # noqa: E402
from tltf.run_dir import load_run_recipe  # noqa: E402

TESTS = Path(__file__).resolve().parent
SETUP = "fixtures.study_worker.setup"


def tltf_cli(*args, cwd, env=None, timeout=600):
    environment = {**os.environ, "PYTHONPATH": str(TESTS), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tltf.cli.main", *map(str, args)], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def tiny_data(root: Path) -> Path:
    """Grey 16 px images whose class shifts the brightness by less than the images vary: AUC well below 1, so
    arms and seeds differ."""
    arrays = {}
    for split, n, seed in (("train", 96, 0), ("val", 32, 1), ("test", 40, 2)):
        rng = np.random.default_rng(seed)
        labels = rng.permutation(np.arange(n) % 2)
        brightness = 120 + 12 * labels + rng.normal(0, 15, n)
        images = brightness[:, None, None] + rng.normal(0, 20, (n, 16, 16))
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    np.savez(root / "tiny.npz", **arrays)
    return write_recipe(root / "recipe.yaml", {"source": "npz", "path": "tiny.npz"},
                        train={"epochs": 3, "lr": 1e-2}, evaluate={"bootstrap": 20})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 2-arm × 2-seed study, one of whose workers is killed once after saving an epoch."""
    root = tmp_path_factory.mktemp("study")
    tiny_data(root)
    (root / "study.yaml").write_text(yaml.safe_dump({
        "name": "tiny-study", "recipe": "recipe.yaml",
        "arms": {"base": {}, "slow": {"train.lr": 1e-3}},
        "grid": {"data.train_fraction": [0.5]}, "seeds": [1, 2],
        "resources": {"cpus": 1}, "max_failures": 2}))
    marker = root / "killed"
    first = tltf_cli("study", "study.yaml", "--out", "out", "--setup", SETUP, cwd=root,
                     env={"TLTF_TEST_KILL_ONCE": str(marker)})
    return root, first, marker


def test_a_study_runs_every_arm_grid_point_and_seed_into_a_complete_table(study):
    root, first, _ = study
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = root / "out"
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["arm"], r["data.train_fraction"], r["seed"]) for r in rows) == sorted(
        (arm, "0.5", seed) for arm in ("base", "slow") for seed in ("1", "2"))
    for row in rows:
        metrics = json.loads((out / "runs" / row["run"] / "metrics.json").read_text())
        assert float(row["test.auc"]) == metrics["test"]["auc"] and float(row["wall_seconds"]) > 0
        recipe = yaml.safe_load((out / "runs" / row["run"] / "recipe.yaml").read_text())
        assert recipe["train"]["seed"] == int(row["seed"])
        assert recipe["train"]["lr"] == (1e-3 if row["arm"] == "slow" else 1e-2)
    for name in ("study.md", "paired.json", "data_efficiency.png", "test_auc_by_arm.png", "study.yaml"):
        assert (out / name).is_file(), name
    assert "[4/4 done" in first.stdout and "ETA" in first.stdout


def test_arms_and_seeds_train_on_the_same_nested_images(study, tmp_path):
    """What a study's runs train on, from the recipes it would run (no training needed)."""
    from tltf.study.spec import StudySpec, check_recipes, expand_runs

    root, _, _ = study
    spec = StudySpec.model_validate({"name": "s", "recipe": "r", "arms": {"a": {}, "b": {"train.lr": 1e-3}},
                                     "grid": {"data.train_fraction": [0.25, 0.5]}, "seeds": [1, 2]})
    recipes = check_recipes(spec, root / "recipe.yaml", expand_runs(spec))
    assert len(recipes) == 8
    train_sets = {}
    for name, recipe in recipes.items():
        recipe.data.path = root / "tiny.npz"
        images = load_splits(recipe.data, seed=recipe.train.seed).train.images
        train_sets[name] = {image.tobytes() for image in images}
    quarter, half = train_sets["a-train_fraction=0.25-seed=1"], train_sets["a-train_fraction=0.5-seed=1"]
    assert len(quarter) == 24 and len(half) == 48 and quarter < half
    for name, images in train_sets.items():
        assert images == (quarter if "0.25" in name else half), name
    # The runs the study made trained on those images.
    for run in (root / "out" / "runs").iterdir():
        recipe = load_run_recipe(run)
        recipe.data.path = root / "tiny.npz"
        assert {image.tobytes() for image in load_splits(recipe.data, seed=recipe.train.seed).train.images} == half


def test_the_paired_table_is_delong_on_each_seeds_runs_and_a_t_interval_over_seeds(study):
    from scipy import stats

    root, _, _ = study
    out = root / "out"
    paired = json.loads((out / "paired.json").read_text())
    assert [(e["point"], e["arm"], e["reference"], e["seeds"]) for e in paired] == [
        ({"data.train_fraction": 0.5}, "slow", "base", 2)]
    for entry in paired:
        fraction = entry["point"]["data.train_fraction"]
        differences = []
        for per_seed in entry["per_seed"]:
            runs = [out / "runs" / f"{arm}-train_fraction={fraction}-seed={per_seed['seed']}"
                    for arm in ("base", "slow")]
            (labels, a), (_, b) = (tltf.evaluate.read_predictions(run) for run in runs)
            expected = delong_test(labels, a, b)
            assert per_seed["difference"] == pytest.approx(expected.difference)
            assert per_seed["p"] == pytest.approx(expected.p)
            differences.append(expected.difference)
        half_width = stats.t.ppf(0.975, 1) * np.std(differences, ddof=1) / np.sqrt(2)
        assert entry["mean_difference"] == pytest.approx(np.mean(differences))
        assert entry["ci"] == pytest.approx([np.mean(differences) - half_width, np.mean(differences) + half_width])
    assert "| 0.5 | slow − base |" in (out / "study.md").read_text()


def test_a_killed_trial_is_retried_and_continues_from_its_saved_epoch(study):
    root, first, marker = study
    killed_dir = Path(marker.read_text())  # the folder whose state the killed worker had just saved
    run_name = next(part for part in killed_dir.parts if part.endswith(".partial"))[: -len(".partial")]
    assert f"{run_name} died (failure 1 of 2 allowed); retrying" in first.stdout
    log = (root / "out" / "logs" / f"{run_name}.log").read_text()
    assert "continuing the interrupted run" in log
    assert (root / "out" / "runs" / run_name / "metrics.json").is_file()


def test_a_rerun_skips_finished_runs_and_rewrites_the_same_results(study, monkeypatch):
    root, _, _ = study
    monkeypatch.chdir(root)  # in this process: nothing is left to run, so no Ray starts
    before = (root / "out" / "results.csv").read_text()
    # A run made before tltf had a key (here train.regularization) counts as made with that key's default.
    older = sorted((root / "out" / "runs").iterdir())[0] / "recipe.yaml"
    saved = yaml.safe_load(older.read_text())
    del saved["train"]["regularization"]
    older.write_text(yaml.safe_dump(saved, sort_keys=False))
    again = CliRunner().invoke(main, ["study", "study.yaml", "--out", "out", "--setup", SETUP])
    assert again.exit_code == 0, again.output
    assert "4 finished, 0 to continue, 0 to start" in again.output and "started" not in again.output
    assert (root / "out" / "results.csv").read_text() == before
    # A study that now asks a finished run for something else says which run and key, before running anything.
    spec = yaml.safe_load((root / "study.yaml").read_text())
    spec["arms"]["slow"] = {"train.lr": 2e-3}
    (root / "changed.yaml").write_text(yaml.safe_dump(spec))
    changed = CliRunner().invoke(main, ["study", "changed.yaml", "--out", "out", "--setup", SETUP])
    assert changed.exit_code == 2 and len(changed.stderr.strip().splitlines()) == 1
    assert "slow-train_fraction=0.5-seed=1: made with train.lr=0.001, the study now asks for 0.002" in changed.stderr


def test_study_file_errors_are_one_line(tmp_path, monkeypatch):
    tiny_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"name": "s", "recipe": "recipe.yaml",
                                                       "arms": {"a": {"train.lr": "fast"}}}))
    result = CliRunner().invoke(main, ["study", "bad.yaml"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("tltf: error: study s: run a-seed=0: ") and "train.lr" in result.stderr
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({"name": "s", "recipe": "recipe.yaml", "arms": {"a": {}},
                                                        "seed": [1]}))
    result = CliRunner().invoke(main, ["study", "typo.yaml"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "tltf: error: typo.yaml: seed: unknown key; did you mean 'seeds'?"
    assert not (tmp_path / "studies").exists()


def test_tune_searches_by_validation_auc_and_writes_a_recipe_fit_runs(tmp_path):
    recipe = tiny_data(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({
        "space": {"train.lr": {"loguniform": [1e-4, 3e-2]}, "train.epochs": {"choice": [2, 3]}},
        "resources": {"cpus": 1}, "grace_epochs": 1, "seed": 0}))
    result = tltf_cli("tune", recipe.name, "--space", "space.yaml", "--trials", 2, "--out", "search",
                      "--setup", SETUP, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "test AUC" not in result.stdout  # a search never looks at test
    with open(tmp_path / "search" / "trials.csv") as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 2 and len({t["train.lr"] for t in trials}) == 2
    finished = [t for t in trials if t["status"] == "finished"]
    for trial in finished:
        metrics = json.loads((Path(trial["run_dir"]) / "metrics.json").read_text())
        assert float(trial["val_auc"]) == pytest.approx(metrics["val"]["auc"])
        with open(Path(trial["run_dir"]) / "history.csv") as handle:  # every epoch's val AUC went to the scheduler
            assert int(trial["epochs"]) == len(list(csv.DictReader(handle))) > 0
        assert yaml.safe_load((Path(trial["run_dir"]) / "recipe.yaml").read_text())["train"]["lr"] == \
            pytest.approx(float(trial["train.lr"]))
    best = max(finished, key=lambda t: float(t["val_auc"]))
    best_recipe = tltf.load_recipe(tmp_path / "search" / "best.yaml")
    assert best_recipe.train.lr == pytest.approx(float(best["train.lr"]))
    assert best_recipe.train.epochs == int(best["train.epochs"])


def test_tune_reruns_the_best_trials_and_the_recipes_values_at_the_confirmation_seeds(tmp_path):
    recipe = tiny_data(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({
        "space": {"train.lr": {"loguniform": [1e-4, 3e-2]}, "train.epochs": {"choice": [2, 3]}},
        "resources": {"cpus": 1}, "grace_epochs": 1, "seed": 0, "start_from_recipe": True,
        "confirm": {"top": 1, "seeds": [5, 6]}}))
    result = tltf_cli("tune", recipe.name, "--space", "space.yaml", "--trials", 3, "--out", "search",
                      "--setup", SETUP, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "mean val AUC over seeds 5, 6: " in result.stdout
    with open(tmp_path / "search" / "trials.csv") as handle:
        trials = list(csv.DictReader(handle))
    with open(tmp_path / "search" / "confirmation.csv") as handle:
        confirmation = list(csv.DictReader(handle))
    own = [t for t in trials if t["from_recipe"] == "True"]
    assert len(trials) == 3 and len(own) == 1  # the recipe (lr 1e-2, 3 epochs) is one of the three trials
    assert float(own[0]["train.lr"]) == 1e-2 and own[0]["train.epochs"] == "3"
    best_trial = max((t for t in trials if t["status"] == "finished"), key=lambda t: float(t["val_auc"]))
    candidates = {best_trial["trial"], own[0]["trial"]}
    assert {(c["trial"], c["seed"]) for c in confirmation} == {(t, s) for t in candidates for s in ("5", "6")}
    for entry in confirmation:  # each confirmation run is its candidate's values at its own seed
        trial = next(t for t in trials if t["trial"] == entry["trial"])
        run_recipe = load_run_recipe(entry["run_dir"])
        assert run_recipe.train.seed == int(entry["seed"]) and run_recipe.train.epochs == int(trial["train.epochs"])
        assert run_recipe.train.lr == pytest.approx(float(trial["train.lr"]))
        assert float(entry["val_auc"]) == pytest.approx(
            json.loads((Path(entry["run_dir"]) / "metrics.json").read_text())["val"]["auc"])
    means = {t["trial"]: float(t["confirmed_val_auc"]) for t in trials if t["confirmed_val_auc"]}
    assert set(means) == candidates
    for trial, mean in means.items():
        assert mean == pytest.approx(np.mean([float(c["val_auc"]) for c in confirmation if c["trial"] == trial]))
    winner = next(t for t in trials if t["trial"] == max(means, key=means.get))
    best_recipe = tltf.load_recipe(tmp_path / "search" / "best.yaml")
    assert best_recipe.train.lr == pytest.approx(float(winner["train.lr"]))
    assert best_recipe.train.seed == tltf.load_recipe(recipe).train.seed  # the recipe's seed, not a confirmation's


def test_the_confirmation_chooses_the_best_mean_not_the_luckiest_single_run(tmp_path):
    from tltf.study.confirmation import choose_confirmed
    from tltf.study.search import SearchSpec
    from tltf.study.trials import ConfirmationRun, TrialRow

    recipe = tiny_data(tmp_path)
    base = tltf.load_recipe(recipe)
    spec = SearchSpec(space={"train.lr": {"loguniform": [1e-4, 1e-1]}}, start_from_recipe=True,
                      confirm={"top": 2, "seeds": [5, 6]})
    rows, confirmation = [], []
    for trial, lr, search_auc, seed_aucs in (("lucky", 3e-3, 0.95, (0.80, 0.82)),
                                             ("steady", 1e-3, 0.90, (0.88, 0.86)),
                                             ("own", 1e-2, None, (0.85, 0.85))):
        rows.append(TrialRow(trial, {"train.lr": lr}, "finished" if search_auc else "stopped early",
                             val_auc=search_auc, from_recipe=trial == "own"))
        for seed, auc in zip((5, 6), seed_aucs):
            folder = tmp_path / f"{trial}-{seed}"
            folder.mkdir()
            (folder / "recipe.yaml").write_text(tltf.load_recipe(recipe, [f"train.lr={lr}", f"train.seed={seed}"])
                                                .to_yaml())
            confirmation.append(ConfirmationRun(trial, seed, auc, str(folder)))
    result = choose_confirmed(spec, tmp_path, base, rows, confirmation)
    assert result.best_val_auc == pytest.approx(0.87) and result.recipe_val_auc == pytest.approx(0.85)
    assert not result.best_is_recipe
    best = tltf.load_recipe(tmp_path / "best.yaml")
    assert best.train.lr == pytest.approx(1e-3) and best.train.seed == base.train.seed
    assert "0.8700; the recipe's own values: 0.8500" in (tmp_path / "best.yaml").read_text().splitlines()[0]
    # the recipe's own values now have the best mean: nothing better found
    confirmation[-1] = ConfirmationRun("own", 6, 0.95, confirmation[-1].run_dir)
    (tmp_path / "best.yaml").unlink()
    assert choose_confirmed(spec, tmp_path, base, rows, confirmation).best_is_recipe
    assert tltf.load_recipe(tmp_path / "best.yaml").train.lr == pytest.approx(1e-2)


def test_the_candidates_are_the_best_finished_trials_and_the_recipes_values_even_when_stopped():
    from tltf.study.trials import TrialRow, confirmation_candidates

    rows = [TrialRow("own", {}, "stopped early", from_recipe=True),
            TrialRow("a", {}, "finished", val_auc=0.90, from_recipe=False),
            TrialRow("b", {}, "finished", val_auc=0.95, from_recipe=False),
            TrialRow("c", {}, "stopped early", from_recipe=False),
            TrialRow("d", {}, "finished", val_auc=0.93, from_recipe=False)]
    assert [row.trial for row in confirmation_candidates(rows, top=2)] == ["b", "d", "own"]
    rows[0] = TrialRow("own", {}, "finished", val_auc=0.99, from_recipe=True)  # among the best: not twice
    assert [row.trial for row in confirmation_candidates(rows, top=2)] == ["own", "b"]


def test_a_search_starting_from_the_recipe_needs_its_values_inside_the_space(tmp_path, monkeypatch):
    from tltf.study.search import SearchSpec, recipe_values

    recipe = tltf.load_recipe(tiny_data(tmp_path))  # lr 1e-2, 3 epochs, dropout 0
    inside = SearchSpec(space={"train.lr": {"loguniform": [1e-4, 1e-1]}, "train.epochs": {"int": [1, 5]},
                               "model.dropout": {"choice": [0.0, 0.5]}}, start_from_recipe=True)
    assert recipe_values(recipe, inside, "space.yaml") == {"train.lr": 1e-2, "train.epochs": 3, "model.dropout": 0.0}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({"space": {"train.lr": {"loguniform": [1e-4, 1e-3]}},
                                                         "start_from_recipe": True}))
    result = CliRunner().invoke(main, ["tune", "recipe.yaml", "--space", "space.yaml", "--trials", "2"])
    assert result.exit_code == 2 and result.stderr.strip() == (
        "tltf: error: space.yaml: start_from_recipe: the recipe's train.lr=0.01 lies outside the space's "
        "loguniform [0.0001, 0.001]; widen the space or set start_from_recipe: false")
    assert not (tmp_path / "tunes").exists()


def test_search_space_errors_are_one_line_before_anything_runs(tmp_path, monkeypatch):
    recipe = tiny_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    for space, message in (
            ({"space": {"train.lr": {"loguniform": [0, 1e-2]}}},
             "space.yaml: space: train.lr: loguniform needs low > 0"),
            ({"space": {"train.lrate": {"uniform": [0.1, 0.2]}}}, "space.yaml: recipe.yaml: train.lrate: unknown key"),
            ({"space": {"train.lr": {"normal": [0, 1]}}}, "train.lr: give one of loguniform, uniform, int, choice")):
        (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
        result = CliRunner().invoke(main, ["tune", recipe.name, "--space", "space.yaml", "--trials", "2"])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
        assert message in result.stderr
    assert not (tmp_path / "tunes").exists()


def test_an_address_nothing_answers_at_is_one_line(tmp_path, monkeypatch):
    tiny_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "s", "recipe": "recipe.yaml", "arms": {"a": {}}}))
    result = CliRunner().invoke(main, ["study", "s.yaml", "--address", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("tltf: error: --address 127.0.0.1:1: nothing answers at 127.0.0.1:1; start the "
                                     "cluster (`ray start --head` on its head node) or leave --address out for a "
                                     "local Ray")
    assert not (tmp_path / "studies").exists()  # nothing written


def test_a_continued_studys_eta_starts_from_the_runs_finished_before():
    from tltf.study.progress import TrialProgress

    progress = TrialProgress(total=10, done=4, slots=2, max_failures=1, durations=[60, 300, 90])
    assert progress._eta() == "; ETA 4m30s"  # median 90 s (not the mean, 150: one slow run) × 6 left ÷ 2 at once
    assert TrialProgress(total=10, done=4, slots=2, max_failures=1)._eta() == ""  # nothing to go on yet


def test_without_address_a_study_starts_its_own_ray_whatever_cluster_the_machine_remembers(tmp_path):
    """A machine that once ran `ray start --head` keeps the cluster's address in Ray's temp folder
    (`ray_current_cluster`) after the cluster died; `ray.init()` would attach to it and fail. Without --address,
    the study starts a fresh local Ray instead and runs."""
    import shutil
    import socket
    import tempfile

    tiny_data(tmp_path)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "stale-cluster", "recipe": "recipe.yaml", "arms": {"base": {}},
        "grid": {"data.train_fraction": [0.5]}, "seeds": [1], "resources": {"cpus": 1}}))
    # Ray's own folders go here for this test; a short path, as Ray's socket paths must stay under 108 bytes.
    ray_temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    with socket.socket() as probe:  # a port nothing listens at once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (ray_temp / "ray").mkdir()
    (ray_temp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    try:
        # Attached to the dead cluster, Ray retries for minutes; the run itself takes well under one here.
        result = tltf_cli("study", "study.yaml", "--out", "out", "--setup", SETUP, cwd=tmp_path,
                          env={"RAY_TMPDIR": str(ray_temp)}, timeout=240)
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / "out" / "results.csv") as handle:
        assert [row["seed"] for row in csv.DictReader(handle)] == ["1"]
    assert "--address None" not in result.stdout + result.stderr


def test_a_studys_set_applies_to_every_run_before_its_arm(tmp_path):
    """`--set` points a study at local data and changes every run; an arm's own value still wins over it."""
    tiny_data(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "tiny.npz").rename(tmp_path / "data" / "tiny.npz")  # the recipe's data.path no longer exists
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "with-set", "recipe": "recipe.yaml", "arms": {"base": {}, "slow": {"train.lr": 1e-3}},
        "grid": {"data.train_fraction": [0.5]}, "seeds": [1], "resources": {"cpus": 1}}))
    result = tltf_cli("study", "study.yaml", "--out", "out", "--setup", SETUP, "--set", "data.path=data/tiny.npz",
                      "--set", "train.epochs=2", "--set", "train.lr=0.05", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    recipes = {run.name.split("-")[0]: load_run_recipe(run) for run in (tmp_path / "out" / "runs").iterdir()}
    assert {arm: (r.train.epochs, r.train.lr) for arm, r in recipes.items()} == {"base": (2, 0.05), "slow": (2, 1e-3)}
    assert all(str(r.data.path).endswith("data/tiny.npz") for r in recipes.values())


def test_a_run_that_cannot_run_fails_once_with_its_reason_not_three_times(tmp_path):
    """A `TltfError` on the worker (here: a train split of one class, which only loading the data shows) cannot
    be fixed by another attempt: the run ends once, its reason on the console, and the study exits 1."""
    tiny_data(tmp_path)
    arrays = dict(np.load(tmp_path / "tiny.npz"))
    arrays["train_labels"] = np.zeros_like(arrays["train_labels"])
    np.savez(tmp_path / "tiny.npz", **arrays)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "one-class", "recipe": "recipe.yaml", "arms": {"base": {}}, "grid": {"data.train_fraction": [0.5]},
        "seeds": [1], "resources": {"cpus": 1}, "max_failures": 2}))
    result = tltf_cli("study", "study.yaml", "--out", "out", "--setup", SETUP, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "base-train_fraction=0.5-seed=1 cannot run, not retried" in output
    assert "the train split has a single class" in output and "died" not in output
    log = (tmp_path / "out" / "logs" / "base-train_fraction=0.5-seed=1.log").read_text()
    assert log.count("the train split has a single class") == 1  # one attempt


def test_a_study_runs_on_a_cluster_started_with_ray_start_and_its_runs_see_the_commands_keras_cache(tmp_path):
    """A real single-node cluster (`ray start --head --block` in its own process group, started without the
    command's KERAS_HOME or TLTF_* variables, as a cluster started elsewhere would be): a two-run study with
    --address authenticates with the cluster's token and its runs see the command's Keras cache."""
    import shutil
    import signal
    import socket
    import tempfile
    import time

    tiny_data(tmp_path)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "on-a-cluster", "recipe": "recipe.yaml", "arms": {"base": {}, "slow": {"train.lr": 1e-3}},
        "grid": {"data.train_fraction": [0.5]}, "seeds": [1], "resources": {"cpus": 1}}))
    ray_temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster_env = {name: value for name, value in os.environ.items()
                   if name != "KERAS_HOME" and not name.startswith("TLTF_")}
    # the --setup module on every node; where its workers say what KERAS_HOME they see (not a TLTF_ variable: tltf
    # would pass it on itself, and the probe would prove nothing)
    cluster_env.update(PYTHONPATH=str(TESTS), RAY_TMPDIR=str(ray_temp), STUDY_ENV_PROBE=str(tmp_path / "probe"))
    with open(tmp_path / "cluster.log", "w") as log:
        head = subprocess.Popen(["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                                 "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                                env=cluster_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(120):
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        keras_home = tmp_path / "drivers-keras-home"
        result = tltf_cli("study", "study.yaml", "--out", "out", "--setup", SETUP, "--address", f"127.0.0.1:{port}",
                          cwd=tmp_path, timeout=400,
                          env={"KERAS_HOME": str(keras_home)})
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + (
        tmp_path / "cluster.log").read_text()[-2000:]
    with open(tmp_path / "out" / "results.csv") as handle:
        assert sorted(row["arm"] for row in csv.DictReader(handle)) == ["base", "slow"]
    seen = (tmp_path / "probe").read_text().split()
    assert seen and set(seen) == {str(keras_home)}  # every worker that ran a trial


def test_a_study_of_data_without_a_test_split_says_its_test_figures_are_the_validation_splits(tmp_path,
                                                                                              monkeypatch):
    """Runs whose data has no test split evaluate "test" on val, which also chose their epoch: results.csv says so
    per run (`test.split`) and study.md says so above the table. The runs are made beforehand, as the study would
    make them, so the study only writes its report (no Ray)."""
    from tltf.study.results import run_dir
    from tltf.study.spec import expand_runs, load_study
    from tltf.study.study import run_study

    monkeypatch.chdir(tmp_path)  # the recipe's relative data path, as the study reads it
    tiny_data(tmp_path)
    arrays = {key: value for key, value in np.load(tmp_path / "tiny.npz").items() if not key.startswith("test")}
    np.savez(tmp_path / "tiny.npz", **arrays)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "no-test", "recipe": "recipe.yaml", "arms": {"base": {}, "slow": {"train.lr": 1e-3}},
        "grid": {"train.epochs": [2]}, "seeds": [1], "resources": {"cpus": 1}}))
    spec, recipe_path = load_study(tmp_path / "study.yaml")
    for run in expand_runs(spec):
        tltf.fit(tltf.load_recipe(recipe_path, list(run.overrides)), run_dir(tmp_path / "out", run), verbose=0)
    result = run_study(tmp_path / "study.yaml", out=tmp_path / "out")
    assert {row["test.split"] for row in result.rows} == {"val (no test split)"}
    with open(tmp_path / "out" / "results.csv") as handle:
        assert {row["test.split"] for row in csv.DictReader(handle)} == {"val (no test split)"}
    assert "**2 of 2 runs had no test split**" in (tmp_path / "out" / "study.md").read_text()

