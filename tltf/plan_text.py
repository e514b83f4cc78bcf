"""A plan in words: the console's plan table and report.md's opening lines (`tltf.run`)."""

from __future__ import annotations


def plan_text(recipe, plan, replicas: int = 1) -> str:
    """The console's plan: a line on the whole run, its budget, then a table with a row per phase."""
    from tltf.evaluate.report import format_table

    header = ("phase", "epochs", "lr", "backbone", "trainable params", "frozen params", "feature cache")
    m = recipe.model
    title = (f"plan: {recipe.train.strategy} on {backbone_text(m)} (weights {m.weights or 'none'}, BatchNorm {m.bn}), "
             f"{recipe.train.optimizer}, batch {recipe.train.batch_size}, {recipe.train.precision}, "
             f"XLA {_jit_text(recipe.train.jit_compile)}, "
             f"{recipe.train.distribution} distribution ({replicas} replica{'s' if replicas > 1 else ''})")
    regularization = f"{plan.regularization}\n" if plan.regularization else ""
    delivered = "".join(f"\n{line}" for line in delivered_model_lines(recipe))
    rows = plan.summary_rows()
    return (f"{title}\nbudget: {plan.budget}{delivered}"
            + (f"\n{regularization}" + format_table(rows, header) if rows else ""))


def delivered_model_lines(recipe) -> list[str]:
    """What the delivered model is besides the trained weights: averaged weights, test-time views."""
    lines = []
    if recipe.train.ema is not None:
        lines.append(f"weights: a moving average (train.ema momentum {recipe.train.ema:g}, about the last "
                     f"{round(1 / (1 - recipe.train.ema))} steps) is validated, chosen and delivered")
    if recipe.evaluate.tta:
        lines.append(f"test-time augmentation: the delivered model averages the image and its "
                     f"{', '.join(recipe.evaluate.tta)} view{'s' if len(recipe.evaluate.tta) > 1 else ''}")
    return lines


def backbone_text(model_config) -> str:
    """`mobilenet_v2`, or `hub (preset DIR)`."""
    return f"{model_config.backbone} (preset {model_config.preset})" if model_config.preset else model_config.backbone


def _jit_text(setting) -> str:
    if setting != "auto":
        return "on" if setting else "off"
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "auto (on where Keras can)"
    return "auto (off: no GPU)"


def run_summary(recipe, plan, class_names) -> list[str]:
    """What a run trains, as report.md's opening bullet lines."""
    m, t = recipe.model, recipe.train
    return [f"- backbone: `{backbone_text(m)}`, weights `{m.weights or 'none'}`, head `{m.head}`, BatchNorm `{m.bn}`",
            f"- data: `{recipe.data.source}`, {recipe.data.image_size} px, classes: {', '.join(class_names)}",
            f"- strategy: `{t.strategy}`, batch {t.batch_size}, {t.optimizer}; budget: {plan.budget}",
            *(f"- {line}" for line in delivered_model_lines(recipe))]
