"""Errors a user can fix, as opposed to bugs.

A `TltfError` carries one line that names the file or recipe key at fault and
says what to do. The CLI prints it alone and exits 2; any other exception is a
bug and keeps its traceback.
"""


class TltfError(Exception):
    """A problem in the user's recipe, data, weights or command line."""


class RecipeError(TltfError):
    """A recipe that does not parse or does not validate."""


class DataError(TltfError):
    """Data that is missing, unreadable or unusable (e.g. a single class)."""


class WeightsError(TltfError):
    """Backbone weights that cannot be found, downloaded or loaded."""
