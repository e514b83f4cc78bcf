"""A study's ensembles of seeds (`ensemble_seeds: true`): per arm and grid point, its seeds' runs averaged by
`tltf ensemble` into `<study>/ensembles/<arm>-<grid values>-seeds/`, and compared with each member."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tltf.errors import TltfError
from tltf.log import logger
from tltf.study.results import is_finished, run_dir
from tltf.study.statistics import grid_points

ENSEMBLES_FOLDER = "ensembles"
ENSEMBLES_FILE = "ensembles.csv"


def ensemble_seeds(study_dir: Path, spec, runs: list) -> list[dict]:
    """Makes (or reuses) each arm and grid point's ensemble of its finished seeds (two or more, all finished);
    returns one row per ensemble: `arm`, grid values, `members`, the ensemble's `test.auc`, its members' mean
    and range, and the mean of the paired differences ensemble − member (DeLong or paired bootstrap)."""
    from tltf.ensemble import make_ensemble
    from tltf.evaluate import compare_runs

    rows = []
    for point in grid_points(runs):
        for arm in spec.arms:
            members = [run for run in runs if run.arm == arm and run.point == point]
            paths = [run_dir(study_dir, run) for run in members]
            if len(paths) < 2 or not all(is_finished(path) for path in paths):
                continue
            name = members[0].name.rsplit("-seed=", 1)[0] + "-seeds"
            target = Path(study_dir) / ENSEMBLES_FOLDER / name
            if not is_finished(target):
                try:
                    make_ensemble(paths, target, name=name)
                except TltfError as problem:
                    logger.warning(f"no ensemble of {name}: {problem}")
                    continue
            against = [compare_runs([str(path), str(target)])[0] for path in paths]  # each member against it
            member_aucs = [pair["auc_a"] for pair in against]
            rows.append({"ensemble": name, "arm": arm, **dict(point), "members": len(paths),
                         "test.auc": against[0]["auc_b"], "members_test_auc_mean": float(np.mean(member_aucs)),
                         "members_test_auc_min": min(member_aucs), "members_test_auc_max": max(member_aucs),
                         "difference_mean": float(np.mean([pair["difference"] for pair in against])),
                         "members_beaten_p05": sum(pair["difference"] > 0 and pair["p"] < 0.05 for pair in against)})
    return rows


def ensembles_markdown(keys: list[str], rows: list[dict]) -> list[str]:
    """study.md's section on the ensembles of seeds."""
    if not rows:
        return []
    lines = ["## Ensembles of seeds", "",
             "Each arm and grid point's seeds averaged into one model (`tltf ensemble`, equal weights; under "
             f"`{ENSEMBLES_FOLDER}/`), against its own members on the same test images: the mean of the paired "
             "differences ensemble − member, and how many members it beats at p < 0.05. The ensemble costs its "
             "members' training time.", "",
             "| " + " | ".join(["arm", *keys, "members", "ensemble test AUC", "members: mean (min–max)",
                                "ensemble − member, mean", "members beaten (p < 0.05)"]) + " |",
             "|" + "---|" * (len(keys) + 6)]
    for row in rows:
        cells = [row["arm"], *[str(row[key]) for key in keys], str(row["members"]), f"{row['test.auc']:.4f}",
                 f"{row['members_test_auc_mean']:.4f} ({row['members_test_auc_min']:.4f}–"
                 f"{row['members_test_auc_max']:.4f})", f"{row['difference_mean']:+.4f}",
                 f"{row['members_beaten_p05']} of {row['members']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]

