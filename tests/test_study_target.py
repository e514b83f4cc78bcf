"""An adaptation study's target-domain table: each method against source-only, paired by seed."""

import math

import numpy as np
import pytest

from tltf.study.report import study_markdown
from tltf.study.spec import StudySpec, expand_runs
from tltf.study.statistics import target_differences


def adaptation_rows():
    """Two seeds; adabn carries the source-only baseline (the model before AdaBN), dann does not train one."""
    point = {"train.deterministic": True}
    return [
        {"run": "adabn-0", "arm": "adabn", **point, "seed": 0, "target.accuracy": 0.70, "target.auc": 0.90,
         "target_source_only.accuracy": 0.60, "target_source_only.auc": 0.85},
        {"run": "dann-0", "arm": "dann", **point, "seed": 0, "target.accuracy": 0.55, "target.auc": 0.80},
        {"run": "adabn-1", "arm": "adabn", **point, "seed": 1, "target.accuracy": 0.74, "target.auc": 0.92,
         "target_source_only.accuracy": 0.62, "target_source_only.auc": 0.87},
        {"run": "dann-1", "arm": "dann", **point, "seed": 1, "target.accuracy": 0.66, "target.auc": 0.88},
    ]


def adaptation_spec():
    return StudySpec(name="adaptation", recipe="recipe.yaml",
                     arms={"adabn": {"adaptation.method": "adabn"}, "dann": {"adaptation.compare_source_only": False}},
                     grid={"train.deterministic": [True]}, seeds=[0, 1])


def test_each_method_is_paired_with_the_source_only_model_of_its_seed():
    spec = adaptation_spec()
    table = {entry["arm"]: entry for entry in target_differences(adaptation_rows(), expand_runs(spec))}
    assert list(table) == ["source_only", "adabn", "dann"]
    assert table["source_only"]["accuracy"] == pytest.approx([0.61, math.sqrt(0.0002)])
    assert table["source_only"]["auc"][0] == pytest.approx(0.86)
    # dann trained no baseline of its own: adabn's of the same seed stands in
    assert [(s["seed"], s["source_only"]) for s in table["dann"]["per_seed"]] == [(0, 0.60), (1, 0.62)]
    differences = np.array([0.55 - 0.60, 0.66 - 0.62])  # -0.05, +0.04
    half = 12.706204736 * math.sqrt(((differences - differences.mean()) ** 2).sum() / 1) / math.sqrt(2)
    assert table["dann"]["mean_difference"] == pytest.approx(-0.005)
    assert table["dann"]["ci"] == pytest.approx([-0.005 - half, -0.005 + half], rel=1e-6)
    assert table["adabn"]["mean_difference"] == pytest.approx(0.11)
    assert table["adabn"]["accuracy"][0] == pytest.approx(0.72)


def test_a_run_without_a_baseline_at_its_seed_is_listed_but_not_paired():
    spec = adaptation_spec()
    rows = [row for row in adaptation_rows() if row["run"] != "adabn-1"]
    table = {entry["arm"]: entry for entry in target_differences(rows, expand_runs(spec))}
    assert table["dann"]["per_seed"][1] == {"seed": 1, "accuracy": 0.66, "source_only": None}
    assert table["dann"]["paired_seeds"] == 1 and math.isnan(table["dann"]["ci"][0])
    assert table["source_only"]["seeds"] == [0]


def test_studies_without_a_labelled_target_have_no_target_table():
    spec = adaptation_spec()
    rows = [{k: v for k, v in row.items() if not k.startswith("target")} for row in adaptation_rows()]
    assert target_differences(rows, expand_runs(spec)) == []
    assert "## Target domain" not in study_markdown(spec, expand_runs(spec), [], [], [])


def test_the_study_report_shows_the_target_table():
    spec = adaptation_spec()
    runs = expand_runs(spec)
    rows = adaptation_rows()
    text = study_markdown(spec, runs, [], [], [], target_differences(rows, runs))
    section = text.split("## Target domain", 1)[1]
    assert "| True | source_only | 0.610 ± 0.014 (2) | 0.860 ± 0.014 (2) |  |" in section
    assert "| True | dann | 0.605 ± 0.078 (2) | 0.840 ± 0.057 (2) | -0.005 [" in section
    assert "0: 0.550 (0.600), 1: 0.660 (0.620)" in section
