"""tltf: transfer learning on Keras 3 for small image datasets.

Public API: `build_model`, `load_recipe`, `fit`, and standard Keras objects
for a user's own `model.fit`: `tltf.layers`, `tltf.callbacks` and
`tltf.optimizers` (layer-wise optimizers, `PhaseSchedule`).
"""

__version__ = "0.1.0"

from tltf._startup import import_tensorflow

import_tensorflow()

# isort: split

from tltf import export, layers  # layers registers the serializable classes
from tltf.models import backbone_of, build_model, head_of
from tltf.recipe import load_recipe
from tltf import adapt, callbacks, errors, optimizers
from tltf.train import schedules  # registers PhaseSchedule
from tltf.train.fit import fit

__all__ = [
    "adapt", "backbone_of", "build_model", "callbacks", "errors", "export", "fit", "head_of", "layers", "load_recipe", "optimizers",
    "schedules", "__version__",
]
