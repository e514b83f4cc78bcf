"""Running many tltf runs as Ray Tune trials: a local Ray started on demand, or an existing cluster.

Each trial is one ordinary `tltf.fit` into its own run directory. A trial
whose worker dies is retried by Ray Tune (`FailureConfig`); the retry
continues the run from its last saved epoch, because `tltf.fit` into a folder
whose `.partial` twin holds an interrupted run continues it. A run that fails
for a reason another attempt cannot fix (a `TltfError`: its weights, data or
recipe as the worker sees them) ends at once with that reason. Ray is imported
here, by the Tune callback in `progress.py` and by `search.py`, and only when a
study or a search runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import traceback
from pathlib import Path
from typing import Optional

from tltf.errors import TltfError
from tltf.log import logger
from tltf.study.results import RUNS_FOLDER
from tltf.study.spec import override_text

INSTALL_HINT = "pip install 'tltf[study]' (Ray Tune and Optuna)"


def import_tune():
    """`ray.tune`, or one line saying how to install it."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's own tables stay off; tltf prints its progress
    try:
        from ray import tune
    except ImportError:
        raise TltfError(f"studies and searches run on Ray Tune, which is not installed: {INSTALL_HINT}") from None
    return tune


@dataclasses.dataclass(frozen=True)
class RaySettings:
    """Where a study's or search's trials run, made once when the command starts (`ray_settings`).

    Args:
        address: an existing cluster, or None for a fresh local Ray.
        setup: what every worker runs first (`--setup`), or None.
        environment: the variables the runs depend on, as the command was given them (`run_environment`).
    """

    address: Optional[str] = None
    setup: Optional[object] = None
    environment: dict = dataclasses.field(default_factory=dict)


def ray_settings(address=None, setup=None) -> RaySettings:
    """The command's Ray settings, taken before Ray is imported and before a `--setup` runs in the driver (it may
    change the environment): the cluster's token (`use_cluster_token`) and the run environment."""
    use_cluster_token(address)
    return RaySettings(address, setup, run_environment())


@contextlib.contextmanager
def ray_session(settings: RaySettings):
    """A Ray to run trials on: `address` (an existing cluster, e.g. `ray://head:10001` or `auto`), or a fresh local
    one started here and shut down afterwards.

    Args:
        address: the cluster; `auto` is the one this machine last started or joined (`ray start`, Ray's own
            rule). None starts a fresh local Ray (Ray's `address="local"`), whatever clusters the machine
            remembers or `RAY_ADDRESS` names: `ray.init()` without an address would attach to the newest one
            recorded, and fail when it has since died.
        setup: a function, or its import path `module.function`, that every worker process runs first (e.g.
            to `register_backbone` your own backbones); its module must be importable on every node. The
            driver runs it itself first (`run_setup`), since it validates the recipes.
    """
    import_tune()
    import ray

    if ray.is_initialized():
        yield
        return
    address, setup = settings.address, settings.setup
    runtime_env = {"env_vars": dict(settings.environment)}
    if setup:
        runtime_env["worker_process_setup_hook"] = setup
    try:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, runtime_env=runtime_env)
    except (ConnectionError, ValueError) as error:
        where = f"--address {address}: cannot connect to a Ray cluster" if address else "cannot start a local Ray"
        raise TltfError(f"{where}: {error}") from None
    # Tune's own notices would mislead (a Ctrl-C's "resume with Tuner.restore", a page per unfinished trial) or
    # repeat what tltf says: its progress lines report deaths and retries, and each run's log its traceback.
    tune_logger = logging.getLogger("ray.tune")
    level = tune_logger.level
    tune_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        tune_logger.setLevel(level)
        ray.shutdown()


def run_environment() -> dict:
    """The variables a tltf run depends on (`KERAS_HOME`, every `TLTF_*`) as the command sees them: a cluster's
    workers were started with the cluster's environment, not the command's, and a run that cannot find its
    weights in their Keras cache fails."""
    return {name: value for name, value in os.environ.items() if name == "KERAS_HOME" or name.startswith("TLTF_")}


def use_cluster_token(address) -> None:
    """Ray ≥ 2.59 starts a cluster with token authentication (`ray start --head` writes the token to
    `~/.ray/auth_token`) and refuses a driver that does not send it; unless `RAY_AUTH_MODE` says otherwise, send
    the token when there is one. Ray reads the setting when it is imported: call this first (`run_study` and
    `run_search` do)."""
    if not address or "RAY_AUTH_MODE" in os.environ:
        return
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or token.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
        logger.info(f"--address {address}: sending the cluster's authentication token "
                    f"({'RAY_AUTH_TOKEN' if os.environ.get('RAY_AUTH_TOKEN') else token})")


def check_address(address) -> None:
    """One line now, where Ray would retry an address nothing answers at for minutes, in its own warnings."""
    import socket

    if address in (None, "auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "localhost", int(port)), timeout=5).close()
    except (OSError, ValueError):
        raise TltfError(f"--address {address}: nothing answers at {host or 'localhost'}:{port}; start the cluster "
                        "(`ray start --head` on its head node) or leave --address out for a local Ray") from None


def cluster_slots(resources) -> int:
    """How many runs the Ray cluster holds at once."""
    import ray

    available = ray.cluster_resources()
    slots = math.floor(available.get("CPU", 1) / resources.cpus)
    if resources.gpus:
        slots = min(slots, math.floor(available.get("GPU", 0) / resources.gpus))
    return max(1, slots)


def run_setup(setup) -> None:
    """Calls `setup`, a function or its import path `module.function`, as Ray does in each worker."""
    import importlib

    if callable(setup):
        setup()
        return
    module, _, name = str(setup).rpartition(".")
    try:
        function = getattr(importlib.import_module(module), name) if module else None
    except ImportError as error:
        raise TltfError(f"--setup {setup}: cannot import {module}: {error}") from None
    if not callable(function):
        raise TltfError(f"--setup {setup}: not a function; give MODULE.FUNCTION, importable here and on every node")
    function()


def trial_settings(recipe_path, folder: Path, resources, search: bool, overrides=()) -> dict:
    """What every trial of a study or a search shares (`fit_trial`'s `shared`): runs in `folder/runs/`, logs in
    `folder/logs/`, the recipe's relative paths read from the current directory.

    Args:
        recipe_path: the recipe every trial starts from.
        folder: the study's or search's folder.
        resources: `Resources` of one trial (its CPUs size TensorFlow's thread pools).
        search: a search (each epoch's validation AUC reported to Tune, no test metrics in its results).
        overrides: a search's `--set`s, applied before each trial's sampled values.
    """
    return {"recipe": str(recipe_path), "overrides": list(overrides), "runs_dir": str(Path(folder) / RUNS_FOLDER),
            "logs_dir": str(Path(folder) / "logs"), "cwd": os.getcwd(), "cpus": resources.cpus, "search": search}


def run_trials(trainable_config: dict, param_space: dict, name: str, storage: Path, resources, *, max_failures: int,
               callbacks=(), tune_config=None):
    """Runs `fit_trial` once per configuration on Ray Tune; returns Tune's `ResultGrid`.

    Args:
        trainable_config: settings every trial shares (merged under each trial's `param_space` entries).
        param_space: Tune's parameter space (a `grid_search` over runs, or search distributions).
        name: the Tune experiment's name, a folder under `storage`.
        storage: where Tune keeps its own state.
        resources: `Resources` of one trial.
        max_failures: retries of a trial whose worker dies.
        callbacks: Tune callbacks on the driver (progress).
        tune_config: a `tune.TuneConfig` (search algorithm, scheduler, samples).
    """
    tune = import_tune()
    # A run that cannot run reports only its reason (`fit_trial`), without the metric a search's algorithm and
    # scheduler expect; both skip such a result, Tune's strict check would refuse it.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    trainable = tune.with_parameters(fit_trial, shared=trainable_config)
    trainable = tune.with_resources(trainable, {"cpu": resources.cpus, "gpu": resources.gpus})
    run_config = tune.RunConfig(name=name, storage_path=str(Path(storage).resolve()), verbose=0,
                                failure_config=tune.FailureConfig(max_failures=max_failures),
                                callbacks=list(callbacks))
    # A new worker per run (Tune's default): reusing workers saves their start (about 10 s) but, measured with
    # Ray 2.60, after one dies its slot stays taken until the retry runs, last: the rest of the study would run
    # one fewer at a time.
    tuner = tune.Tuner(trainable, param_space=param_space, run_config=run_config,
                       tune_config=tune_config or tune.TuneConfig())
    return tuner.fit()


CANNOT_RUN = "cannot_run"  # the one key of a trial's result when its run failed for a reason retrying cannot fix


def cannot_run(result) -> Optional[str]:
    """Why a trial's run could not run (a `TltfError` on the worker: weights, data, recipe), or None."""
    return (result or {}).get(CANNOT_RUN)


def fit_trial(config: dict, shared: dict) -> None:
    """One trial: `tltf.fit` of the recipe with the trial's overrides, logging into the run's log file.

    `config` holds `run` (`name`, `overrides`) for a study's runs, or sampled `{recipe key: value}` entries for
    a search (the run then takes the trial's id as its name). `shared` holds `recipe`, `runs_dir`, `logs_dir`,
    `cwd`, `cpus`, `search` (a search: each epoch's validation AUC goes to Tune's scheduler, test metrics stay
    out of Tune's results) and, for a search, `overrides` (the command's `--set`s, before the sampled values).
    """
    from ray import tune

    import tltf

    os.chdir(shared["cwd"])  # the recipe's relative paths mean what they meant where the command ran
    _limit_threads(shared["cpus"])
    run = config.get("run") or {"name": tune.get_context().get_trial_id(),
                                "overrides": shared["overrides"] + [override_text(k, v) for k, v in config.items()]}
    log_path = Path(shared["logs_dir"]) / f"{run['name']}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    callbacks = [_epoch_reporter()] if shared["search"] else []
    with open(log_path, "a") as log, _logging_into(log):
        try:
            recipe = tltf.load_recipe(shared["recipe"], list(run["overrides"]))
            result = tltf.fit(recipe, Path(shared["runs_dir"]) / run["name"], verbose=2, callbacks=callbacks)
        except TltfError as error:
            # The user's weights, data or recipe as this worker sees them: another attempt would fail the same
            # way, so the trial ends here (a result, not an exception Tune would retry) with the reason.
            logger.error(str(error))
            tune.report({CANNOT_RUN: str(error)})
            return
    final = {"val_auc": result.metrics["val"]["auc"], "run_dir": str(result.run_dir), "final": True}
    if not shared["search"]:  # a search chooses by validation; its results never carry test metrics
        final["test_auc"] = result.metrics["test"]["auc"]
    tune.report(final)


def _limit_threads(cpus: float) -> None:
    """TensorFlow's thread pools sized to the CPUs the trial reserved, so trials side by side don't fight."""
    import tensorflow as tf

    threads = max(1, int(cpus))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:
        pass  # TensorFlow already ran in this worker (a reused process): its pools stay


@contextlib.contextmanager
def _logging_into(log):
    """The run's progress (the tltf logger's console lines and Keras' epoch lines) goes to its log file, and so
    does the traceback of a run that fails."""
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    except BaseException:
        traceback.print_exc(file=log)
        raise
    finally:
        log.flush()


def _epoch_reporter():
    """A Keras callback sending each epoch's validation AUC to Tune, whose scheduler stops unpromising trials."""
    import keras
    from ray import tune

    class EpochReporter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs and "val_auc" in logs:
                tune.report({"val_auc": float(logs["val_auc"]), "final": False})

    return EpochReporter()
