"""Ensembles as ordinary runs: several finished runs' models averaged into one Keras model and one run directory.

`ensemble_model` builds the averaging model from Keras models, `fit_member_weights` chooses member weights on
validation predictions, `make_ensemble` writes a run directory that `tltf evaluate`, `compare`, `export` and
`predict` take like any other.
"""

from tltf.ensemble.model import ensemble_model
from tltf.ensemble.run import make_ensemble
from tltf.ensemble.weights import fit_member_weights, log_loss

__all__ = ["ensemble_model", "fit_member_weights", "log_loss", "make_ensemble"]
