"""Importing TensorFlow without its native start-up notices.

TF 2.21 prints oneDNN/CUDA notices from C++ at import and at device
discovery, straight to file descriptor 2, ignoring TF_CPP_MIN_LOG_LEVEL.
They would bury tltf's one-line errors, so both run with fd 2 pointed at
/dev/null. Python exceptions still propagate. Set TLTF_TF_STARTUP_LOGS=1 to
see the notices.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def _native_stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> None:
    if os.environ.get("TLTF_TF_STARTUP_LOGS") == "1":
        import keras  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_stderr_silenced():
        import keras  # noqa: F401
        import tensorflow

        # Device discovery prints a CUDA notice on machines without a GPU; a no-op once done.
        # Not in a TF_CONFIG cluster: MultiWorkerMirroredStrategy must configure collective
        # ops before the runtime starts.
        if "TF_CONFIG" not in os.environ:
            tensorflow.config.list_logical_devices()
