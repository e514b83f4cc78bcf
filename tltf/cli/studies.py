"""`tltf study` and `tltf tune`: many runs on Ray Tune (registered on the `tltf` group by `tltf.cli.main`)."""

from __future__ import annotations

import math
import sys

import click

from tltf.cli.common import recipe_overrides, user_errors

ADDRESS_HELP = ("An existing Ray cluster to run on (e.g. ray://head:10001; auto: the cluster this machine last "
                "started or joined with `ray start`); default: a fresh local Ray started for this command, whatever "
                "clusters the machine remembers. Paths in the recipe must exist on every node.")
SETUP_HELP = ("MODULE.FUNCTION that every Ray worker runs before its runs, e.g. one that registers your own "
              "backbones (tltf.models.register_backbone); the module must be importable on every node.")


@click.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="The study folder (default studies/<name>/). Rerunning into it skips finished runs and "
                   "continues interrupted ones.")
@recipe_overrides
@click.option("--address", default=None, metavar="ADDR", help=ADDRESS_HELP)
@click.option("--setup", default=None, metavar="MODULE.FUNCTION", help=SETUP_HELP)
@user_errors
def study(study_file, out, overrides, address, setup):
    """Run every arm x grid point x seed of STUDY_FILE, then compare the arms, paired.

    Each run is an ordinary tltf run (OUT/runs/<arm>-<grid values>-seed=<seed>/,
    its log in OUT/logs/), executed as a Ray Tune trial; a run whose worker
    dies is retried from its last saved epoch. The console shows each run's
    start and end with the counts done / running / queued and an ETA.

    Writes OUT/results.csv (one row per run: arm, grid values, seed, wall
    time, every metric), OUT/study.md (test AUC per arm and grid point, the
    paired table), OUT/paired.json, and the plots: data_efficiency.png (test
    AUC against data.train_fraction or data.train_per_class, mean and 95%
    band over seeds) and test_auc_by_arm.png. The first arm is the reference
    of the paired table: per seed, DeLong's test on the same test images;
    over seeds, the mean difference with a 95% t-interval. Ctrl-C stops the
    study after writing what has finished. Exit code 1 when a run failed after
    its retries or the study was stopped: the same command continues it.
    --set applies to every run, before its arm's, grid point's and seed's
    values (e.g. --set data.root=../shared/data for local data).
    """
    from tltf.study import run_study

    result = run_study(study_file, out, address, setup, list(overrides))
    for entry in result.paired:
        low, high = entry["ci"]
        interval = "" if math.isnan(low) else f" [{low:+.4f}, {high:+.4f}]"
        where = " ".join(f"{key}={value}" for key, value in entry["point"].items())
        click.echo(f"{where} {entry['arm']} - {entry['reference']}: {entry['mean_difference']:+.4f}{interval} "
                   f"(test AUC, mean over {entry['seeds']} seed{'s' if entry['seeds'] != 1 else ''}, 95% CI)")
    click.echo(f"\nstudy: {result.study_dir / 'study.md'}")
    if result.failed:
        click.echo(f"tltf: {len(result.failed)} runs failed: {', '.join(result.failed)}", err=True)
    if result.unfinished:
        click.echo(f"tltf: {len(result.unfinished)} runs are not finished; run the same command again to continue "
                   "them", err=True)
        sys.exit(1)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--space", "space_file", required=True, type=click.Path(dir_okay=False),
              help="YAML: space (recipe key -> {loguniform|uniform|int: [low, high]} or {choice: [...]}), "
                   "resources, grace_epochs, reduction_factor, max_concurrent, seed, start_from_recipe, "
                   "confirm ({top: N, seeds: [...]}).")
@click.option("--trials", type=click.IntRange(min=1), required=True, help="How many configurations to try.")
@recipe_overrides
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="The search folder (default tunes/<recipe name>/); must not hold a finished search.")
@click.option("--address", default=None, metavar="ADDR", help=ADDRESS_HELP)
@click.option("--setup", default=None, metavar="MODULE.FUNCTION", help=SETUP_HELP)
@user_errors
def tune(recipe, space_file, trials, overrides, out, address, setup):
    """Search RECIPE's hyperparameters for the best validation AUC.

    Optuna's TPE proposes each trial from the results so far; ASHA stops
    trials whose validation AUC falls behind after grace_epochs. Test metrics
    are never used. Writes OUT/best.yaml (the best trial's recipe, which
    `tltf fit` runs as it is), OUT/trials.csv (each trial's values, status,
    epochs and validation AUC) and every trial's run under OUT/runs/.

    With start_from_recipe, the first trial is RECIPE's own values. With
    confirm, the best trials and RECIPE's own values run again at other
    seeds (OUT/confirmation.csv) and the best mean validation AUC over them
    chooses best.yaml: one run's validation AUC moves with its seed.
    """
    from tltf.study.search import run_search

    result = run_search(recipe, space_file, trials, out, list(overrides), address, setup)
    click.echo(f"\ntrials: {result.out / 'trials.csv'}")
    if result.best_recipe is None:
        click.echo("tltf: no trial finished", err=True)
        sys.exit(1)
    if result.confirmation_seeds is None:
        click.echo(f"best: {result.best_recipe} (val AUC {result.best_val_auc:.4f})")
        return
    score = f"mean val AUC over seeds {', '.join(map(str, result.confirmation_seeds))}: {result.best_val_auc:.4f}"
    if result.best_is_recipe:
        click.echo(f"best: the recipe's own values ({score}); the search found nothing better: {result.best_recipe}")
    elif result.recipe_val_auc is not None:
        click.echo(f"best: {result.best_recipe} ({score}; the recipe's own values {result.recipe_val_auc:.4f})")
    else:
        click.echo(f"best: {result.best_recipe} ({score})")
