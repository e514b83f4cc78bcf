"""Pixel-level adaptation: a CycleGAN between a labelled source and an unlabelled target.

`tltf translate` writes the labelled source translated into the target's
look as an npz that `tltf fit` trains on like any other source; the recipe
route (`adaptation: {method: translate}`) translates in memory before a run
trains.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from tltf.log import logger


@dataclasses.dataclass
class TranslationSettings:
    """How big the CycleGAN is and how long it trains.

    Args:
        image_size: square size both domains are brought to (and the npz holds).
        epochs: passes over the larger of the two image sets.
        batch_size: images of each domain per step.
        filters: the generators' and discriminators' first-layer channels.
        residual_blocks: residual blocks in each generator.
        lr: Adam's learning rate (β₁ 0.5, as in the paper) for both generators and discriminators.
        cycle_weight: λ of the cycle-consistency loss.
        identity_weight: weight of the identity loss.
        seed: seeds the weights and the order of the images.
    """

    image_size: int = 32
    epochs: int = 10
    batch_size: int = 16
    filters: int = 16
    residual_blocks: int = 2
    lr: float = 2e-4
    cycle_weight: float = 10.0
    identity_weight: float = 5.0
    seed: int = 0


@dataclasses.dataclass
class TranslationResult:
    """What `translate_source` wrote: the npz, the sample grid, the per-epoch losses."""

    npz: Path
    grid: Path
    losses: Path
    history: dict


@dataclasses.dataclass
class Translation:
    """A trained CycleGAN and its per-epoch losses.

    Args:
        gan: the `tltf.adapt.cycle_gan.CycleGan`.
        history: its `fit` history (each loss per epoch).
    """

    gan: object
    history: dict

    def to_target(self, images) -> np.ndarray:
        """uint8 source images in the target's look, at their own size (translated at the CycleGAN's)."""
        from tltf.data.images import resize

        images = np.asarray(images[:])  # [:] reads an ImageStore
        translated = translate_images(self.gan.to_target, resize(images, self.gan.to_target.input_shape[1]))
        return resize(translated, images.shape[1])

    def save_generators(self, directory: Path) -> None:
        """`directory/to_target.keras` and `to_source.keras`: the two generators, to translate more images later
        (`translate_images(keras.models.load_model(path), images)`)."""
        directory.mkdir(parents=True, exist_ok=True)
        for generator in (self.gan.to_target, self.gan.to_source):
            generator.save(directory / f"{generator.name}.keras")

    def write_record(self, grid: Path, losses: Path, source_images, target_images) -> None:
        """`grid`: a few source images, translated and translated back, and target images translated to the
        source; `losses`: a CSV of each loss per epoch."""
        from tltf.data.images import resize

        size = self.gan.to_target.input_shape[1]
        _plot_samples(grid, self.gan, resize(np.asarray(source_images[:]), size),
                      resize(np.asarray(target_images[:]), size))
        keys = list(self.history)
        rows = [",".join(["epoch", *keys])] + [
            ",".join([str(i + 1), *(f"{self.history[k][i]:.6g}" for k in keys)])
            for i in range(len(self.history[keys[0]]))]
        losses.write_text("\n".join(rows) + "\n")


def train_cycle_gan(source_images, target_images, settings: TranslationSettings, verbose: int = 2) -> Translation:
    """A `CycleGan` trained on uint8 `[N,S,S,3]` source and target images (unpaired), resized to
    `settings.image_size`."""
    import keras
    import tensorflow as tf

    from tltf.adapt.cycle_gan import CycleGan, patch_discriminator, small_generator, to_unit_range
    from tltf.data.images import resize

    keras.utils.set_random_seed(settings.seed)
    size, filters = settings.image_size, settings.filters
    gan = CycleGan(small_generator(size, filters, settings.residual_blocks, "to_target"),
                   small_generator(size, filters, settings.residual_blocks, "to_source"),
                   patch_discriminator(size, filters, "source_critic"),
                   patch_discriminator(size, filters, "target_critic"),
                   settings.cycle_weight, settings.identity_weight)
    gan.compile(keras.optimizers.Adam(settings.lr, beta_1=0.5), keras.optimizers.Adam(settings.lr, beta_1=0.5))

    def endless(images, seed):
        images = resize(np.asarray(images[:]), size)  # [:] reads an ImageStore
        ds = tf.data.Dataset.from_tensor_slices(images).repeat()
        ds = ds.shuffle(min(len(images), 4096), seed=seed)
        return ds.batch(settings.batch_size, drop_remainder=True).map(to_unit_range)

    pairs = tf.data.Dataset.zip((endless(source_images, settings.seed), endless(target_images, settings.seed + 1)))
    steps = max(1, math.ceil(max(len(source_images), len(target_images)) / settings.batch_size))
    logger.info(f"CycleGAN: {len(source_images)} source and {len(target_images)} target images at "
                f"{size} px, {settings.epochs} epochs of {steps} steps")
    history = gan.fit(pairs.prefetch(tf.data.AUTOTUNE), epochs=settings.epochs, steps_per_epoch=steps,
                      verbose=verbose, shuffle=False).history  # the datasets shuffle themselves
    return Translation(gan, history)


def translate_images(generator, images, batch_size: int = 64) -> np.ndarray:
    """uint8 images run through one generator, as uint8 (in batches)."""
    from tltf.adapt.cycle_gan import from_unit_range, to_unit_range

    out = [from_unit_range(generator(to_unit_range(np.asarray(images[start:start + batch_size])), training=False))
           .numpy() for start in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, *np.asarray(images).shape[1:]), np.uint8)


def translated_splits(splits, target_images, settings: TranslationSettings, verbose: int = 2):
    """The recipe route (`adaptation: {method: translate}`): a CycleGAN trained from the source's training
    images to `target_images`, and `splits` with train and val in the target's look; test stays the source's
    own, so the run's test metrics say how the classifier does on the domain it was translated from. Returns
    `(splits, Translation)`. The translated images are held in memory."""
    from tltf.data.splits import Split

    translation = train_cycle_gan(splits.train.images, target_images, settings, verbose)
    translated = {}
    for name in ("train", "val"):
        split = getattr(splits, name)
        logger.info(f"translating the source's {name} split ({len(split)} images)")
        translated[name] = Split(translation.to_target(split.images), split.labels)
    return dataclasses.replace(splits, **translated), translation


def translate_source(source, target, out, settings: TranslationSettings, verbose: int = 2) -> TranslationResult:
    """Trains a CycleGAN from the source's training images to the target's images, then writes every labelled
    source split translated (`{split}_images`, `{split}_labels`, `class_names`) to `out`, atomically; beside it
    `<stem>_translation.png` (source, translated, translated back) and `<stem>_losses.csv`.

    Args:
        source: a data-source config (a recipe's `data` section): its labelled splits are translated.
        target: a data-source config whose images (labels unused) give the target look.
        out: the `.npz` to write.
        settings: `TranslationSettings`.
        verbose: Keras `fit` verbosity.
    """
    from tltf.adapt.target import load_target
    from tltf.data.sources import load_raw

    out = Path(out)
    source = source.model_copy(update={"image_size": settings.image_size})
    raw, class_names = load_raw(source)
    class_names = list(class_names or [f"class_{i}" for i in range(int(raw["train"].labels.max()) + 1)])
    target_images = load_target(target, settings.image_size, class_names).images
    translation = train_cycle_gan(raw["train"].images, target_images, settings, verbose)
    arrays = {"class_names": np.array(class_names)}
    for name, split in raw.items():
        logger.info(f"translating the source's {name} split ({len(split)} images)")
        arrays[f"{name}_images"] = translation.to_target(split.images)
        arrays[f"{name}_labels"] = np.asarray(split.labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.npz")
    np.savez_compressed(partial, **arrays)
    os.replace(partial, out)
    grid, losses = out.with_name(f"{out.stem}_translation.png"), out.with_name(f"{out.stem}_losses.csv")
    translation.write_record(grid, losses, raw["train"].images[:6], target_images[:6])
    logger.info(f"translated source written to {out} ({', '.join(f'{n} {len(s)}' for n, s in raw.items())}); "
                f"samples in {grid}")
    return TranslationResult(out, grid, losses, translation.history)


def _plot_samples(path, gan, source_images, target_images) -> None:
    """Rows: source, source → target, and back; target, target → source."""
    from tltf.evaluate.plots import _pyplot

    translated = translate_images(gan.to_target, source_images)
    rows = [("source", np.asarray(source_images)), ("translated", translated),
            ("translated back", translate_images(gan.to_source, translated)),
            ("target", np.asarray(target_images)),
            ("target → source", translate_images(gan.to_source, target_images))]
    plt = _pyplot()
    columns = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.4 * columns, 1.5 * len(rows)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (title, images) in enumerate(rows):
        axes[r, 0].set_title(title, fontsize=7, loc="left")
        for c, image in enumerate(images):
            axes[r, c].imshow(image)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
