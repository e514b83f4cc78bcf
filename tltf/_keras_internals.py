"""The one place tltf reaches into Keras internals, each use with its reason.

Keras 3.15 has no public API for these. If a Keras upgrade breaks tltf, look
here first. One more reach stays in its class, because it is an override:
`tltf.train.optimizers.LayerwiseLearningRates` replaces the optimizer's
private `_apply_weight_decay` with a per-variable decay in `update_step`
(tested in tests/test_layerwise.py).
"""

from __future__ import annotations

import contextlib


def trainable_variables_of(layer) -> list:
    """A layer's parameters whatever its current `trainable` flag (`layer.trainable_weights` is empty when frozen).

    Used by block maps, the intent check and explain to see what a frozen layer would train.
    """
    return list(getattr(layer, "_trainable_variables", []))


def sublayers(layer) -> list:
    """The layers `layer` tracks directly: a model's layers, and also the sublayers of a plain `Layer`
    (KerasHub's transformer encoders keep their blocks, and the blocks their attention projections, this way;
    `layer.layers` exists on models only)."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def freeze_every_layer(layer) -> None:
    """`trainable = False` on `layer` and on every layer under it, each set directly.

    Keras propagates `trainable` through `Layer._layers`; in a KerasHub backbone loaded from a `.keras` file that
    list does not lead to the blocks its encoder holds (seen with ViTBackbone, keras-hub 0.32), while
    `_flatten_layers` does.
    """
    layer.trainable = False
    for child in sublayers(layer):
        freeze_every_layer(child)


def own_variables(layer) -> list:
    """The variables `layer` holds itself, not through a sublayer (a ViT's class token on its embedding layer)."""
    return list(getattr(layer, "_trainable_variables", [])) + list(getattr(layer, "_non_trainable_variables", []))


def optimizer_variable_key(optimizer, variable) -> str:
    """The key an optimizer indexes a variable's slots by; `update_step` sees backend variables without a
    Keras path, so per-variable learning rates are looked up by this key."""
    return optimizer._var_key(variable)


def add_variables_to_built_optimizer(optimizer, missing: list) -> None:
    """Rebuilds a built optimizer on its variables plus `missing`, keeping its step count and slot values.

    Keras optimizers cannot be extended after `build`; gradual unfreezing needs slots for blocks unfrozen later.
    """
    import keras

    kept = [optimizer.iterations] + (
        [optimizer._learning_rate] if isinstance(optimizer._learning_rate, keras.Variable) else [])
    saved = {v.path: v.numpy() for v in optimizer.variables if all(v is not k for k in kept)}
    # In place: the optimizer's variable tracker holds this very list.
    optimizer._variables[:] = [v for v in optimizer._variables if any(v is k for k in kept)]
    optimizer.built = False
    optimizer.build(list(optimizer._trainable_variables) + missing)
    for v in optimizer.variables:
        if v.path in saved:
            v.assign(saved[v.path])


def optimizer_knows(optimizer, variable) -> bool:
    """Whether a built optimizer has slots for `variable`."""
    return optimizer._var_key(variable) in set(optimizer._trainable_variables_indices)


def optimizer_variables(optimizer) -> list:
    """The model variables a built optimizer has slots for."""
    return list(optimizer._trainable_variables)


def uses_weight_decay(optimizer, variable) -> bool:
    """Whether `exclude_from_weight_decay` left `variable` decayed."""
    return optimizer._use_weight_decay(variable)


# Keras 3.15's `fit` creates two iterators of a tf.data training set per epoch (one it iterates, one it
# discards at the epoch's end), so a shuffled set reshuffles twice per epoch. A resumed run replays that
# many iterators to give its next epoch the order an uninterrupted run would see (tests/test_resume.py).
FIT_ITERATORS_PER_EPOCH = 2


def build_compiled_metrics(model) -> None:
    """Creates a compiled model's metric variables before its first step, so saved accumulators can be put
    back (a run resumed within an epoch). Keras builds them lazily, at the first batch."""
    import keras

    compiled = getattr(model, "_compile_metrics", None)
    if compiled is not None and not compiled.built:
        shape = (1, *model.output.shape[1:])
        compiled.build(keras.ops.zeros(shape), keras.ops.zeros(shape))


def freeze_all_but_adapters(network) -> None:
    """In every layer under `network` (a Keras model, nested models included), all parameters but LoRA adapters
    and BatchNormalization's are frozen for good (`freeze_for_good`). See `tltf.models.lora`."""
    import keras

    for child in sublayers(network):
        freeze_all_but_adapters(child)
    if isinstance(network, keras.layers.BatchNormalization):
        return
    keep = [getattr(network, name) for name in ("lora_kernel_a", "lora_kernel_b", "lora_embeddings_a",
                                                "lora_embeddings_b") if hasattr(network, name)]
    freeze_for_good(network, [v for v in trainable_variables_of(network) if not any(v is k for k in keep)])


def freeze_for_good(layer, variables: list) -> None:
    """Moves `variables` of `layer` to its non-trainable list, so that no later `trainable = True` (on the layer
    or a parent) makes them train again.

    Keras' `layer.trainable = True` sets `trainable` on every variable in the layer's trainable list; LoRA
    (`enable_lora`) only flags the frozen kernel, so unfreezing the backbone for fine-tuning would train it.
    """
    for variable in variables:
        layer._trainable_variables.remove(variable)
        layer._non_trainable_variables.append(variable)
        variable.trainable = False


@contextlib.contextmanager
def replaced_call(layer, call):
    """`layer.call` is `call` inside the block (an instance attribute shadows the class's method: Keras' `__call__`
    looks it up on the instance); the layer's own afterwards."""
    layer.call = call
    try:
        yield
    finally:
        del layer.call


def keras_cache_home() -> str:
    """Where Keras caches downloads: `$KERAS_HOME` as it was when Keras was imported, else `~/.keras`.

    Keras reads the variable once, at import, and has no public accessor; the weights error names this folder.
    """
    import os

    try:
        from keras.src.backend.config import keras_home

        return keras_home()
    except ImportError:
        return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def unmerged_kernel(layer):
    """A LoRA layer's own kernel variable, without the adapters' update (Keras' public `kernel` property adds
    it), or None for a layer without one."""
    return getattr(layer, "_kernel", None)
