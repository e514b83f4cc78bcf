"""explain(recipe): the fine-tuning a recipe asks for, block by block, without training.

It renders the run's own plan (`tltf.assemble.describe_plan`): for each
phase (and each step of a gradual unfreezing) and each unit from the stem to
the head, trainable or frozen, BatchNorm mode, parameter count, the effective
learning rate at the start, peak and end of the phase, and the weight decay.
The weights are checked first (as fit does), then the data is read only as
far as needed for the classes and the training-set size, and the plan is
built on a backbone without weights.
"""

from __future__ import annotations

import math


def explain(recipe) -> dict:
    """`{"phases": [{"name", "epochs", "blocks": [...]}, ...], "budget": str, "warnings": [...]}` (see
    docs/fine-tuning.md), with `train.precision: auto` `"precision": {"chosen", "reason"}`, and with
    `adaptation` a line saying what it will do."""
    from tltf.assemble import check_weights, describe_plan, model_from_recipe, recipe_precision
    from tltf.data.sources import peek_data
    from tltf.task import Task

    check_weights(recipe)
    peek = peek_data(recipe.data)
    model = model_from_recipe(recipe, Task(peek.class_names), weights=None)
    steps_per_epoch = math.ceil(peek.train_count / recipe.train.batch_size)
    explanation = describe_plan(recipe, model, steps_per_epoch, peek.warnings).to_dict()
    if recipe.adaptation is not None:
        from tltf.adapt import methods

        method = methods.get(recipe.adaptation.method)
        explanation["adaptation"] = method.describe(recipe.adaptation, recipe.data.image_size)
    if recipe.model.preset:
        from tltf.models.hub import scaling_text

        explanation["preprocessing"] = scaling_text(recipe.model.preset, recipe.data.image_size)
    from tltf.plan_text import delivered_model_lines

    if delivered_model_lines(recipe):
        explanation["delivered"] = "\n".join(delivered_model_lines(recipe))
    if recipe.train.precision == "auto":  # what auto means here; a named precision is the recipe's own
        precision = recipe_precision(recipe, measure=False)
        explanation["precision"] = {"chosen": precision.precision, "reason": precision.reason}
    return explanation


def format_explanation(explanation: dict) -> str:
    """Plain-text tables, one per phase."""
    from tltf.evaluate.report import format_table

    header = ("block", "trainable", "BN", "params", "lr start", "lr peak", "lr end", "weight decay")
    parts = [f"budget: {explanation['budget']}"] if explanation.get("budget") else []
    for key in ("preprocessing", "regularization", "adaptation", "delivered"):
        if explanation.get(key):
            parts.append(explanation[key])
    if explanation.get("precision"):
        precision = explanation["precision"]
        parts.append(f"precision: {precision['chosen']} ({precision['reason']})")
    lora = any("lora" in b for phase in explanation["phases"] for b in phase["blocks"])
    header = header + ("LoRA",) if lora else header
    for phase in explanation["phases"]:
        rows = [(b["name"], "yes" if b["trainable"] else "frozen", b["bn"], f"{b['params']:,}",
                 f"{b['lr']['start']:.3g}", f"{b['lr']['peak']:.3g}", f"{b['lr']['end']:.3g}",
                 f"{b['weight_decay']:g}", *([_lora_text(b.get("lora"))] if lora else []))
                for b in phase["blocks"]]
        epochs = f"{phase['epochs']} epoch{'s' if phase['epochs'] != 1 else ''}"
        parts.append(f"phase {phase['name']}: {epochs}\n" + format_table(rows, header))
    for warning in explanation["warnings"]:
        parts.append(f"warning: {warning}")
    return "\n\n".join(parts) + "\n"


def _lora_text(lora) -> str:
    """A block's LoRA column: rank and adapter parameters (its `params` are the adapters plus BatchNorm's)."""
    return f"rank {lora['rank']}, {lora['params']:,}" if lora else "-"
