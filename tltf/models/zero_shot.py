"""CLIP zero-shot classification: class-name prompts → text embeddings → a classifier head with no training.

An image is classified by the cosine similarity of its CLIP image embedding with the embedding of a prompt
for each class ("a chest x-ray showing pneumonia"), scaled by CLIP's learned temperature and put through a
softmax (Radford et al., 2021). With tltf's CLIP feature model (`tltf.models.hub`: image tower, projection,
L2 normalisation) that is exactly a linear head whose weights are the normalised text embeddings, so a
zero-shot classifier is an ordinary tltf model: it evaluates, exports and fine-tunes like any other.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TEMPLATES = ("a photo of a {}.",)


def class_prompts(class_names, templates) -> list[list[str]]:
    """Each class's prompts: every template with `{}` replaced by the class name, underscores as spaces.

    Example:
        class_prompts(["normal", "pneumonia"], ["a chest x-ray showing {}"])
        # [["a chest x-ray showing normal"], ["a chest x-ray showing pneumonia"]]
    """
    return [[template.replace("{}", name.replace("_", " ")) for template in templates] for name in class_names]


def ensemble_text_embeddings(embeddings_per_class) -> np.ndarray:
    """Prompt ensembling: per class, the mean of its prompts' L2-normalised embeddings, normalised again.

    Args:
        embeddings_per_class: one `[prompts, D]` array per class.

    Returns:
        `[C, D]`, unit rows.
    """
    rows = []
    for embeddings in embeddings_per_class:
        embeddings = np.asarray(embeddings, dtype=np.float64)
        mean = (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows)


def zero_shot_head_weights(text_embeddings, logit_scale: float, binary: bool):
    """The output Dense layer's `(kernel, bias)` that computes CLIP's zero-shot probabilities from unit image
    embeddings.

    Multiclass: `kernel = scale · Tᵀ` (`[D, C]`), softmax over the classes. Binary (tltf's one sigmoid output for
    the second class): `kernel = scale · (t₁ − t₀)`, since `sigmoid(s·cos₁ − s·cos₀)` is the two-way softmax's
    probability of class 1.

    Args:
        text_embeddings: `[C, D]` unit rows (`ensemble_text_embeddings`).
        logit_scale: CLIP's temperature as a multiplier (`exp` of its learned `logit_scale`, 100 in CLIP).
        binary: whether the task has one sigmoid output.
    """
    text_embeddings = np.asarray(text_embeddings, dtype=np.float64)
    if binary:
        kernel = logit_scale * (text_embeddings[1] - text_embeddings[0])[:, None]
        return kernel.astype(np.float32), np.zeros(1, np.float32)
    kernel = logit_scale * text_embeddings.T
    return kernel.astype(np.float32), np.zeros(len(text_embeddings), np.float32)


def clip_text_embeddings(preset, class_names, templates):
    """`([C, D] ensembled unit text embeddings, logit scale)` from a CLIP preset's text tower and tokenizer.

    Raises:
        TltfError: the preset has no text tower or tokenizer (it is not a full CLIP preset).
    """
    from tltf.errors import TltfError
    from tltf.models import families
    from tltf.models.hub import hub_family, load_preset

    loaded = load_preset(preset)
    family = hub_family(loaded, "hub_towers")
    if family is None or family.text_embeddings is None:
        towers = ", ".join(name for f in families.families() if f.text_embeddings for name in f.hub_towers)
        raise TltfError(f"model.zero_shot: {preset} is a {type(loaded).__name__}; zero-shot needs a CLIP preset "
                        f"({towers}, with its text tower and tokenizer)")
    embeddings, logit_scale = family.text_embeddings(loaded, preset, class_prompts(class_names, templates))
    return ensemble_text_embeddings(embeddings), logit_scale


def init_zero_shot_head(model, preset, class_names, templates=DEFAULT_TEMPLATES) -> None:
    """Sets the output layer of a tltf model built on a CLIP preset to the zero-shot classifier.

    Example:
        model = tltf.build_model("hub", preset="presets/clip", num_classes=2, image_size=224, dropout=0.0)
        init_zero_shot_head(model, "presets/clip", ["normal", "pneumonia"], ["a chest x-ray showing {}"])
        model.predict(images)          # CLIP's zero-shot probabilities; fine-tuning starts from here

    Args:
        model: from `tltf.build_model("hub", preset=<a CLIP preset>)` with a linear head.
        preset: the same preset.
        class_names: the classes in the model's output order.
        templates: prompt templates with `{}` for the class name; their embeddings are averaged.
    """
    from tltf.errors import TltfError
    from tltf.models.calibration import output_layer_of

    output = output_layer_of(model)
    classes = max(output.units, 2)  # a binary task has one output
    if len(class_names) != classes:
        raise TltfError(f"model.zero_shot.class_names: {len(class_names)} names ({', '.join(class_names)}) for "
                        f"{classes} classes; give one per class, in label order")
    text, scale = clip_text_embeddings(preset, class_names, templates)
    kernel, bias = zero_shot_head_weights(text, scale, binary=output.units == 1)
    if tuple(output.kernel.shape) != kernel.shape:
        raise TltfError(f"model.zero_shot: the head's output layer is {tuple(output.kernel.shape)}, the "
                        f"zero-shot weights {kernel.shape}; use model.head: linear on a CLIP preset")
    output.kernel.assign(kernel)
    output.bias.assign(bias)
