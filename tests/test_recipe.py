from pathlib import Path

import pytest
import yaml

from tltf.errors import RecipeError
from tltf.recipe import apply_override, load_recipe, validate_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
BASE = {"data": {"source": "npz", "path": "x.npz"}}


def error_of(raw) -> str:
    with pytest.raises(RecipeError) as info:
        validate_recipe(raw, source="r.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    assert recipe.data.source in ("medmnist", "npz", "directory")  # what ../shared and the medmnist cache hold


def test_defaults_are_filled_in():
    recipe = validate_recipe(BASE)
    assert (recipe.model.backbone, recipe.model.weights, recipe.model.bn) == ("resnet50", "imagenet", "frozen")
    assert recipe.model.bn_momentum is None  # the pretrained backbone's own
    # The rate and the budget are chosen with the data (tltf.train.phases.base_lr, budget_epochs).
    assert (recipe.train.strategy, recipe.train.optimizer, recipe.train.lr) == ("fine_tune", "adamw", None)
    assert (recipe.train.epochs, recipe.train.min_steps, recipe.train.max_epochs) == ("auto", 1000, 100)
    resolved = yaml.safe_load(recipe.to_yaml())
    assert list(resolved["data"])[0] == "source"
    assert resolved["model"]["bn"] == "frozen"
    assert validate_recipe(resolved).model_dump() == recipe.model_dump()


@pytest.mark.parametrize("weights", [None, "none", "None"])
def test_no_weights_spellings_and_bn_default(weights):
    recipe = validate_recipe({**BASE, "model": {"weights": weights}})
    assert recipe.model.weights is None
    assert recipe.model.bn == "train"  # frozen BN without pretrained statistics predicts a constant
    assert recipe.model.bn_momentum == 0.9  # and slow moving averages never settle in a few hundred steps


def test_explicit_bn_wins_over_default():
    assert validate_recipe({**BASE, "model": {"weights": None, "bn": "frozen"}}).model.bn == "frozen"


def test_unknown_backbone_suggests_the_close_name():
    assert error_of({**BASE, "model": {"backbone": "resnet5"}}) == (
        "r.yaml: model.backbone: unknown backbone 'resnet5'; did you mean 'resnet50'?"
    )


def test_unknown_key_is_an_error_with_suggestion():
    assert error_of({**BASE, "model": {"backbon": "resnet50"}}) == (
        "r.yaml: model.backbon: unknown key; did you mean 'backbone'?"
    )
    assert "data.pth: unknown key; did you mean 'path'?" in error_of({"data": {"source": "npz", "path": "a", "pth": 1}})
    assert "trian: unknown key; did you mean 'train'?" in error_of({**BASE, "trian": {}})


def test_source_specific_errors_use_the_users_path():
    assert error_of({"data": {"source": "npz"}}) == "r.yaml: data.path: required key is missing"
    assert "data.source: unknown data source 'folder'" in error_of({"data": {"source": "folder"}})
    assert error_of({"data": {"source": "csv", "path": "a.csv", "label_col": "y"}}).startswith(
        "r.yaml: data.label_col: unknown key; did you mean 'label_column'?"
    )


def test_type_and_choice_errors_name_the_key():
    assert error_of({**BASE, "train": {"strategy": "finetune"}}).startswith("r.yaml: train.strategy: expected ")
    message = error_of({**BASE, "train": {"epochs": "many"}})
    assert message.startswith("r.yaml: train.epochs: ") and "'many'" in message
    assert error_of({**BASE, "train": {"batch_size": 0}}).startswith("r.yaml: train.batch_size: ")


def test_image_size_below_backbone_minimum():
    message = error_of({"data": {"source": "npz", "path": "x", "image_size": 16}, "model": {"backbone": "resnet50"}})
    assert message.startswith("r.yaml: data.image_size: 16 px is smaller than the 32 px that resnet50 accepts")


def test_alpha_only_for_mobilenets():
    assert error_of({**BASE, "model": {"backbone": "resnet50", "alpha": 0.5}}).startswith("r.yaml: model.alpha:")


def test_head_warmup_must_leave_fine_tuning_epochs():
    message = error_of({**BASE, "train": {"strategy": "warmup_then_finetune", "epochs": 3,
                                          "head_warmup": {"epochs": 3}}})
    assert "train.head_warmup.epochs: 3 leaves no fine-tuning epoch out of train.epochs=3" in message
    assert "e.g. train.head_warmup.epochs=2" in message
    # a default the recipe never wrote is named as one
    message = error_of({**BASE, "train": {"strategy": "warmup_then_finetune", "epochs": 2}})
    assert "train.head_warmup.epochs: 3 (the default, which the recipe does not set) leaves no" in message


def test_overrides_set_nested_values_as_yaml(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(BASE))
    recipe = load_recipe(path, ["train.epochs=3", "model.weights=none", "train.early_stopping.patience=2",
                                "data.class_names=[a, b]"])
    assert recipe.train.epochs == 3 and recipe.model.weights is None
    assert recipe.train.early_stopping.patience == 2
    assert recipe.data.class_names == ["a", "b"]


def test_bad_overrides():
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        apply_override({}, "train.epochs")
    with pytest.raises(RecipeError, match="train.epochs is a value, not a section"):
        apply_override({"train": {"epochs": 3}}, "train.epochs.x=1")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  source: npz\n  path: [unclosed\n")
    with pytest.raises(RecipeError, match=r"broken.yaml:\d+: not valid YAML"):
        load_recipe(path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_set_can_switch_the_data_source(tmp_path):
    """--set data.source=npz --set data.path=X on a medmnist recipe: medmnist's own keys are dropped."""
    shipped = Path(__file__).resolve().parents[1] / "recipes" / "pneumonia-mobilenet.yaml"
    recipe = load_recipe(shipped, ["data.source=npz", f"data.path={tmp_path / 'x.npz'}"])
    assert recipe.data.source == "npz" and recipe.data.path == tmp_path / "x.npz"
    assert recipe.data.image_size == 96 and recipe.data.class_names == ["normal", "pneumonia"]  # shared keys stay
    with pytest.raises(RecipeError, match="data.name: unknown key"):  # a key the user set is never dropped
        load_recipe(shipped, ["data.source=npz", "data.path=x.npz", "data.name=pneumoniamnist"])
