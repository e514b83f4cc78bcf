"""tltf: transfer learning on Keras 3 for small image datasets.

Public API: `load_recipe`, `fit`, `explain`, `build_model`, the `data`,
`train`, `evaluate` and `export` packages, and standard Keras objects for a
user's own `model.fit`: `tltf.layers`, `tltf.callbacks` and `tltf.optimizers`
(layer-wise optimizers, `PhaseSchedule`). Progress goes to the `tltf` logger.
"""

from tltf.version import __version__

from tltf._startup import import_tensorflow

import_tensorflow()

# isort: split

from tltf import export, layers  # layers registers the serializable classes
from tltf.models import backbone_of, build_model, head_of
from tltf.recipe import load_recipe
from tltf import adapt, callbacks, data, errors, evaluate, log, optimizers, train
from tltf.train import schedules  # registers PhaseSchedule
from tltf.assemble import check_weights
from tltf.explain import explain, format_explanation
from tltf.run import FitResult, fit
from tltf import ensemble
from tltf.task import Task

__all__ = [
    "FitResult", "Task", "adapt", "backbone_of", "build_model", "callbacks", "check_weights", "data", "ensemble",
    "errors", "evaluate", "explain", "format_explanation", "export", "fit", "head_of", "layers", "load_recipe", "log",
    "optimizers", "schedules", "train", "__version__",
]
