import re

import pytest

import tltf
from tltf.models.blocks import HEAD, BlockMap, group_units, layer_units

# family golden: (backbone, unit) → (unit count incl. head, first unit, last backbone unit,
#                                    first parametrised layer, last parametrised backbone layer)
GOLDEN = {
    ("resnet50", "block"): (18, "stem", "conv5_block3", "conv1_conv", "conv5_block3_3_bn"),
    ("resnet50", "stage"): (6, "stem", "conv5", "conv1_conv", "conv5_block3_3_bn"),
    ("resnet50_v2", "block"): (19, "stem", "top", "conv1_conv", "post_bn"),
    ("mobilenet_v2", "block"): (20, "stem", "top", "Conv1", "Conv_1_bn"),
    ("mobilenet_v2", "stage"): (10, "stem", "top", "Conv1", "Conv_1_bn"),
    ("mobilenet_v3_small", "block"): (14, "stem", "top", "conv", "conv_1_bn"),
    ("efficientnet_b0", "block"): (19, "stem", "top", "stem_conv", "top_bn"),
    ("efficientnet_b0", "stage"): (10, "stem", "top", "stem_conv", "top_bn"),
    ("efficientnet_v2_b0", "stage"): (9, "stem", "top", "stem_conv", "top_bn"),
    ("convnext_tiny", "block"): (24, "stem", "top", "convnext_tiny_stem", "layer_normalization"),
    ("convnext_tiny", "stage"): (7, "stem", "top", "convnext_tiny_stem", "layer_normalization"),
    ("densenet121", "block"): (64, "stem", "top", "conv1_conv", "bn"),  # 58 dense layers, 3 transitions
    ("densenet121", "stage"): (10, "stem", "top", "conv1_conv", "bn"),
}


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = tltf.build_model(name, image_size=32, weights=None)
        return cache[name]

    return get


def parametrised(block_map, model, unit_name):
    # Keras numbers auto-named layers per process (layer_normalization_1 once a second ConvNeXt exists).
    return [re.sub(r"_\d+$", "", layer.name) for layer in block_map.layers_of(model, unit_name)
            if layer.trainable_weights]


@pytest.mark.parametrize("backbone, unit", sorted(GOLDEN))
def test_block_map_golden(models, backbone, unit):
    model = models(backbone)
    block_map = BlockMap.of(model, unit)
    count, first, last, first_layer, last_layer = GOLDEN[(backbone, unit)]
    names = block_map.names
    assert (len(names), names[0], names[-2], names[-1]) == (count, first, last, HEAD)
    assert parametrised(block_map, model, names[0])[0] == first_layer
    assert parametrised(block_map, model, names[-2])[-1] == last_layer


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "densenet121"])
def test_every_variable_in_exactly_one_unit(models, backbone):
    model = models(backbone)
    block_map = BlockMap.of(model, "block")
    assigned = [id(v) for variables in block_map.variables.values() for v in variables]
    assert len(assigned) == len(set(assigned))
    assert set(assigned) == {id(v) for v in model.weights}


def test_batch_norm_goes_with_its_block(models):
    block_map = BlockMap.of(models("resnet50"), "block")
    unit_of = block_map.path_to_unit()
    assert unit_of["conv3_block2_1_bn/moving_mean"] == unit_of["conv3_block2_1_conv/kernel"] == "conv3_block2"
    assert unit_of["conv1_bn/gamma"] == "stem"
    assert unit_of["logit/kernel"] == HEAD


def test_layer_units_by_position_and_merge_layers():
    names = ["conv", "conv_bn", "activation", "expanded_conv_depthwise", "expanded_conv_add",
             "expanded_conv_1_expand", "conv_1", "conv_1_bn"]
    assert layer_units(names, "mobilenet_v3") == [
        ("stem", "stem"), ("stem", "stem"), ("stem", "stem"), ("block_0", "block_0"), ("block_0", "block_0"),
        ("block_1", "block_1"), ("top", "top"), ("top", "top")]
    units = group_units(["conv1_conv", "conv2_block1_1_conv", "conv2_block1_add", "conv3_block1_1_conv"], "resnet")
    assert [(u.name, u.stage, u.layers) for u in units] == [
        ("stem", "stem", ("conv1_conv",)),
        ("conv2_block1", "conv2", ("conv2_block1_1_conv", "conv2_block1_add")),
        ("conv3_block1", "conv3", ("conv3_block1_1_conv",))]
