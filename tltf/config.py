"""Configuration shared by every part: the base of typed sections, and where tltf keeps its caches."""

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A strict pydantic model: a misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def cache_root() -> Path:
    """`$TLTF_CACHE`, by default `~/.cache/tltf`: decoded images, precision measurements."""
    return Path(os.environ.get("TLTF_CACHE", "~/.cache/tltf")).expanduser()
