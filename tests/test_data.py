import functools
import hashlib
import re

import numpy as np
import pytest
from conftest import PNEUMONIA_NPZ, needs_shared, separable_images
from PIL import Image

from tltf.data import class_weights, load_splits
from tltf.data.image_store import ImageStore
from tltf.data.images import to_rgb
from tltf.data.pipeline import build_augmenter, make_dataset
from tltf.data.sources import peek_data
from tltf.errors import DataError
from tltf.recipe import AugmentConfig, validate_recipe
from tltf.task import Task

BINARY = Task.with_classes(2)


def data_section(**data):
    return validate_recipe({"data": {"image_size": 16, **data}, "model": {"backbone": "tiny_test"}}).data


def write_class_folders(root, counts, size=20, modes=None):
    """Class folders of flat images: the first class at value 50, the others at 200."""
    for name, n in counts.items():
        folder = root / name
        folder.mkdir(parents=True)
        mode = (modes or {}).get(name, "L")
        for i in range(n):
            value = 50 if name == sorted(counts)[0] else 200
            color = value if mode == "L" else (value, value, value, 255)[: len(mode)]
            image = Image.new(mode, (size, size + i), color=color)
            image.save(folder / f"{i}.png")


def test_npz_source_keeps_official_splits(npz_path):
    splits = load_splits(data_section(source="npz", path=str(npz_path), class_names=["a", "b"]))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (64, 24, 24)
    assert splits.train.images.shape == (64, 16, 16, 3) and splits.train.images.dtype == np.uint8
    assert not splits.val_was_carved and splits.class_names == ["a", "b"]


def test_grey_is_repeated_and_alpha_dropped():
    grey = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)[..., 0]
    assert np.array_equal(to_rgb(grey)[..., 2], grey)
    assert np.array_equal(to_rgb(grey)[..., 0], to_rgb(grey)[..., 1])
    rgba = np.random.default_rng(0).integers(0, 255, (1, 2, 2, 4), dtype=np.uint8)
    assert np.array_equal(to_rgb(rgba), rgba[..., :3])


def test_carved_val_split_is_stratified_and_seeded(tmp_path):
    images, labels = separable_images(200, 8)
    labels = (np.arange(200) < 50).astype(int)  # 25% positives
    np.savez(tmp_path / "d.npz", train_images=images, train_labels=labels)
    data = data_section(source="npz", path=str(tmp_path / "d.npz"), val_fraction=0.2)
    first, again, other = load_splits(data, seed=3), load_splits(data, seed=3), load_splits(data, seed=4)
    assert first.val_was_carved and first.test is None
    assert len(first.val) == 40 and first.val.labels.mean() == pytest.approx(0.25)
    assert np.array_equal(first.val.images, again.val.images)
    assert not np.array_equal(first.val.images, other.val.images)


def test_carved_test_split_is_the_same_for_every_training_seed_and_never_trains(tmp_path):
    images, labels = separable_images(200, 8)
    images[:, 0, 0] = np.arange(200)  # each image recognisable by its first pixel
    labels = (np.arange(200) < 50).astype(int)
    np.savez(tmp_path / "d.npz", train_images=images, train_labels=labels)
    data = data_section(source="npz", path=str(tmp_path / "d.npz"), val_fraction=0.25, test_fraction=0.2)
    first, other = load_splits(data, seed=0), load_splits(data, seed=1)
    assert first.test_was_carved and len(first.test) == 40 and first.test.labels.mean() == pytest.approx(0.25)
    assert np.array_equal(first.test.images, other.test.images)  # seeded by data.subsample_seed, not train.seed
    assert not np.array_equal(first.val.images, other.val.images)
    ids = {name: set(split.images[:, 0, 0, 0].tolist()) for name, split in first.items()}
    assert not ids["test"] & (ids["train"] | ids["val"]) and sum(map(len, ids.values())) == 200
    assert "(test carved from train)" in first.summary()
    assert peek_data(data).train_count == len(first.train)
    moved = load_splits(data.model_copy(update={"subsample_seed": 5}), seed=0)
    assert not np.array_equal(first.test.images, moved.test.images)


def test_test_fraction_is_refused_when_the_data_has_a_test_split(npz_path):
    with pytest.raises(DataError, match=r"^data.test_fraction: the data has its own test split"):
        load_splits(data_section(source="npz", path=str(npz_path), test_fraction=0.2))


def test_directory_source_with_grey_and_rgba(tmp_path):
    write_class_folders(tmp_path / "all", {"cat": 3, "dog": 3}, modes={"dog": "RGBA"})
    splits = load_splits(data_section(source="directory", path=str(tmp_path / "all"), val_fraction=0.34))
    assert splits.class_names == ["cat", "dog"]
    assert len(splits.train) + len(splits.val) == 6
    everything = np.concatenate([splits.train.images, splits.val.images])
    labels = np.concatenate([splits.train.labels, splits.val.labels])
    assert everything.shape[1:] == (16, 16, 3)
    assert np.all(everything[labels == 0] == 50) and np.all(everything[labels == 1] == 200)


def test_directory_source_with_split_folders(tmp_path):
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        write_class_folders(tmp_path / split, {"normal": n, "pneumonia": n})
    splits = load_splits(data_section(source="directory", path=str(tmp_path)))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 4, 4)
    assert not splits.val_was_carved


def test_csv_source_with_split_column(tmp_path):
    write_class_folders(tmp_path / "img", {"a": 4, "b": 4})
    rows = ["file,diagnosis,split"]
    for name in ("a", "b"):
        for i in range(4):
            rows.append(f"img/{name}/{i}.png,{name},{'train' if i < 2 else 'val' if i == 2 else 'test'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    splits = load_splits(data_section(source="csv", path=str(tmp_path / "labels.csv"), image_column="file",
                                      label_column="diagnosis", split_column="split"))
    assert splits.class_names == ["a", "b"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4, 2, 2)
    assert np.all(splits.test.images[splits.test.labels == 1] == 200)


def test_csv_missing_column_names_the_key(tmp_path):
    (tmp_path / "l.csv").write_text("path,label\nx.png,a\n")
    with pytest.raises(DataError, match="data.image_column: no column 'image'"):
        load_splits(data_section(source="csv", path=str(tmp_path / "l.csv")))


@needs_shared(PNEUMONIA_NPZ)
def test_medmnist_reads_the_local_file_without_downloading(tmp_path):
    splits = load_splits(data_section(source="medmnist", name="pneumoniamnist", root=str(PNEUMONIA_NPZ.parent)))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4708, 524, 624)
    assert np.bincount(splits.test.labels).tolist() == [234, 390]
    assert splits.class_names == ["normal", "pneumonia"]


def test_medmnist_downloads_when_missing_and_checks_md5(tmp_path, npz_path):
    md5 = hashlib.md5(npz_path.read_bytes()).hexdigest()
    url = npz_path.as_uri()  # the real download path, served from a local file
    root = tmp_path / "cache"
    splits = load_splits(data_section(source="medmnist", name="tiny", root=str(root), url=url, md5=md5))
    assert (root / "tiny.npz").read_bytes() == npz_path.read_bytes()
    assert len(splits.train) == 64

    with pytest.raises(DataError) as info:
        load_splits(data_section(source="medmnist", name="tiny", root=str(tmp_path / "bad"), url=url, md5="0" * 32))
    assert "download from" in str(info.value) and "copy tiny.npz into" in str(info.value)
    assert not (tmp_path / "bad" / "tiny.npz").exists()  # nothing half-written


def test_medmnist_unreachable_url_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match=r"not found and the download from .* failed .*copy tiny.npz into"):
        load_splits(data_section(source="medmnist", name="tiny", root=str(tmp_path),
                                 url=(tmp_path / "nowhere.npz").as_uri()))


def test_tfds_source(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    images, labels = separable_images(12, 8, channels=3)
    builder_dir = tmp_path / "tfds"

    class TinyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 3)),
                "label": tfds.features.ClassLabel(names=["dark", "light"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, 8), "test": self._generate_examples(8, 12)}

        def _generate_examples(self, start, stop):
            for i in range(start, stop):
                yield i, {"image": images[i], "label": int(labels[i])}

    TinyImages(data_dir=str(builder_dir)).download_and_prepare()
    section = functools.partial(data_section, source="tfds", name="tiny_images", data_dir=str(builder_dir),
                                val_fraction=0.25, image_size=16, cache_dir=str(tmp_path / "cache"))
    splits = load_splits(section(cache="memory"))
    assert splits.class_names == ["dark", "light"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 4)
    assert tf.is_tensor(tf.constant(splits.test.images))
    peek = peek_data(section())
    assert (peek.class_names, peek.train_count, sum(peek.class_counts)) == (["dark", "light"], 6, 8)

    # On disk: the same pixels and labels; a second load reads the store, not tfds's records.
    on_disk = load_splits(section(cache="disk"))
    assert isinstance(on_disk.test.images, ImageStore)
    disk_splits = dict(on_disk.items())
    for name, split in splits.items():
        assert np.array_equal(disk_splits[name].images[np.arange(len(split))], split.images)
        assert np.array_equal(disk_splits[name].labels, split.labels)
    for records in builder_dir.rglob("*.tfrecord*"):
        records.unlink()
    again = load_splits(section(cache="disk"))
    assert np.array_equal(again.train.images[np.arange(6)], splits.train.images)
    with pytest.raises(Exception):
        load_splits(section(cache="memory"))  # the records really are gone


@pytest.mark.parametrize("problem, expected", [
    ("zero_byte", "empty file (0 bytes)"),
    ("truncated", "not a decodable image"),
    ("corrupt", "not a decodable image"),
    ("not_image", "not an image file"),
    ("empty_class", "empty class folder"),
    ("single_class", "single class"),
])
def test_bad_directory_data_is_one_line_naming_the_file(tmp_path, problem, expected):
    root = tmp_path / "data"
    write_class_folders(root, {"a": 2, "b": 2})
    culprit = {"zero_byte": root / "a" / "bad.png", "truncated": root / "a" / "bad.png",
               "corrupt": root / "b" / "bad.jpg", "not_image": root / "b" / "notes.txt",
               "empty_class": root / "c", "single_class": root / "a"}[problem]
    if problem == "zero_byte":
        culprit.write_bytes(b"")
    elif problem == "truncated":
        culprit.write_bytes((root / "a" / "0.png").read_bytes()[:40])
    elif problem == "corrupt":
        culprit.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    elif problem == "not_image":
        culprit.write_text("notes")
    elif problem == "empty_class":
        culprit.mkdir()
    elif problem == "single_class":
        for file in (root / "b").iterdir():
            file.unlink()
        (root / "b").rmdir()
    with pytest.raises(DataError) as info:
        load_splits(data_section(source="directory", path=str(root)))
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert "function_node" not in message and "[Op:" not in message  # the decoder's words, not TensorFlow's op
    if problem != "single_class":
        assert str(culprit) in message


def test_missing_path_names_the_key(tmp_path):
    with pytest.raises(DataError, match="data.path does not exist"):
        load_splits(data_section(source="npz", path=str(tmp_path / "missing.npz")))


def test_auto_class_weights_are_balanced():
    labels = np.array([0] * 30 + [1] * 10)
    weights = class_weights(labels, 2)[labels]
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum())
    assert weights.mean() == pytest.approx(1.0)


def test_augmentation_changes_training_batches_only():
    images, labels = separable_images(8, 16, channels=3)
    augment = AugmentConfig(flip="horizontal", rotation=0.1, zoom=0.2, contrast=0.3)
    augmenter = build_augmenter(augment, seed=0)
    train = make_dataset(images, labels, BINARY, 8, training=True, augmenter=augmenter, seed=0)
    val = make_dataset(images, labels, BINARY, 8)
    x_val, y_val = next(iter(val))
    assert np.array_equal(x_val.numpy(), images.astype(np.float32))
    x_train, _ = next(iter(train))
    assert x_train.shape == (8, 16, 16, 3)
    assert not np.allclose(np.sort(x_train.numpy().ravel()), np.sort(images.astype(np.float32).ravel()))
    assert float(x_train.numpy().min()) >= 0 and float(x_train.numpy().max()) <= 255


@pytest.mark.parametrize("mixer", [{"mixup": 0.4}, {"cutmix": 1.0}])
def test_mixing_and_randaugment_run_in_the_pipeline(mixer):
    images, labels = separable_images(8, 16, channels=3)
    augment = AugmentConfig(randaugment={"num_ops": 2, "factor": 0.5}, translate=0.1, **mixer)
    train = make_dataset(images, labels, BINARY, 8, training=True, augmenter=build_augmenter(augment, 0), seed=0)
    _, y = next(iter(train))
    y = y.numpy().ravel()
    assert np.any((y > 0) & (y < 1))  # mixed labels


def test_sample_weights_travel_with_batches():
    images, labels = separable_images(6, 8, channels=3)
    weights = np.arange(6, dtype=np.float32)
    x, y, w = next(iter(make_dataset(images, labels, BINARY, 6, sample_weights=weights)))
    assert np.array_equal(w.numpy(), weights) and y.shape == (6, 1)


@pytest.mark.parametrize("bad, expected", [
    (np.nan, "train_images[5] holds NaN or infinite values (1 images do)"),
    (np.inf, "train_images[5] holds NaN or infinite values"),
    (300.0, "train_images[5] has values from 0 to 300, outside the raw 0–255 pixels"),
    (-1.0, "train_images[5] has values from -1 to 0, outside the raw 0–255 pixels"),
])
def test_npz_pixels_that_are_not_raw_0_255_are_refused(tmp_path, bad, expected):
    images = np.zeros((20, 8, 8), "float32")
    images[5, 3, 3] = bad
    np.savez(tmp_path / "f.npz", train_images=images, train_labels=np.arange(20) % 2)
    recipe = validate_recipe({"data": {"source": "npz", "path": str(tmp_path / "f.npz"), "image_size": 8},
                              "model": {"backbone": "tiny_test", "weights": None}})
    with pytest.raises(DataError) as info:
        load_splits(recipe.data)
    assert str(info.value) == f"{tmp_path / 'f.npz'}: " + str(info.value).split(": ", 1)[1]
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("train, test, expected", [
    ([0, 7], [0, 1], "the test split has label 1, which never occurs in the train split"),
    ([0, 7], [0, 7], "class 'class_1' (id 1) has no training image; the train labels are [0, 7]"),
    ([0, 1], [0, 2], "the test split has label 2, which never occurs in the train split"),
])
def test_labels_must_match_the_classes_in_every_split(tmp_path, train, test, expected):
    np.savez(tmp_path / "f.npz", train_images=np.zeros((20, 8, 8), np.uint8), train_labels=np.resize(train, 20),
             test_images=np.zeros((6, 8, 8), np.uint8), test_labels=np.resize(test, 6))
    recipe = validate_recipe({"data": {"source": "npz", "path": str(tmp_path / "f.npz"), "image_size": 8},
                              "model": {"backbone": "tiny_test", "weights": None}})
    with pytest.raises(DataError, match=re.escape(expected)):
        load_splits(recipe.data)
