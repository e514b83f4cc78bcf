"""Live progress of a study or a search on the driver: one line per started, finished or retried run."""

from __future__ import annotations

import statistics
import time

from ray import tune

from tltf.log import logger
from tltf.study.executor import cannot_run


class TrialProgress(tune.Callback):
    """Logs each run's start and end with the counts done / running / queued, the best so far and an ETA.

    The ETA is the median duration of the runs finished so far, times the runs left, divided by how many
    run side by side.

    Args:
        total: runs in the study (finished earlier ones included).
        done: runs already finished before this invocation.
        slots: how many runs the cluster holds at once.
        max_failures: retries per run, for the retry message.
        show_test: print each run's test AUC (a study); a search shows validation only, as it chooses by it.
        durations: seconds of runs finished before, so a continued study's ETA starts from them.
        best: `(run name, validation AUC)` of the best run finished before.
    """

    def __init__(self, total: int, done: int, slots: int, max_failures: int, show_test: bool = True,
                 durations=(), best=None):
        self.total, self.done, self.slots, self.max_failures = total, done, max(1, slots), max_failures
        self.show_test = show_test
        self.started, self.durations, self.best = {}, list(durations), best

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.monotonic()
        logger.info(f"{self._counts(trials, trial)} started {run_name(trial)}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        reason = cannot_run(trial.last_result)
        if reason:
            self.started.pop(trial.trial_id, None)
            logger.error(f"{run_name(trial)} cannot run, not retried (another attempt would fail the same way): "
                         f"{reason}")
            return
        self.done += 1
        seconds = time.monotonic() - self.started.pop(trial.trial_id, time.monotonic())
        self.durations.append(seconds)
        result = trial.last_result or {}
        line = f"{self._counts(trials, trial)} finished {run_name(trial)} in {_duration(seconds)}"
        if result.get("final"):
            line += f": val AUC {result['val_auc']:.4f}"
            if self.show_test:
                line += f", test AUC {result['test_auc']:.4f}"
            if self.best is None or result["val_auc"] > self.best[1]:
                self.best = (run_name(trial), result["val_auc"])
        elif "val_auc" in result:
            line += f" (stopped early at val AUC {result['val_auc']:.4f})"
        if self.best:
            line += f"; best val AUC so far {self.best[1]:.4f} ({self.best[0]})"
        logger.info(line + self._eta())

    def on_trial_recover(self, iteration, trials, trial, **info):
        logger.warning(f"{run_name(trial)} died (failure {trial.num_failures} of {self.max_failures} allowed); "
                       "retrying, from its last saved epoch")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.started.pop(trial.trial_id, None)
        logger.error(f"{run_name(trial)} failed after {trial.num_failures} attempts; its log says why")

    def _counts(self, trials, changing) -> str:
        """The counts after `changing` has started or finished (Tune updates its status after the callback)."""
        others = [t for t in trials if t is not changing]
        running = sum(t.status == "RUNNING" for t in others) + (changing.trial_id in self.started)
        queued = sum(t.status == "PENDING" for t in others)
        return f"[{self.done}/{self.total} done, {running} running, {queued} queued]"

    def _eta(self) -> str:
        left = self.total - self.done
        if not self.durations or left <= 0:
            return ""
        return f"; ETA {_duration(statistics.median(self.durations) * left / self.slots)}"


def run_name(trial) -> str:
    run = trial.config.get("run")
    return run["name"] if run else f"trial {trial.trial_id}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")
