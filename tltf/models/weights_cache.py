"""`tltf weights add`: a weights file put into the Keras cache under every name Keras looks for it under, so
`model.weights: imagenet` finds it offline."""

from __future__ import annotations

import dataclasses
import filecmp
import os
import shutil
from pathlib import Path

from tltf.errors import WeightsError
from tltf.log import logger
from tltf.models import families


@dataclasses.dataclass(frozen=True)
class AddedWeights:
    """What `add_weights` did.

    Args:
        cache: the Keras cache folder (`$KERAS_HOME/models`).
        written: the files it wrote.
        present: the files that were there already with the same bytes.
        checked: the backbone the weights were loaded into, or "" when no family knows the file.
    """

    cache: Path
    written: tuple
    present: tuple
    checked: str


def add_weights(path) -> AddedWeights:
    """Copies a keras.applications weights file into the Keras cache, under each name Keras looks for it under
    (the family that knows the file says which: MobileNetV2 names its file after every input size), then loads
    it the way `model.weights: imagenet` will. Running it again changes nothing.

    Example:
        add_weights("../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")

    Raises:
        WeightsError: the file is missing, or the weights do not load into the backbone they are named for (the
            files this call wrote are removed again).
    """
    from tltf.models.backbones import create_backbone, keras_home

    source = Path(path).expanduser()
    if not source.is_file():
        raise WeightsError(f"{source}: no such weights file")
    known = next(filter(None, (family.cached_weights(source.name) for family in families.families()
                               if family.cached_weights)), None)
    cache = Path(keras_home()) / "models"
    cache.mkdir(parents=True, exist_ok=True)
    written, present = [], []
    for name in known.names if known else (source.name,):
        target = cache / name
        if target.is_file() and filecmp.cmp(source, target, shallow=False):
            present.append(target)
            continue
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)  # never a half-written file under the name Keras reads
        written.append(target)
    if known is None:
        logger.warning(f"{source.name}: no backbone family knows this file name; cached as it is, not checked")
        return AddedWeights(cache, tuple(written), tuple(present), "")
    try:
        create_backbone(known.backbone, known.image_size, weights="imagenet", **known.options)
    except WeightsError as error:
        for target in written:  # what this call wrote goes again: a cache entry that does not load misleads
            target.unlink()
        message = f"{source}: does not load as {known.backbone} ({error}); nothing was added to {cache}"
        raise WeightsError(message) from None
    return AddedWeights(cache, tuple(written), tuple(present), known.backbone)
