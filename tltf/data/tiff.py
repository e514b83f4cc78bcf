"""TIFF files at their full depth (Pillow): 8-bit and 16-bit grey, RGB and RGBA, as 0–255 floats."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tltf.errors import DataError

# Pillow mode → the largest value of its samples.
DEPTHS = {"1": 1, "L": 255, "P": 255, "RGB": 255, "RGBA": 255, "LA": 255, "I;16": 65535, "I;16B": 65535,
          "I;16L": 65535}


def read_tiff(path: Path) -> np.ndarray:
    """One TIFF image (its first page) as float32 RGB `[H,W,3]` in 0–255; a 16-bit one is not truncated.

    Raises:
        DataError: naming the file: not a TIFF, damaged, or samples tltf does not read (32-bit or float).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode not in DEPTHS:
                raise DataError(f"{path}: a TIFF of {mode} samples; tltf reads 8- and 16-bit grey, RGB and RGBA")
            if mode in ("P", "1", "LA", "RGBA"):
                image, mode = image.convert("RGB"), "RGB"
            pixels = np.asarray(image, np.float64) * (255.0 / DEPTHS[mode])
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise DataError(f"{path}: not a decodable TIFF image (damaged or truncated); remove it or replace it") \
            from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    return pixels.astype(np.float32)
