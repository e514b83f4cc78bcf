"""Decoded images on disk: a split that does not have to fit in memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np


class ImageStore:
    """A read-only uint8 image array `[N,S,S,3]` kept in a file, read a batch at a time.

    It behaves like the in-memory arrays tltf keeps for small datasets where tltf needs it to: `len`,
    `shape`, `dtype`, and indexing with an int, a slice or an array of indices (which returns an
    ndarray of those images). `subset(indices)` gives another store over the same file without reading
    it (a subsample, a carved validation split). Reads use `os.pread`, not a memory map, so the images
    read stay in the operating system's page cache and never count toward the process's memory.

    Example:
        store = ImageStore(Path("cache/abc.u8"), count=32000, size=224)
        batch = store[np.arange(64)]          # uint8 [64,224,224,3]
        val = store.subset(np.arange(3000))   # no image read

    Args:
        path: the file of `count` images, each `size`×`size`×3 bytes, one after another.
        count: how many images the file holds.
        size: the images' side in pixels.
        indices: the images of the file this store shows (default: all, in order).
    """

    dtype = np.dtype(np.uint8)

    def __init__(self, path: Path, count: int, size: int, indices: Optional[np.ndarray] = None):
        self.path, self.count, self.size = Path(path), count, size
        self.indices = np.arange(count) if indices is None else np.asarray(indices, np.int64)
        self._record = size * size * 3

    @property
    def shape(self) -> tuple:
        return (len(self.indices), self.size, self.size, 3)

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, indices) -> "ImageStore":
        """The images at `indices` of this store, as a store over the same file."""
        return ImageStore(self.path, self.count, self.size, self.indices[np.asarray(indices, np.int64)])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._read(self.indices[[key]])[0]
        return self._read(self.indices[key])

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"{self.path}: an ImageStore of {len(self)} images is read a batch at a time; "
                        "index it (store[start:stop]) instead of converting it whole")

    def _read(self, rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_1d(rows)
        out = np.empty((len(rows), self.size, self.size, 3), np.uint8)
        flat = out.reshape(len(rows), -1)
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            for i, row in enumerate(rows):
                view = memoryview(flat[i])
                done = os.preadv(descriptor, [view], int(row) * self._record)
                if done != self._record:
                    raise OSError(f"{self.path}: image {row} is cut short ({done} of {self._record} bytes)")
        finally:
            os.close(descriptor)
        return out

