"""The real pretrained backbones in ../shared/weights (KerasHub preset folders) through tltf's paths."""


import numpy as np
import pytest
from conftest import SHARED, needs_shared

keras_hub = pytest.importorskip("keras_hub", reason="KerasHub backbones need pip install 'tltf[hub]'")
pytest.importorskip("safetensors", reason="loading these preset folders needs safetensors: pip install 'tltf[hub]'")

import keras  # noqa: E402

import tltf  # noqa: E402
from tltf.models.anatomy import feature_extractor  # noqa: E402
from tltf.models.blocks import BlockMap  # noqa: E402

EFFICIENTNET = SHARED / "weights" / "efficientnet_lite0_imagenet"
VIT_S14 = SHARED / "weights" / "dinov2_small_imgfocus"
PACS_PHOTOS = SHARED / "data" / "pacs" / "photo"
SIZE = 64


@pytest.fixture(scope="module")
def efficientnet():
    keras.utils.set_random_seed(0)  # its head: the same whatever ran before in this process
    return tltf.build_model("hub", preset=str(EFFICIENTNET), image_size=SIZE, weights="imagenet", dropout=0.0)


@needs_shared(EFFICIENTNET)
def test_efficientnet_lite0_maps_into_its_blocks_and_stages(efficientnet):
    assert tltf.models.family_of(efficientnet) == "hub_efficientnet"
    blocks = BlockMap.of(efficientnet, "block")
    assert blocks.names == ["stem", "block1a", "block2a", "block2b", "block3a", "block3b", "block4a", "block4b",
                            "block4c", "block5a", "block5b", "block5c", "block6a", "block6b", "block6c", "block6d",
                            "block7a", "top", "head"]
    assert BlockMap.of(efficientnet, "stage").names == ["stem", *(f"block{i}" for i in range(1, 8)), "top", "head"]
    # every variable of the model in exactly one unit
    placed = [id(v) for variables in blocks.variables.values() for v in variables]
    assert len(placed) == len(set(placed)) == len(efficientnet.weights)


@needs_shared(EFFICIENTNET)
def test_efficientnet_features_are_kerashubs_own_on_the_presets_scaling(efficientnet):
    """tltf's model takes raw pixels; inside it, the preset's scaling (1/128, −127/128) and KerasHub's backbone."""
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3)).astype("float32")
    ours = keras.ops.convert_to_numpy(feature_extractor(efficientnet)(images))
    backbone = keras_hub.models.Backbone.from_preset(str(EFFICIENTNET))
    theirs = keras.ops.convert_to_numpy(keras.ops.mean(backbone(images / 128.0 - 127.0 / 128.0), axis=(1, 2)))
    assert ours.std() > 0.01
    assert np.abs(ours - theirs).max() < 1e-4
    unscaled = keras.ops.convert_to_numpy(keras.ops.mean(backbone(images), axis=(1, 2)))
    assert np.abs(ours - unscaled).max() > 0.1  # without the scaling the features would differ


@needs_shared(EFFICIENTNET)
@needs_shared(PACS_PHOTOS)
def test_efficientnet_features_tell_dogs_from_horses_far_above_chance():
    """A linear probe (5-fold) on the frozen ImageNet features of 60 PACS photos at their own 128 px: 0.93 here
    (0.63 at 64 px, 0.83 at 96 px, where the network sees too little of an animal)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from tltf.data.images import decode_files

    model = tltf.build_model("hub", preset=str(EFFICIENTNET), image_size=128, weights="imagenet", dropout=0.0)
    paths = [path for name in ("dog", "horse") for path in sorted((PACS_PHOTOS / name).iterdir())[:30]]
    features = feature_extractor(model).predict(decode_files(paths, 128), verbose=0)
    accuracy = cross_val_score(LogisticRegression(max_iter=3000), features, np.repeat([0, 1], 30), cv=5).mean()
    assert accuracy >= 0.85, accuracy


@needs_shared(EFFICIENTNET)
def test_without_safetensors_a_timm_preset_folder_says_what_to_install(tmp_path):
    """A fresh process where safetensors cannot be imported: `tltf validate` ends in one line naming the extra."""
    import subprocess
    import sys

    from conftest import write_recipe

    np.savez(tmp_path / "d.npz", **{f"{split}_{kind}": array for split in ("train", "val", "test") for kind, array in
                                    (("images", np.zeros((4, 8, 8), np.uint8)), ("labels", np.arange(4)[:, None] % 2))})
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(tmp_path / "d.npz"), "image_size": SIZE},
                          model={"backbone": "hub", "preset": str(EFFICIENTNET), "weights": "imagenet"})
    code = ("import sys; sys.modules['safetensors'] = None\n"
            "from tltf.cli.main import main\n"
            f"main(['validate', {str(recipe)!r}])")
    missing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert missing.returncode == 2, missing.stderr[-2000:]
    assert missing.stderr.strip().splitlines()[-1] == (
        f'tltf: error: model.preset: {EFFICIENTNET} holds safetensors weights and the safetensors package is not '
        'installed; pip install "tltf[hub]" (keras-hub 0.32, safetensors)')


@needs_shared(VIT_S14)
def test_the_vit_s14_takes_the_recipes_image_size_with_imagenet_normalisation():
    """The preset is sized for 518 px; KerasHub interpolates its position table to 56 px (4 × 4 patches of 14).
    It has no image converter, so the family's ImageNet mean and standard deviation scale the pixels."""
    model = tltf.build_model("hub", preset=str(VIT_S14), image_size=56, weights="imagenet", dropout=0.0)
    assert BlockMap.of(model).names == ["stem", *(f"block_{i}" for i in range(12)), "top", "head"]
    images = np.random.default_rng(0).integers(0, 256, (2, 56, 56, 3)).astype("float32")
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    backbone = keras_hub.models.Backbone.from_preset(str(VIT_S14), image_shape=(56, 56, 3))
    tokens = keras.ops.convert_to_numpy(backbone({"images": ((images / 255.0 - mean) / std).astype("float32")}))
    ours = keras.ops.convert_to_numpy(feature_extractor(model)(images))
    assert tokens.shape == (2, 17, 384) and ours.std() > 0.01
    assert np.abs(ours - tokens[:, 0]).max() < 1e-4  # the class token
    with pytest.raises(tltf.errors.TltfError, match="multiple of its 14 px patches; set data.image_size: 56 or 70"):
        tltf.build_model("hub", preset=str(VIT_S14), image_size=60, weights="imagenet")


@needs_shared(EFFICIENTNET)
@needs_shared(PACS_PHOTOS)
def test_efficientnet_fits_fine_tunes_and_exports_with_parity(tmp_path):
    """The recipe route on the real preset: warm-up then fine-tuning on 48 PACS photos at 64 px, the export's
    parity check, and the SavedModel's probabilities equal to the run's model.keras on other photos."""
    import shutil

    import tensorflow as tf
    from conftest import write_recipe

    from tltf.data.images import decode_files
    from tltf.export import export_run

    for name in ("dog", "horse"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for path in sorted((PACS_PHOTOS / name).iterdir())[:24]:
            shutil.copy(path, tmp_path / "photos" / name / path.name)
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "directory", "path": str(tmp_path / "photos"),
                                                "image_size": SIZE},
                          model={"backbone": "hub", "preset": str(EFFICIENTNET), "weights": "imagenet",
                                 "bn": "frozen", "bn_momentum": None, "dropout": 0.0},
                          train={"strategy": "warmup_then_finetune", "epochs": 2, "head_warmup": {"epochs": 1},
                                 "lr": 1e-4})
    tltf.fit(tltf.load_recipe(recipe), tmp_path / "run", verbose=0)
    exported = export_run(tmp_path / "run", tmp_path / "serving")
    assert exported.parity is not None  # the export checked both signatures against the Keras model
    others = [path for name in ("dog", "horse") for path in sorted((PACS_PHOTOS / name).iterdir())[24:27]]
    images = decode_files(others, SIZE).astype("float32")
    expected = keras.models.load_model(tmp_path / "run" / "model.keras").predict(images, verbose=0)
    served = tf.saved_model.load(str(exported.version_dir)).signatures["serving_default"]
    probabilities = served(images=tf.constant(images))["probabilities"].numpy()
    assert expected.std() > 1e-3 and np.abs(probabilities.reshape(expected.shape) - expected).max() < 1e-5


@needs_shared(EFFICIENTNET)
@needs_shared(PACS_PHOTOS)
def test_grad_cam_explains_efficientnets_last_feature_map(efficientnet):
    """Grad-CAM on the 2 × 2 map the backbone ends in at 64 px (its `feature_map`), maps that differ by image.
    Real photos: on random pixels two maps of an untrained head differed by 0.05 or by 1.0, depending on the
    head's draw."""
    from tltf.data.images import decode_files
    from tltf.saliency import GradCam

    cam = GradCam(efficientnet)
    assert cam.layer.name == "feature_map" and cam.layer.output.shape[1:] == (2, 2, 1280)
    images = decode_files([sorted((PACS_PHOTOS / name).iterdir())[0] for name in ("dog", "horse", "house")], SIZE)
    maps, probabilities = cam(images)  # checks on the way that its chain gives the model's own probabilities
    assert maps.shape == (3, SIZE, SIZE) and probabilities.shape == (3,)
    assert np.abs(maps[0] - maps[2]).max() > 0.1


@needs_shared(EFFICIENTNET)
@needs_shared(VIT_S14)
def test_explain_says_how_a_presets_pixels_are_scaled(tmp_path):
    from conftest import write_recipe

    np.savez(tmp_path / "d.npz", **{f"{split}_{kind}": array for split in ("train", "val") for kind, array in
                                    (("images", np.zeros((4, 8, 8), np.uint8)), ("labels", np.arange(4)[:, None] % 2))})
    lines = {}
    for preset, size in ((EFFICIENTNET, 96), (VIT_S14, 56)):
        recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(tmp_path / "d.npz"),
                                                    "image_size": size},
                              model={"backbone": "hub", "preset": str(preset), "weights": "imagenet",
                                     "bn": "frozen", "bn_momentum": None})
        lines[preset.name] = tltf.explain(tltf.load_recipe(recipe))["preprocessing"]
    assert lines[EFFICIENTNET.name] == (
        "preprocessing: pixels × [0.007812, 0.007812, 0.007812] + [-0.9922, -0.9922, -0.9922], inside the model; "
        "its image converter's scale and offset only (tltf resizes to 96 px itself; the converter's own resize "
        "and crop are not used)")
    assert lines[VIT_S14.name].startswith("preprocessing: pixels × [0.01712, 0.01751, 0.01743] + [-2.118, -2.036,")
    assert lines[VIT_S14.name].endswith("no image converter: the hub_dinov2 family's documented normalisation")


@needs_shared(EFFICIENTNET)
@needs_shared(VIT_S14)
@pytest.mark.parametrize("preset, size", [(EFFICIENTNET, 32), (VIT_S14, 28)], ids=["efficientnet_lite0", "vit_s14"])
def test_both_real_backbones_train_in_mixed_float16(preset, size):
    """What `precision: auto` picks on a GPU: the backbone computes in float16, the probabilities stay float32,
    and a training step under loss scaling gives a finite loss and moves the weights (here on the CPU)."""
    from tltf.train.distribution import dtype_policy, wrap_for_precision

    with dtype_policy("mixed_float16"):
        model = tltf.build_model("hub", preset=str(preset), image_size=size, weights="imagenet", dropout=0.0)
    assert model.get_layer(tltf.backbone_of(model).name).compute_dtype == "float16"
    model.compile(wrap_for_precision(keras.optimizers.AdamW(1e-4), "mixed_float16"), loss="binary_crossentropy")
    images = np.random.default_rng(0).integers(0, 256, (4, size, size, 3)).astype("float32")
    labels = np.array([[0.0], [1.0], [0.0], [1.0]], "float32")
    before = [v.numpy().copy() for v in model.trainable_variables]
    # Dynamic loss scaling starts high and skips the steps whose float16 gradients overflow, halving the scale.
    for step in range(20):
        loss = float(model.train_on_batch(images, labels))
        if any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.trainable_variables)):
            break
    else:
        pytest.fail("20 steps under loss scaling and no weight moved")
    print(f"{preset.name}: the weights moved at step {step + 1}")
    assert np.isfinite(loss) and model(images).dtype == "float32"
