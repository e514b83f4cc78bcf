"""A study file: one recipe, named arms of overrides, a grid, seeds; and the runs it expands into.

Example (`studies/scratch-vs-transfer.yaml`):

    name: scratch-vs-transfer
    recipe: ../recipes/pneumonia-mobilenet.yaml   # relative to the study file
    arms:                                         # named override sets, like --set; the first is the reference
      transfer: {}
      scratch: {model.weights: none}
    grid:
      data.train_fraction: [0.01, 0.1, 1.0]
    seeds: [0, 1, 2]                               # train.seed; data.subsample_seed stays, so arms share images
    resources: {cpus: 2, gpus: 0}                 # per run
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from tltf.config import Section
from tltf.errors import TltfError


class Resources(Section):
    """What one run reserves on the Ray cluster."""

    cpus: float = Field(1, gt=0, description="CPUs per run; local Ray runs floor(machine CPUs / cpus) at once.")
    gpus: float = Field(0, ge=0, description="GPUs per run (fractions share a GPU).")


class StudySpec(Section):
    """What a study runs: every arm at every grid point with every seed, each an ordinary tltf run.

    Args:
        name: the study's name; its folder is `studies/<name>/` by default.
        recipe: the recipe every run starts from, relative to the study file.
        arms: arm name → `{recipe key: value}` overrides; the first arm is the reference of the paired table.
        grid: recipe key → values; every combination is a grid point.
        seeds: training seeds (`train.seed`); runs with the same seed are paired across arms.
        resources: per run.
        max_failures: how often a run that dies (a killed worker, a lost node) is retried; it continues
            from its last saved epoch.
        ensemble_seeds: also average each arm and grid point's seeds into an ensemble (`tltf ensemble`) and
            compare it with its members.
    """

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    recipe: str
    arms: dict[str, dict[str, Any]] = Field(..., min_length=1)
    grid: dict[str, list] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    resources: Resources = Field(default_factory=Resources)
    max_failures: int = Field(2, ge=0)
    ensemble_seeds: bool = False

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, arms):
        for arm, overrides in arms.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", arm):
                raise ValueError(f"{arm!r}: arm names are letters, digits, _ and -")
            if overrides is None:
                arms[arm] = {}
        return arms

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid):
        for key, values in grid.items():
            if not values:
                raise ValueError(f"{key}: a grid key needs at least one value")
        return grid


@dataclasses.dataclass(frozen=True)
class StudyRun:
    """One run of a study: an arm at a grid point with a seed.

    Args:
        arm: the arm's name.
        point: grid key → value at this point.
        seed: the training seed.
        overrides: `KEY=VALUE` strings for `tltf.load_recipe` (arm, then grid point, then seed).
        name: the run's folder name under `<study>/runs/`.
    """

    arm: str
    point: tuple
    seed: int
    overrides: tuple
    name: str


def load_study(path) -> tuple[StudySpec, Path]:
    """Reads and validates a study file; returns it and the recipe's absolute path.

    Raises:
        TltfError: one line naming the file and key at fault.
    """
    path = Path(path)
    spec = read_typed_yaml(path, StudySpec, "study")
    recipe = (path.parent / Path(spec.recipe).expanduser()).resolve()
    if not recipe.is_file():
        raise TltfError(f"{path}: recipe: {recipe} not found (the path is relative to the study file)")
    return spec, recipe


def read_typed_yaml(path: Path, model, kind: str):
    """A YAML mapping validated as `model`; any problem is one line naming the file and key."""
    if not path.is_file():
        raise TltfError(f"{path}: {kind} file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise TltfError(f"{path}: not valid YAML: {getattr(error, 'problem', None) or error}") from None
    if not isinstance(raw, dict):
        raise TltfError(f"{path}: a {kind} file is a YAML mapping with {', '.join(model.model_fields)}")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise TltfError(validation_line(path, error, model)) from None


def validation_line(path: Path, error: ValidationError, model) -> str:
    """The first problem, as `FILE: key: message` (an unknown top-level key with the closest known one)."""
    from tltf.recipe.load import did_you_mean

    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
    if problem["type"] == "extra_forbidden" and len(problem["loc"]) == 1:
        return f"{path}: {where}: unknown key{did_you_mean(where, list(model.model_fields))}"
    return f"{path}: {where}: {problem['msg'].removeprefix('Value error, ')}"


def expand_runs(spec: StudySpec) -> list[StudyRun]:
    """Every arm × grid point × seed: grid point by grid point, then seed by seed, every arm, so a study stopped
    early has complete paired comparisons at its first grid points."""
    keys = list(spec.grid)
    runs = []
    for values in itertools.product(*(spec.grid[key] for key in keys)):
        point = tuple(zip(keys, values))
        for seed in spec.seeds:
            for arm, arm_overrides in spec.arms.items():
                overrides = [override_text(k, v) for k, v in arm_overrides.items()]
                overrides += [override_text(k, v) for k, v in point] + [f"train.seed={seed}"]
                runs.append(StudyRun(arm, point, seed, tuple(overrides), run_name(arm, point, seed)))
    return runs


def run_name(arm: str, point: tuple, seed: int) -> str:
    """`transfer-train_fraction=0.05-seed=1`: the arm, each grid value under its last key part, the seed."""
    parts = [arm] + [f"{key.rsplit('.', 1)[-1]}={_folder_safe(value)}" for key, value in point] + [f"seed={seed}"]
    return "-".join(parts)


def check_recipes(spec: StudySpec, recipe_path: Path, runs: list[StudyRun]) -> dict:
    """Every run's validated recipe by run name, checked before anything runs, so a typo in an arm fails in one
    line, not in a trial."""
    from tltf.recipe import load_recipe

    recipes = {}
    for run in runs:
        try:
            recipes[run.name] = load_recipe(recipe_path, list(run.overrides))
        except TltfError as error:
            raise TltfError(f"study {spec.name}: run {run.name}: {error}") from None
    return recipes


def override_text(key: str, value) -> str:
    """`key=value` as `--set` takes it (the value as YAML; numpy scalars from a search algorithm as numbers)."""
    if hasattr(value, "item"):
        value = value.item()
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def _folder_safe(value) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(value))
