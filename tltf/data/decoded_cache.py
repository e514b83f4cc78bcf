"""Image files decoded once, in parallel, into an `ImageStore` on disk, and reused while the files are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from tltf.config import cache_root
from tltf.data.image_store import ImageStore
from tltf.errors import DataError
from tltf.log import logger

# Changing how files are decoded or resized must change this, so no cache made the old way is reused.
CACHE_FORMAT = "tltf-decoded-images-1"


def default_cache_dir() -> Path:
    """`$TLTF_CACHE/images`, by default `~/.cache/tltf/images`."""
    return cache_root() / "images"


def cache_key(paths: list[Path], size: int, dicom_window="auto") -> str:
    """A digest of the format, the size, the DICOM window, and every file's path, length and modification time."""
    # The default adds nothing, so stores written before DICOM was read are still found.
    window = "" if dicom_window == "auto" else f"window {list(dicom_window) if dicom_window != 'none' else 'none'}\n"
    digest = hashlib.sha256(f"{CACHE_FORMAT}\n{size}\n{window}".encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{Path(path).resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def decode_to_store(paths: list[Path], size: int, cache_dir: Path, title: str = "decoding images",
                    dicom_window="auto") -> ImageStore:
    """The files decoded to uint8 `size`×`size` RGB in an `ImageStore` under `cache_dir`.

    A store made from the same files (same paths, lengths and modification times) at the same size is
    reused; otherwise the files are decoded in a parallel `tf.data` map, with the same TensorFlow ops as
    the in-memory path and the exported model. The first file that cannot be decoded raises a `DataError`
    naming it, and nothing is left behind.
    """
    from tltf.data.images import decoded_files

    cache_dir = Path(cache_dir).expanduser()
    store, _ = cached_store(cache_dir, cache_key(paths, size, dicom_window), size,
                            lambda: decoded_files(paths, size, f"{title} into {cache_dir}", dicom_window), title)
    return store


def cached_store(cache_dir: Path, key: str, size: int, images, title: str, details=None) -> tuple[ImageStore, dict]:
    """The `ImageStore` named `key` under `cache_dir`, written from `images()` unless it exists; and its manifest.

    Args:
        cache_dir: the folder of stores.
        key: names the store; it must change whenever the images would.
        size: the images' side.
        images: called only when the store is written: an iterator of uint8 `[size,size,3]` arrays.
        title: for the progress lines.
        details: called after the images are written: extra JSON-able entries for the manifest (a
            source's labels), returned with it when the store is reused.

    The store is written under a temporary name and renamed when complete, then the manifest that marks
    it done; an error or an unwritable folder leaves nothing behind (`DataError` naming the folder).
    """
    store_path, manifest = cache_dir / f"{key}.u8", cache_dir / f"{key}.json"
    if manifest.exists() and store_path.exists():
        recorded = json.loads(manifest.read_text())
        logger.info(f"{title}: reusing the {recorded['count']} images decoded in {store_path}")
        return ImageStore(store_path, recorded["count"], size), recorded
    partial = store_path.with_name(f"{key}.{os.getpid()}.partial")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        count = 0
        with open(partial, "wb") as out:
            for image in images():
                out.write(image.tobytes())
                count += 1
        os.replace(partial, store_path)
        recorded = {"format": CACHE_FORMAT, "size": size, "count": count, **(details() if details else {})}
        manifest.write_text(json.dumps(recorded))
    except OSError as error:
        raise DataError(f"{cache_dir}: data.cache_dir: cannot keep decoded images there ({error.strerror}); set "
                        "data.cache_dir to a writable folder with room, or data.cache: memory") from None
    finally:
        if partial.exists():  # False too when cache_dir could not be made
            partial.unlink()
    return ImageStore(store_path, count, size), recorded


def concatenated_store(parts: list) -> ImageStore:
    """One store holding the images of `parts` (`ImageStore`s or arrays) one after another, beside the first
    store, copied a batch at a time (reused while the parts are the same)."""
    first = next(part for part in parts if isinstance(part, ImageStore))
    digest = hashlib.sha256(f"{CACHE_FORMAT}\nconcatenated\n".encode())
    for part in parts:
        named = f"{part.path.name}:{part.indices.tobytes().hex()}" if isinstance(part, ImageStore) else "array"
        digest.update(f"{named}\t{len(part)}\n".encode())
        if not isinstance(part, ImageStore):
            digest.update(np.ascontiguousarray(part).tobytes())

    def images():
        for part in parts:
            for start in range(0, len(part), 256):
                yield from part[np.arange(start, min(start + 256, len(part)))]

    store, _ = cached_store(first.path.parent, digest.hexdigest()[:32], first.size, images, "joining image folders")
    return store


def cache_mode(data, count: int) -> str:
    """`data.cache`, with `auto` decided by the decoded size of `count` images."""
    if data.cache != "auto":
        return data.cache
    return "disk" if count * data.image_size * data.image_size * 3 > AUTO_DISK_BYTES else "memory"


# Above this many decoded bytes in one split, `data.cache: auto` keeps the images on disk (at 224 px,
# about 7,000 images); below it they are decoded into memory, which is a little faster to read.
AUTO_DISK_BYTES = 1 << 30


def load_image_files(paths: list[Path], data, title: str):
    """The files decoded at `data.image_size`: an array in memory, or an `ImageStore` (`data.cache`)."""
    from tltf.data.images import decode_files

    window = data.dicom.window
    if cache_mode(data, len(paths)) == "memory":
        return decode_files(paths, data.image_size, title=title, dicom_window=window)
    return decode_to_store(paths, data.image_size, data.cache_dir or default_cache_dir(), title, window)
