"""Low-rank adaptation (LoRA) of a backbone, on Keras' own `layer.enable_lora`, and merging it for export."""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

import keras

from tltf.models.anatomy import backbone_network, leaf_layers


@dataclasses.dataclass
class LoraReport:
    """What `enable_backbone_lora` did.

    Args:
        rank: the adapters' rank.
        alpha: their scale numerator (the update is `A·B·alpha/rank`).
        layers: names of the layers that got adapters.
        skipped: reason → number of chosen layers that cannot take LoRA.
        adapter_params: parameters in all adapters.
    """

    rank: int
    alpha: float
    layers: list
    skipped: dict
    adapter_params: int

    def summary(self) -> str:
        skipped = "; ".join(f"{count} skipped: {reason}" for reason, count in self.skipped.items())
        return (f"LoRA rank {self.rank}, alpha {self.alpha:g}: adapters on {len(self.layers)} layers "
                f"({self.adapter_params:,} parameters){'; ' + skipped if skipped else ''}")


def enable_backbone_lora(model, rank: int, alpha: Optional[float] = None, layers: Optional[list] = None,
                         pattern: Optional[str] = None) -> LoraReport:
    """Adds LoRA adapters to the chosen backbone layers and freezes every other backbone weight but BatchNorm's.

    Candidates are `layers` (e.g. a block map's layers for some blocks), else every leaf layer of the backbone;
    `pattern` (a regular expression searched in the layer name) narrows them. Layers whose Keras class has
    `enable_lora` (Dense, EinsumDense, Embedding, Conv1D/2D/3D) take adapters; depthwise convolutions, layers
    with kernel constraints and the rest are skipped and counted in the report. The adapters are float32.

    Example:
        model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=96, weights=WEIGHTS)
        print(enable_backbone_lora(model, rank=8, alpha=16).summary())
        model.compile(...); model.fit(...)      # adapters, head and BatchNorm train
        serving = merged_lora_copy(model)      # plain kernels again, for export

    Args:
        model: a tltf classifier (or a user's model with one nested backbone).
        rank: the adapters' rank.
        alpha: the scale numerator (default: `rank`, i.e. scale 1).
        layers: the candidate layers (default: every leaf layer of the backbone).
        pattern: a regular expression the layer name must contain.
    """
    from tltf._keras_internals import trainable_variables_of

    candidates = list(layers) if layers is not None else list(leaf_layers(backbone_network(model)))
    if pattern:
        candidates = [layer for layer in candidates if re.search(pattern, layer.name)]
    enabled, skipped = [], {}
    for layer in candidates:
        if not trainable_variables_of(layer) or isinstance(layer, keras.layers.BatchNormalization):
            continue  # nothing to adapt (inputs, pooling, counters), or trained by the BatchNorm policy
        reason = _why_not_lora(layer)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        layer.enable_lora(rank, lora_alpha=alpha)
        enabled.append(layer)
    freeze_outside_adapters(model)
    params = sum(_size(v) for layer in enabled for v in adapters_of(layer))
    return LoraReport(rank, float(alpha if alpha is not None else rank), [layer.name for layer in enabled], skipped,
                      params)


def _size(variable) -> int:
    size = 1
    for dim in variable.shape:
        size *= int(dim)
    return size


def _why_not_lora(layer) -> str:
    if isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
        return "depthwise or separable convolution (no LoRA in Keras)"
    if not hasattr(layer, "enable_lora"):
        return f"{type(layer).__name__} (no LoRA in Keras)"
    if isinstance(layer, keras.layers.Embedding):
        # A ViT's position embeddings: a table, not a projection; merging for export handles kernels only.
        return "embedding (tltf adapts kernels)"
    if getattr(layer, "kernel_constraint", None) is not None:
        return "kernel constraint"
    if getattr(layer, "lora_enabled", False):
        return "LoRA already enabled"
    return ""


def adapters_of(layer) -> list:
    """A LoRA layer's two adapter matrices (empty for any other layer)."""
    if not getattr(layer, "lora_enabled", False):
        return []
    return [layer.lora_kernel_a, layer.lora_kernel_b]


def adapter_summary(variables) -> Optional[dict]:
    """`{"rank", "params"}` of the LoRA adapters among `variables` (a block's parameters), or None."""
    adapters = [v for v in variables if v.path.rsplit("/", 1)[-1] in ("lora_kernel_a", "lora_kernel_b")]
    if not adapters:
        return None
    ranks = sorted({int(v.shape[0]) for v in adapters if v.path.endswith("lora_kernel_b")})
    return {"rank": ranks[0] if len(ranks) == 1 else ranks, "params": sum(_size(v) for v in adapters)}


def has_lora(model) -> bool:
    """Whether any layer of `model` (searched whole: an ensemble's members too) has LoRA adapters."""
    return any(getattr(layer, "lora_enabled", False) for layer in leaf_layers(model))


def freeze_outside_adapters(model) -> None:
    """When the backbone has LoRA layers: every backbone weight except the adapters and BatchNorm's (which the
    BatchNorm policy governs) is frozen for good, the LoRA layers' own kernels and biases included.

    A tltf model remembers it (its `BatchNormPolicy` wrapper saves `adapters_only`), so a `.keras` file loads
    frozen the same way, optimizer state included. For a model of your own, call this again after loading.
    """
    from tltf._keras_internals import freeze_all_but_adapters
    from tltf.models.anatomy import backbone_of

    if not has_lora(model):
        return
    backbone = backbone_of(model)
    if hasattr(backbone, "adapters_only"):
        backbone.adapters_only = True
    freeze_all_but_adapters(backbone_network(model))


def restart_adapters(model, seed: int = 0) -> None:
    """Fresh A matrices (He-uniform, as `enable_lora` starts them) for a model loaded from `.keras`, whose adapters
    Keras loads as zeros (the kernels hold the merged update): with A and B both zero no gradient reaches them.
    B stays zero, so the model's outputs do not change."""
    for index, layer in enumerate(leaf for leaf in leaf_layers(model) if getattr(leaf, "lora_enabled", False)):
        initializer = keras.initializers.HeUniform(seed=seed + index)
        layer.lora_kernel_a.assign(initializer(layer.lora_kernel_a.shape, dtype="float32"))


def merged_lora_copy(model):
    """A copy of `model` without LoRA: each adapted kernel replaced by `kernel + A·B·alpha/rank`, so inference
    costs what the original network costs. `model` itself is not changed."""
    config = _without_lora(model.get_config())
    copy = model.__class__.from_config(config)
    for source, target in zip(_all_leaves(model), _all_leaves(copy)):
        if getattr(source, "lora_enabled", False):
            target.kernel.assign(source.kernel)  # Keras' `kernel` property is the merged one
            if getattr(source, "use_bias", False):
                target.bias.assign(source.bias)
            for extra_source, extra_target in zip(_non_kernel_weights(source), _non_kernel_weights(target)):
                extra_target.assign(extra_source)
        else:
            for a, b in zip(source.weights, target.weights):
                b.assign(a)
    return copy


def _non_kernel_weights(layer) -> list:
    from tltf._keras_internals import unmerged_kernel

    skip = {id(v) for v in [unmerged_kernel(layer), getattr(layer, "bias", None), *adapters_of(layer)]}
    return [v for v in layer.weights if id(v) not in skip]


def _all_leaves(model):
    return list(leaf_layers(model))


def _without_lora(config):
    """`config` with every layer's `lora_rank`/`lora_alpha` removed, recursively."""
    if isinstance(config, dict):
        return {key: _without_lora(value) for key, value in config.items() if key not in ("lora_rank", "lora_alpha")}
    if isinstance(config, list):
        return [_without_lora(value) for value in config]
    return config
