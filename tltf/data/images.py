"""Decoding image files and bringing image arrays to one RGB size.

Files are decoded with TensorFlow's own decoders (the ones a SavedModel uses
in serving), so that training and serving see the same pixels. Every failure
names the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tltf.errors import DataError
from tltf.log import logger

# Decoded by TensorFlow (training, predict and the SavedModel's bytes signature alike).
TF_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
# Decoded in Python on the client side (pydicom, Pillow): training and `tltf predict`, not the bytes signature.
CLIENT_SUFFIXES = {".dcm", ".dicom", ".tif", ".tiff"}
IMAGE_SUFFIXES = TF_SUFFIXES | CLIENT_SUFFIXES


def to_rgb(images: np.ndarray) -> np.ndarray:
    """Returns uint8 `[N,H,W,3]`: grey is repeated to 3 channels, alpha dropped."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"expected [N,H,W] or [N,H,W,C] images, got shape {images.shape}")
    channels = images.shape[-1]
    if channels in (1, 2):  # grey, or grey + alpha
        images = np.repeat(images[..., :1], 3, axis=-1)
    elif channels == 4:
        images = images[..., :3]
    elif channels != 3:
        raise ValueError(f"expected 1, 2, 3 or 4 channels, got {channels}")
    if images.dtype != np.uint8:
        images = np.clip(images, 0, 255).astype(np.uint8)
    return images


def resize_pixels(images, size: int):
    """Bilinear resize to `size`×`size`, rounded to whole 0–255 pixel values (a TF op).

    The one resize of tltf: training data goes through it once, and the
    exported SavedModel runs it in its graph, so serving sees the pixels
    training saw.
    """
    import tensorflow as tf

    resized = tf.image.resize(tf.cast(images, tf.float32), (size, size), method="bilinear")
    return tf.round(tf.clip_by_value(resized, 0.0, 255.0))


def resize(images: np.ndarray, size: int, batch: int = 512) -> np.ndarray:
    """Resizes uint8 RGB images to `size`×`size` with `resize_pixels`, in batches."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, images.shape[-1]), np.uint8)
    for start in range(0, len(images), batch):
        out[start : start + batch] = resize_pixels(images[start : start + batch], size).numpy().astype(np.uint8)
    return out


def standardize(images: np.ndarray, size: int) -> np.ndarray:
    """Channels to RGB, then resize: the form every split is kept in."""
    return resize(to_rgb(images), size)


def decode_pixels(data):
    """Decodes JPEG/PNG/BMP/GIF bytes to RGB float32 `[H,W,3]` in 0–255 (a TF op): grey repeated, alpha dropped.

    A 16-bit PNG keeps its depth (value / 257, not truncated to 8 bits); an 8-bit file gives whole values. The
    decoder of both training files and the exported `serving_bytes` signature.
    """
    import tensorflow as tf

    def png():
        return tf.cast(tf.io.decode_png(data, channels=3, dtype=tf.uint16), tf.float32) / 257.0

    def other():
        return tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)

    is_png = tf.equal(tf.strings.substr(data, 0, 8), b"\x89PNG\r\n\x1a\n")
    return tf.cond(is_png, png, other)


def pixels_at_size(image, size: int) -> np.ndarray:
    """Float 0–255 RGB `[H,W,3]` to uint8 `[size,size,3]`: resized (`resize_pixels`) unless already that size, then
    rounded: the one quantisation to 8 bits, after resizing."""
    image = np.asarray(image, np.float32)
    out = np.round(image) if image.shape[:2] == (size, size) else resize_pixels(image[None], size)[0].numpy()
    return np.clip(out, 0, 255).astype(np.uint8)


def _decoder_reason(message) -> str:
    """TensorFlow's decoder message without its op wrapping (`{{function_node ...}}`, `[Op:DecodeImage]`)."""
    import re

    text = str(message or "").strip().splitlines()[0] if str(message or "").strip() else ""
    text = re.sub(r"\{\{function_node [^}]*\}\}", "", text)
    text = re.sub(r"\[Op:\w+\]", "", text).strip().rstrip(".")
    return text or "unknown format"


def decode_file(path: Path, size: int, dicom_window="auto") -> np.ndarray:
    """Decodes one image file to uint8 `[size,size,3]`; raises `DataError` naming the file.

    Args:
        dicom_window: for a DICOM file, `auto`, `none` or `(centre, width)` (`tltf.data.dicom.read_dicom`).
    """
    path = Path(path)
    if path.suffix.lower() in CLIENT_SUFFIXES:
        return pixels_at_size(client_pixels(path, dicom_window), size)
    import tensorflow as tf

    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read image: {error.strerror}") from None
    if not data:
        raise DataError(f"{path}: empty file (0 bytes); remove it or replace it with the real image")
    try:
        image = decode_pixels(data).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        reason = _decoder_reason(getattr(error, "message", None))
        raise DataError(
            f"{path}: not a decodable image ({reason}); remove it or replace it with a JPEG, PNG, BMP, GIF, TIFF or "
            f"DICOM file"
        ) from None
    return pixels_at_size(image, size)


def client_pixels(path: Path, dicom_window="auto") -> np.ndarray:
    """A DICOM or TIFF file as float32 RGB `[H,W,3]` in 0–255, at its full depth."""
    if not path.is_file():
        raise DataError(f"{path}: cannot read image: no such file")
    if path.suffix.lower() in (".tif", ".tiff"):
        from tltf.data.tiff import read_tiff

        return read_tiff(path)
    try:
        from tltf.data.dicom import read_dicom
    except ImportError:
        raise DataError(f"{path}: reading DICOM needs pydicom: pip install 'tltf[dicom]'") from None
    return read_dicom(path, dicom_window)


def decoded_files(paths: list[Path], size: int, title: str = "decoding images", dicom_window="auto"):
    """Yields each file decoded to uint8 `[size,size,3]`, in order, with a progress bar.

    Files are read and decoded in parallel: JPEG, PNG, BMP and GIF in a `tf.data` map with the ops of
    `decode_file` (the same pixels), DICOM and TIFF in threads; the first file that cannot be read or decoded
    raises `DataError` naming it.
    """
    from keras.utils import Progbar

    bar = Progbar(len(paths), unit_name="image") if len(paths) > 200 else None
    if bar:
        logger.info(f"{title} ({len(paths)} files)")
    decoded = (_decoded_in_tf(paths, size) if not any(Path(p).suffix.lower() in CLIENT_SUFFIXES for p in paths)
               else _decoded_in_threads(paths, size, dicom_window))
    for done, image in enumerate(decoded):
        yield image
        if bar and (done + 1) % 256 == 0:
            bar.update(done + 1)
    if bar:
        bar.update(len(paths), finalize=True)


def _decoded_in_tf(paths: list[Path], size: int):
    import tensorflow as tf

    def decode(path):
        image = decode_pixels(tf.io.read_file(path))
        same = tf.logical_and(tf.shape(image)[0] == size, tf.shape(image)[1] == size)
        resized = tf.cond(same, lambda: tf.round(image), lambda: resize_pixels(image[None], size)[0])
        return tf.cast(tf.clip_by_value(resized, 0.0, 255.0), tf.uint8)

    names = tf.data.Dataset.from_tensor_slices([str(p) for p in paths] or tf.zeros([0], tf.string))
    decoded = iter(names.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(64))
    for path in paths:
        try:
            image = next(decoded)
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, tf.errors.NotFoundError):
            decode_file(path, size)  # the same decode, one file: raises the DataError saying why
            raise DataError(f"{path}: not a decodable image; remove it or replace it") from None
        yield image.numpy()


def _decoded_in_threads(paths: list[Path], size: int, dicom_window):
    import os
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        window = 64  # files decoded ahead of the one yielded
        pending = [pool.submit(decode_file, path, size, dicom_window) for path in paths[:window]]
        for index in range(len(paths)):
            image = pending[index].result()  # a DataError naming the file is raised here, in order
            if index + window < len(paths):
                pending.append(pool.submit(decode_file, paths[index + window], size, dicom_window))
            pending[index] = None
            yield image


def decode_files(paths: list[Path], size: int, title: str = "decoding images", dicom_window="auto") -> np.ndarray:
    """Decodes many files into one array (`decoded_files`); the first bad file raises `DataError`."""
    out = np.empty((len(paths), size, size, 3), np.uint8)
    for i, image in enumerate(decoded_files(paths, size, title, dicom_window)):
        out[i] = image
    return out
