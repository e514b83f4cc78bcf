"""The backbone-family registry: each family is one module that says how it is recognised and how its layers
group, and nothing outside those modules names a family."""

import ast
import re
from pathlib import Path

import keras
import pytest

from tltf.models import families
from tltf.models.backbones import backbone_names, get_backbone_spec
from tltf.models.blocks import BlockMap, layer_units
from tltf.models.families.base import STEM, TOP, Family, register_family

TLTF = Path(__file__).resolve().parents[1] / "tltf"


def test_every_backbone_a_family_lists_is_registered_under_that_family():
    for family in families.families():
        for spec in family.backbones:
            assert get_backbone_spec(spec.name) is spec and spec.family == family.name
    listed = {spec.name for family in families.families() for spec in family.backbones}
    assert listed == set(backbone_names()) - {"hub", "tiny_test"}  # hub loads presets; tiny_test is conftest's


@pytest.mark.parametrize("network_name, family", [
    ("mobilenetv2_0.35_96", "mobilenet_v2"), ("resnet50", "resnet"), ("resnet50v2", "resnet_v2"),
    ("efficientnetb0", "efficientnet"), ("efficientnetv2-b0", "efficientnet_v2"), ("densenet121", "densenet"),
    ("hub_vit", "hub_vit"), ("my_own_net", None),
])
def test_a_network_is_recognised_by_the_longest_prefix_that_starts_its_name(network_name, family):
    found = families.for_network_name(network_name)
    assert (found.name if found else None) == family


def test_kerashub_classes_are_looked_up_in_the_registry():
    assert families.for_hub_class("DINOV2Backbone").name == "hub_dinov2"
    assert families.for_hub_class("MiTBackbone") is None
    assert {"CLIPBackbone", "CLIPVisionEncoder", "DINOV2Backbone", "ResNetBackbone",
            "ViTBackbone"} <= set(families.hub_class_names())
    assert families.get("no such family") is families.NUMBERED


def test_a_new_family_is_one_registration_and_block_maps_follow_it():
    """A family of `stage<S>_unit<U>_` layers, known to nothing else in tltf, registered the way a family
    module does it: block maps of a model whose backbone network its prefix names group by its matcher."""

    def matcher(name):
        match = re.match(r"^(stage(\d+))_unit(\d+)_", name)
        if match:
            return f"{match.group(1)}_unit{match.group(3)}", match.group(1)
        return (STEM, STEM) if name.startswith("entry_") else None

    register_family(Family("toy_units", matcher, network_prefixes=("toynet",)))
    try:
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(2, 3, padding="same", name="entry_conv")(inputs)
        for stage, unit in ((1, 1), (1, 2), (2, 1)):
            x = keras.layers.Conv2D(2, 3, padding="same", name=f"stage{stage}_unit{unit}_conv")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        network = keras.Model(inputs, x, name="toynet_small")
        outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(network(inputs))
        model = keras.Model(inputs, outputs)
        assert BlockMap.of(model, "block").names == ["stem", "stage1_unit1", "stage1_unit2", "stage2_unit1", "head"]
        assert BlockMap.of(model, "stage").names == ["stem", "stage1", "stage2", "head"]
        assert layer_units(["entry_conv", "stage1_unit1_conv", "pool"], "toy_units")[-1] == (TOP, TOP)
    finally:
        families.base._FAMILIES.pop("toy_units")


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module's code: not its docstrings, not its comments."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_module_outside_the_family_modules_names_a_family_in_its_code():
    names = {family.name for family in families.families()}
    names |= {spec.name for family in families.families() for spec in family.backbones}
    names |= {cls for family in families.families() for cls in (*family.hub_classes, *family.hub_towers)}
    names |= {prefix for family in families.families() for prefix in family.network_prefixes}
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b")
    found = {}
    for path in TLTF.rglob("*.py"):
        if "families" in path.relative_to(TLTF).parts:
            continue
        hits = sorted({match for text in _code_strings(path) for match in pattern.findall(text)})
        if hits:
            found[str(path.relative_to(TLTF))] = hits
    assert found == {}
