"""DICOM files as images: pixel data → modality LUT → VOI window → MONOCHROME1 inverted → 0–255 floats.

Only the pixel data and the attributes that say how to show it (rescale slope and intercept, the window or VOI
LUT, the photometric interpretation, the frame count) are read. No other attribute of a file (the patient's
name, ID, dates, the institution) is returned, logged or put into an error: an error names the file's path and
what is wrong with its pixels, nothing else of its header.

Compressed transfer syntaxes are decoded by pydicom's plugins (`pip install 'tltf[dicom]'`: pylibjpeg with its
libjpeg, openjpeg and RLE decoders); a file whose plugin is missing is refused with the package to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from tltf.errors import DataError

DICOM_SUFFIXES = {".dcm", ".dicom"}
INSTALL = "pip install 'tltf[dicom]'"
# Transfer syntax UID prefixes → the decoder package pydicom needs for them.
DECODERS = {
    "1.2.840.10008.1.2.4.5": "pylibjpeg-libjpeg",  # JPEG baseline, extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.8": "pyjpegls",  # JPEG-LS
    "1.2.840.10008.1.2.4.9": "pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.20": "pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",
}

Window = Union[str, tuple]


def is_dicom(path: Path) -> bool:
    """Whether `path` is named as a DICOM file (`.dcm`, `.dicom`)."""
    return Path(path).suffix.lower() in DICOM_SUFFIXES


def read_dicom(path: Path, window: Window = "auto") -> np.ndarray:
    """One 2-D DICOM image as float32 `[H,W,3]` in 0–255, unquantised.

    Example:
        pixels = read_dicom(Path("study/0001.dcm"), window=(40, 400))

    Args:
        path: the file.
        window: `auto` (the file's own VOI window or LUT, else the image's full range), `none` (the image's
            full range, whatever the file says), or `(centre, width)`.

    Raises:
        DataError: naming the file and what is wrong (never a header value).
    """
    dataset = _read(path)
    values = _modality_values(path, dataset)
    grey = dataset.get("SamplesPerPixel", 1) == 1
    if grey:
        values = _windowed(values, dataset, window)
        if str(dataset.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            values = 255.0 - values  # MONOCHROME1: the lowest value is shown white
        values = np.repeat(values[..., None], 3, axis=-1)
    else:
        values = _full_range(values, 8 if dataset.get("BitsStored", 8) <= 8 else dataset.BitsStored)
    return values.astype(np.float32)


def _read(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError:
        raise DataError(f"{path}: not a DICOM file (no DICOM preamble); remove it or replace it") from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, KeyError):
        raise DataError(f"{path}: not a readable DICOM file (truncated or damaged header)") from None
    if "PixelData" not in dataset:
        raise DataError(f"{path}: a DICOM file without pixel data (not an image)")
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        raise DataError(f"{path}: a multi-frame DICOM ({int(dataset.NumberOfFrames)} frames); tltf classifies "
                        f"2-D images: export the frame to classify as its own file")
    return dataset


def _modality_values(path: Path, dataset) -> np.ndarray:
    """The stored values through the modality LUT (rescale slope and intercept), as float64."""
    from pydicom.pixels import apply_modality_lut

    syntax = str(getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", ""))
    try:
        pixels = dataset.pixel_array
    except (RuntimeError, NotImplementedError) as error:
        if "plugin" in str(error).lower() or "handler" in str(error).lower():
            package = next((name for prefix, name in DECODERS.items() if syntax.startswith(prefix)), "a decoder")
            raise DataError(f"{path}: compressed with transfer syntax {syntax}, and no installed decoder reads "
                            f"it: install {package} ({INSTALL} brings the JPEG, JPEG 2000 and RLE ones)") from None
        raise DataError(f"{path}: its pixel data cannot be decoded (transfer syntax {syntax})") from None
    except (ValueError, EOFError, KeyError, AttributeError):
        raise DataError(f"{path}: truncated DICOM (its pixel data is shorter than its image size needs)") from None
    if pixels.ndim != (2 if dataset.get("SamplesPerPixel", 1) == 1 else 3):
        raise DataError(f"{path}: a DICOM image of shape {pixels.shape}; tltf classifies 2-D images")
    if dataset.get("SamplesPerPixel", 1) != 1:
        return pixels.astype(np.float64)  # colour: pydicom has converted YBR to RGB
    return np.asarray(apply_modality_lut(pixels, dataset), np.float64)


def _windowed(values: np.ndarray, dataset, window: Window) -> np.ndarray:
    """Grey values mapped to 0–255 through the chosen window (linear, clipped)."""
    from pydicom.pixels import apply_voi_lut

    if isinstance(window, (tuple, list)):
        centre, width = map(float, window)
        return _linear_window(values, centre, width)
    if window == "auto" and "VOILUTSequence" in dataset:
        bits = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        return _full_range(np.asarray(apply_voi_lut(values, dataset, prefer_lut=True), np.float64), bits)
    if window == "auto" and "WindowCenter" in dataset and "WindowWidth" in dataset:
        return _linear_window(values, _first(dataset.WindowCenter), _first(dataset.WindowWidth))
    return _stretched(values)


def _linear_window(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM's linear window (PS3.3 C.11.2.1.2.1): `centre ± width/2` → 0–255."""
    low = centre - 0.5 - (width - 1) / 2
    scaled = (values - low) / max(width - 1, 1e-6)
    return np.clip(scaled, 0.0, 1.0) * 255.0


def _stretched(values: np.ndarray) -> np.ndarray:
    """The image's own minimum to maximum → 0–255 (a constant image is 0)."""
    low, high = float(values.min()), float(values.max())
    return (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)


def _full_range(values: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(values, 0, 2**bits - 1) * (255.0 / (2**bits - 1))


def _first(value) -> float:
    """A window attribute's first value (a file may list several windows)."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)
