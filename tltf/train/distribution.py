"""Where and in what precision a run trains: tf.distribute strategies and dtype policies.

The GPU path is ordinary Keras: build and compile inside `strategy.scope()`,
with a global dtype policy set while the model is built. Both run on CPU
too (the default strategy, Mirrored over two logical CPUs, `mixed_bfloat16`),
which is how the tests exercise them.

MultiWorkerMirroredStrategy is refused: Keras 3's `model.fit` fails under it
(keras-team/keras#20585, tensorflow/tensorflow#72388); a test keeps watching
for the fix.
"""

from __future__ import annotations

import contextlib

DISTRIBUTIONS = ("default", "mirrored")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def make_strategy(name: str = "default"):
    """A `tf.distribute.Strategy`: the default one, or Mirrored over all local GPUs (or logical CPUs)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"unsupported distribution {name!r}; expected one of {DISTRIBUTIONS}")


@contextlib.contextmanager
def dtype_policy(name: str = "float32"):
    """Sets Keras' global dtype policy while the block runs, then restores the previous one."""
    import keras

    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; expected one of {PRECISIONS}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def wrap_for_precision(optimizer, precision: str):
    """Wraps the optimizer in a LossScaleOptimizer for float16, once.

    Keras would wrap it at every `compile`, resetting the loss scale at each phase.
    """
    import keras

    if precision == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def make_deterministic(seed: int) -> None:
    """Seeds every generator and turns on TensorFlow's op determinism, for repeatable runs.

    Same machine, same library versions, same recipe: identical weights and
    metrics. It also makes tf.data's parallel maps (augmentation) run in a
    fixed order. Op determinism cannot be turned off again in this process,
    and costs speed (`benchmarks/determinism.py`).
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
