"""Pixel-level adaptation: a CycleGAN translates the source's train and val images into the target's look
before the classifier trains on them as usual (`tltf.adapt.translate`); test stays the source's own."""

from __future__ import annotations

from tltf.adapt.methods.base import Prepared, register_method
from tltf.adapt.methods.selected import SelectedOnTarget
from tltf.log import logger


@register_method
class Translate(SelectedOnTarget):
    """The classifier trains on translated source images; the epoch is still judged on the target.

    Example:
        adaptation: {method: translate, target: {source: npz, path: mnist_m.npz}, translate: {epochs: 20}}
    """

    name = "translate"

    def explain(self, adaptation, image_size: int) -> str:
        t = adaptation.translate
        return (f"first a CycleGAN ({t.filters} filters, {t.residual_blocks} residual blocks, {t.epochs} epochs at "
                f"{t.image_size or image_size} px) translates the source's train and val into the target's look; "
                "test stays the source's")

    def prepare(self, recipe, splits, target_images, verbose: int) -> Prepared:
        """The source's train and val splits in the target's look, and the CycleGAN's record. A continued run
        trains the CycleGAN again (the same translation with `deterministic`)."""
        from tltf.adapt.translate import TranslationSettings, translated_splits

        chosen = recipe.adaptation.translate.model_dump()
        chosen["image_size"] = chosen["image_size"] or recipe.data.image_size
        settings = TranslationSettings(seed=recipe.train.seed, **chosen)
        logger.info("translating the source into the target's look (CycleGAN)")
        translated, translation = translated_splits(splits, target_images, settings, verbose)
        return Prepared(translated, TranslationRecord(translation))


class TranslationRecord:
    """Writes the CycleGAN's record into the run directory: example translations, its losses, its generators."""

    def __init__(self, translation):
        self.translation = translation

    def write(self, work_dir, source_splits, target_images) -> None:
        self.translation.write_record(work_dir / "translation.png", work_dir / "translation_losses.csv",
                                      source_splits.train.images[:6], target_images[:6])
        self.translation.save_generators(work_dir / "translation")
