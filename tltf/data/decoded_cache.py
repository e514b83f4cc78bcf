"""Image files decoded once, in parallel, into an `ImageStore` on disk, and reused while the files are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tltf.config import cache_root
from tltf.data.image_store import ImageStore
from tltf.errors import DataError
from tltf.log import logger

# Changing how files are decoded or resized must change this, so no cache made the old way is reused.
CACHE_FORMAT = "tltf-decoded-images-1"


def default_cache_dir() -> Path:
    """`$TLTF_CACHE/images`, by default `~/.cache/tltf/images`."""
    return cache_root() / "images"


def cache_key(paths: list[Path], size: int) -> str:
    """A digest of the format, the size, and every file's path, length and modification time."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}\n{size}\n".encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{Path(path).resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def decode_to_store(paths: list[Path], size: int, cache_dir: Path, title: str = "decoding images") -> ImageStore:
    """The files decoded to uint8 `size`×`size` RGB in an `ImageStore` under `cache_dir`.

    A store made from the same files (same paths, lengths and modification times) at the same size is
    reused; otherwise the files are decoded in a parallel `tf.data` map, with the same TensorFlow ops as
    the in-memory path and the exported model, and written to a temporary name renamed when complete.
    The first file that cannot be decoded raises a `DataError` naming it, and nothing is left behind.
    """
    cache_dir = Path(cache_dir).expanduser()
    key = cache_key(paths, size)
    store_path, manifest = cache_dir / f"{key}.u8", cache_dir / f"{key}.json"
    if manifest.exists() and store_path.exists():
        logger.info(f"{title}: reusing the {len(paths)} images decoded in {store_path}")
        return ImageStore(store_path, len(paths), size)
    partial = store_path.with_name(f"{key}.{os.getpid()}.partial")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as out:
            _write_decoded(paths, size, out, f"{title} into {cache_dir}")
        os.replace(partial, store_path)
        manifest.write_text(json.dumps({"format": CACHE_FORMAT, "size": size, "count": len(paths),
                                        "first": str(paths[0]) if paths else None}))
    except OSError as error:
        raise DataError(f"{cache_dir}: data.cache_dir: cannot keep decoded images there ({error.strerror}); set "
                        "data.cache_dir to a writable folder with room, or data.cache: memory") from None
    finally:
        if partial.exists():  # False too when cache_dir could not be made
            partial.unlink()
    return ImageStore(store_path, len(paths), size)


def _write_decoded(paths: list[Path], size: int, out, title: str) -> None:
    from tltf.data.images import decoded_files

    for image in decoded_files(paths, size, title):
        out.write(image.tobytes())


# Above this many decoded bytes in one split, `data.cache: auto` keeps the images on disk (at 224 px,
# about 7,000 images); below it they are decoded into memory, which is a little faster to read.
AUTO_DISK_BYTES = 1 << 30


def load_image_files(paths: list[Path], data, title: str):
    """The files decoded at `data.image_size`: an array in memory, or an `ImageStore` (`data.cache`)."""
    from tltf.data.images import decode_files

    size = data.image_size
    mode = data.cache
    if mode == "auto":
        mode = "disk" if len(paths) * size * size * 3 > AUTO_DISK_BYTES else "memory"
    if mode == "memory":
        return decode_files(paths, size, title=title)
    return decode_to_store(paths, size, data.cache_dir or default_cache_dir(), title)
