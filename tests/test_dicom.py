"""DICOM, 16-bit PNG and TIFF in at their full depth; nothing of a DICOM header out.

The DICOMs are written here with pydicom from PneumoniaMNIST images (or, for the runs, from the tests' separable
images): 8-bit values stored as 12-bit with a rescale, MONOCHROME1 and MONOCHROME2, with and without a window,
RLE and JPEG 2000 compressed.
"""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import PNEUMONIA_NPZ, needs_shared, separable_images, write_recipe
from PIL import Image

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless  # noqa: E402

import tltf  # noqa: E402
from tltf.data.images import decode_file, decode_pixels, pixels_at_size  # noqa: E402
from tltf.errors import DataError  # noqa: E402

NAME, PATIENT_ID = "Planted^Patientname", "PID-7731-PLANTED"
IDENTITY = (128.0, 256.0)  # the linear window that maps 0..255 to itself


def write_dicom(path: Path, grey: np.ndarray, photometric="MONOCHROME2", window=None, syntax=None, frames=1,
                colour=False) -> Path:
    """`grey` (0..255) stored as 12-bit values ×16 with RescaleSlope 1/16 (the modality values are `grey`)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PATIENT_ID, "19700101"
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = grey.shape
    if colour:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1).tobytes()
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        stored = grey.astype(np.uint16) * 16  # MONOCHROME1 shows these inverted: the lowest value white
        ds.RescaleSlope, ds.RescaleIntercept = 1 / 16, 0
        ds.PixelData = np.tile(stored, (frames, 1, 1)).tobytes() if frames > 1 else stored.tobytes()
        if frames > 1:
            ds.NumberOfFrames = frames
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
    if syntax is not None:
        ds.compress(syntax)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_png(path: Path, grey: np.ndarray) -> Path:
    Image.fromarray(grey.astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def xrays():
    if not PNEUMONIA_NPZ.exists():
        pytest.skip(f"{PNEUMONIA_NPZ} is absent (../shared holds the real test assets)")
    with np.load(PNEUMONIA_NPZ) as data:
        return data["test_images"][:4]


@needs_shared(PNEUMONIA_NPZ)
@pytest.mark.parametrize("syntax", [None, RLELossless, JPEG2000Lossless], ids=["raw", "rle", "jpeg2000"])
def test_a_12_bit_dicom_with_a_rescale_decodes_to_the_png_pixels(tmp_path, xrays, syntax):
    for index, grey in enumerate(xrays):
        grey = grey.repeat(2, axis=0).repeat(2, axis=1)  # 56 px: OpenJPEG's default 6 resolutions need 32 or more
        dicom = decode_file(write_dicom(tmp_path / f"{index}.dcm", grey, window=IDENTITY, syntax=syntax), 48)
        png = decode_file(write_png(tmp_path / f"{index}.png", grey), 48)
        assert np.abs(dicom.astype(int) - png.astype(int)).max() <= 1
        assert (dicom == png).mean() > 0.99


@needs_shared(PNEUMONIA_NPZ)
def test_monochrome1_inverts_and_a_window_maps_to_the_full_range(tmp_path, xrays):
    grey = xrays[0]
    inverted = decode_file(write_dicom(tmp_path / "m1.dcm", grey, "MONOCHROME1", window=IDENTITY), 28)
    np.testing.assert_allclose(inverted[..., 0].astype(int), 255 - grey.astype(int), atol=1)
    # The file's own window, 100 ± 50: 50 and below black, 150 and above white, linear between.
    windowed = decode_file(write_dicom(tmp_path / "w.dcm", grey, window=(100.0, 100.0)), 28)[..., 0].astype(float)
    expected = np.clip((grey.astype(float) - 50.0) / 99.0, 0, 1) * 255  # PS3.3 C.11.2.1.2.1
    np.testing.assert_allclose(windowed, expected, atol=1)
    assert windowed.min() == 0 and windowed.max() == 255
    # window none ignores the file's window: the image's own range, stretched.
    stretched = decode_file(tmp_path / "w.dcm", 28, "none")[..., 0].astype(float)
    g = grey.astype(float)
    np.testing.assert_allclose(stretched, (g - g.min()) * 255 / (g.max() - g.min()), atol=1)
    # auto without a window in the file: the image's range too.
    assert np.array_equal(decode_file(write_dicom(tmp_path / "n.dcm", grey), 28), decode_file(tmp_path / "w.dcm", 28,
                                                                                              "none"))


def test_a_colour_dicom_decodes(tmp_path):
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    rgb = decode_file(write_dicom(tmp_path / "c.dcm", grey, colour=True), 16)
    np.testing.assert_array_equal(rgb[..., 1], grey)


def test_bad_dicoms_say_what_is_wrong_in_one_line_naming_the_file_and_nothing_of_the_patient(tmp_path):
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    good = write_dicom(tmp_path / "good.dcm", grey).read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(good[: len(good) - 200])
    (tmp_path / "text.dcm").write_text("not an image at all\n")
    write_dicom(tmp_path / "frames.dcm", grey, frames=3)
    jpeg_ls = write_dicom(tmp_path / "jpegls.dcm", grey)
    ds = pydicom.dcmread(jpeg_ls)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless  # no JPEG-LS decoder is installed
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xf7" + bytes(64)])
    ds.save_as(jpeg_ls, enforce_file_format=True)
    expected = {"truncated.dcm": "truncated DICOM", "text.dcm": "not a DICOM file", "frames.dcm": "multi-frame",
                "jpegls.dcm": "install pyjpegls"}
    for name, says in expected.items():
        with pytest.raises(DataError) as caught:
            decode_file(tmp_path / name, 16)
        message = str(caught.value)
        assert message.startswith(str(tmp_path / name)) and says in message and "\n" not in message, message
        assert NAME not in message and PATIENT_ID not in message and "Planted" not in message


def test_16_bit_png_and_tiff_keep_their_depth(tmp_path):
    values = np.array([[0, 1, 128, 32768, 65280, 65534, 65535, 40000]], np.uint16).repeat(8, axis=0)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    decoded = decode_pixels(buffer.getvalue()).numpy()[..., 0]
    np.testing.assert_allclose(decoded, values / 257.0, rtol=0, atol=1e-3)  # not truncated to 8 bits
    Image.fromarray(values).save(tmp_path / "deep.tif")
    np.testing.assert_array_equal(decode_file(tmp_path / "deep.tif", 8)[..., 0], np.round(values / 257.0))
    eight = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4  # an 8-bit PNG is unchanged
    np.testing.assert_array_equal(decode_file(write_png(tmp_path / "eight.png", eight), 8)[..., 0], eight)
    np.testing.assert_array_equal(pixels_at_size(np.full((4, 4, 3), 127.5, np.float32), 4), 128)


def image_folders(root: Path, fmt: str) -> Path:
    """train/val/test class folders of the tests' separable 16 px images, as DICOM or PNG."""
    for split, n, seed in (("train", 32, 0), ("val", 16, 1), ("test", 16, 2)):
        images, labels = separable_images(n, 16, seed=seed)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / ("normal", "pneumonia")[label]
            folder.mkdir(parents=True, exist_ok=True)
            if fmt == "dcm":
                write_dicom(folder / f"{index:03d}.dcm", image, window=IDENTITY)
            else:
                write_png(folder / f"{index:03d}.png", image)
    return root


def test_a_run_on_dicoms_equals_the_run_on_the_same_pngs_and_leaks_nothing_of_the_patient(tmp_path, capfd,
                                                                                         tltf_log):
    """The same images as DICOM and as PNG give the same deterministic metrics.json; then every file of the
    DICOM run, its export and a predict's output, and everything printed, are searched for the planted name,
    ID and birth date."""
    from click.testing import CliRunner

    from tltf.cli.main import main
    from tltf.recipe import load_recipe

    for fmt in ("dcm", "png"):
        root = image_folders(tmp_path / f"data-{fmt}", fmt)
        recipe = write_recipe(tmp_path / f"{fmt}.yaml", {"source": "directory", "path": str(root),
                                                         "cache_dir": str(tmp_path / "cache")},
                              train={"epochs": 2, "deterministic": True})
        tltf.fit(load_recipe(recipe), tmp_path / f"run-{fmt}", verbose=2)
    dicom_metrics = json.loads((tmp_path / "run-dcm" / "metrics.json").read_text())
    png_metrics = json.loads((tmp_path / "run-png" / "metrics.json").read_text())
    assert dicom_metrics == png_metrics
    exported = tltf.export.export_run(tmp_path / "run-dcm", tmp_path / "exports")
    test_files = sorted((tmp_path / "data-dcm" / "test").rglob("*.dcm"))
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(test_files[0].read_bytes()[:-100])
    predicted = CliRunner().invoke(main, ["predict", str(exported.version_dir), *map(str, test_files[:4]),
                                          str(damaged), "--dicom-window", "128,256", "--format", "json"])
    assert predicted.exit_code == 1, predicted.output  # one file failed: an error row, the others predicted
    from_run = tltf.export.Predictor(tmp_path / "run-dcm").predict(test_files[:4])
    written = [p for folder in ("run-dcm", "exports") for p in (tmp_path / folder).rglob("*") if p.is_file()]
    assert len(written) > 10
    printed = capfd.readouterr()
    for text in [printed.out + printed.err, predicted.output, "\n".join(tltf_log),
                 *(p.read_bytes().decode("latin-1") for p in written)]:
        assert NAME not in text and PATIENT_ID not in text and "Planted" not in text and "19700101" not in text
    *served, bad = json.loads(predicted.stdout)  # the SavedModel, fed client-side decoded DICOM, agrees with the run
    assert bad["error"].startswith(f"{damaged}: truncated DICOM") and bad["class_name"] is None
    np.testing.assert_allclose([row["class_probability"] for row in served],
                               [row.class_probability for row in from_run], atol=1e-5)


def test_a_damaged_dicom_among_the_training_data_stops_fit_with_one_line_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from tltf.cli.main import main

    root = image_folders(tmp_path / "data", "dcm")
    victim = next((root / "train" / "normal").glob("*.dcm"))
    victim.write_bytes(victim.read_bytes()[:-100])
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "directory", "path": str(root)})
    result = CliRunner().invoke(main, ["fit", str(recipe), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"tltf: error: {victim}: truncated DICOM (its pixel data is shorter than its " \
                                    f"image size needs)"
    assert not (tmp_path / "run").exists()


def test_dicoms_go_through_the_disk_cache_keyed_by_their_window(tmp_path):
    from tltf.data.decoded_cache import load_image_files
    from tltf.recipe import load_recipe

    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    paths = [write_dicom(tmp_path / f"{i}.dcm", np.roll(grey, i, axis=1), window=(100.0, 100.0)) for i in range(3)]

    def data(cache, window):
        recipe = write_recipe(tmp_path / "r.yaml", {"source": "directory", "path": str(tmp_path), "cache": cache,
                                                    "cache_dir": str(tmp_path / "cache"), "dicom": {"window": window}})
        return load_recipe(recipe).data

    in_memory = load_image_files(paths, data("memory", "auto"), "decoding")
    on_disk = load_image_files(paths, data("disk", "auto"), "decoding")
    assert type(on_disk).__name__ == "ImageStore"
    np.testing.assert_array_equal(on_disk[np.arange(3)], in_memory)
    stretched = load_image_files(paths, data("disk", "none"), "decoding")  # another window: another store
    assert not np.array_equal(stretched[np.arange(3)], in_memory)
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 2


def test_a_bad_dicom_window_option_is_one_line_and_exit_2(tmp_path):
    from click.testing import CliRunner

    from tltf.cli.main import main

    result = CliRunner().invoke(main, ["predict", str(tmp_path), str(tmp_path), "--dicom-window", "40x400"])
    assert result.exit_code == 2
    expected = "tltf: error: --dicom-window 40x400: expected auto, none or CENTRE,WIDTH (e.g. 40,400)"
    assert result.stderr.strip() == expected
