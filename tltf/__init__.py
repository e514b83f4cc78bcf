"""tltf: transfer learning on Keras 3 for small image datasets.

Public API: `build_model`, `load_recipe`, `fit`, and the Keras objects in
`tltf.layers`, `tltf.callbacks` and `tltf.optimizers`.
"""

__version__ = "0.1.0"

from tltf._startup import import_tensorflow

import_tensorflow()

# isort: split

from tltf import layers  # noqa: F401  (registers the serializable layers)
from tltf.train import schedules as _schedules  # noqa: F401  (registers PhaseSchedule)
from tltf.models import build_model
from tltf.recipe import load_recipe
from tltf.train import callbacks
from tltf.train.fit import fit

__all__ = ["build_model", "callbacks", "fit", "layers", "load_recipe", "__version__"]
