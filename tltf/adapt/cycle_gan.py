"""CycleGAN (Zhu et al., 2017): image-to-image translation between two domains from unpaired images.

Two generators (source → target look, and back) and two PatchGAN
discriminators, trained together with the paper's losses: least-squares
adversarial losses, an L1 cycle-consistency loss (an image translated and
translated back must come back), and an L1 identity loss (a target image
given to the source → target generator should pass unchanged). Translating
the labelled source into the target's look, then training a classifier on
it, is pixel-level domain adaptation (the idea behind CyCADA). Sized for a
CPU: the number of filters and residual blocks are arguments.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _instance_norm(name: str):
    # One group per channel: each image's channels normalised on their own (the paper's instance normalisation).
    return keras.layers.GroupNormalization(groups=-1, name=name)


def small_generator(size: int, filters: int = 16, residual_blocks: int = 2, name: str = "generator") -> keras.Model:
    """A ResNet generator: 7×7 conv, one stride-2 downsampling, `residual_blocks` residual blocks, one
    upsampling, 7×7 conv to RGB with tanh. Images in and out are in [−1, 1].

    Args:
        size: square image size (a multiple of 2).
        filters: channels of the first convolution (twice that after downsampling).
        residual_blocks: residual blocks at the lower resolution.
        name: the model's name.
    """
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(filters, 7, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU()(_instance_norm("stem_norm")(x))
    x = keras.layers.Conv2D(2 * filters, 3, strides=2, padding="same", name="down")(x)
    x = keras.layers.ReLU()(_instance_norm("down_norm")(x))
    for block in range(residual_blocks):
        y = keras.layers.Conv2D(2 * filters, 3, padding="same", name=f"res{block}_a")(x)
        y = keras.layers.ReLU()(_instance_norm(f"res{block}_a_norm")(y))
        y = keras.layers.Conv2D(2 * filters, 3, padding="same", name=f"res{block}_b")(y)
        x = keras.layers.Add()([x, _instance_norm(f"res{block}_b_norm")(y)])
    x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name="up")(x)
    x = keras.layers.ReLU()(_instance_norm("up_norm")(x))
    outputs = keras.layers.Conv2D(3, 7, padding="same", activation="tanh", name="to_rgb")(x)
    return keras.Model(inputs, outputs, name=name)


def patch_discriminator(size: int, filters: int = 16, name: str = "discriminator") -> keras.Model:
    """A PatchGAN discriminator: two stride-2 convolutions and a 1-channel map of real/fake scores per patch.

    Args:
        size: square image size.
        filters: channels of the first convolution.
        name: the model's name.
    """
    inputs = keras.Input((size, size, 3))
    # No bias before this LeakyReLU: Grappler's conv+bias+LeakyReLU fusion fails on its gradient and logs an error.
    x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False, name="c1")(inputs)
    x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Conv2D(2 * filters, 4, strides=2, padding="same", name="c2")(x)
    x = keras.layers.LeakyReLU(0.2)(_instance_norm("c2_norm")(x))
    outputs = keras.layers.Conv2D(1, 4, padding="same", name="patch_scores")(x)
    return keras.Model(inputs, outputs, name=name)


class CycleGan(keras.Model):
    """Trains the two generators and two discriminators with `fit` on `(source batch, target batch)` pairs.

    Batches are float images in [−1, 1] (`to_unit_range`); the two domains' images need not correspond. Each
    step updates the generators on `adversarial + cycle_weight·cycle + identity_weight·identity` and the
    discriminators on the least-squares loss of telling real from translated images (halved, as in the paper).
    The epoch logs hold each loss.

    Example:
        gan = CycleGan(small_generator(32), small_generator(32), patch_discriminator(32), patch_discriminator(32))
        gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
        gan.fit(tf.data.Dataset.zip((source_ds, target_ds)), epochs=10)
        translated = from_unit_range(gan.to_target(to_unit_range(source_images)))

    Args:
        to_target: generator source → target.
        to_source: generator target → source.
        source_critic: discriminator of source-domain images.
        target_critic: discriminator of target-domain images.
        cycle_weight: λ of the cycle loss (10 in the paper).
        identity_weight: weight of the identity loss (half the cycle weight in the paper).
    """

    def __init__(self, to_target, to_source, source_critic, target_critic, cycle_weight: float = 10.0,
                 identity_weight: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.to_target, self.to_source = to_target, to_source
        self.source_critic, self.target_critic = source_critic, target_critic
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        names = ("generator_loss", "discriminator_loss", "adversarial_loss", "cycle_loss", "identity_loss")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        super().compile(**kwargs)
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=False):
        return self.to_target(images, training=training)

    def losses_of(self, source, target, training: bool = False) -> dict:
        """Every loss of one pair of batches (the generators' total, the discriminators', and their parts)."""
        fake_target = self.to_target(source, training=training)
        fake_source = self.to_source(target, training=training)
        cycled_source = self.to_source(fake_target, training=training)
        cycled_target = self.to_target(fake_source, training=training)
        critic_fake_target = self.target_critic(fake_target, training=training)
        critic_fake_source = self.source_critic(fake_source, training=training)
        adversarial = _least_squares(critic_fake_target, 1.0) + _least_squares(critic_fake_source, 1.0)
        cycle = _l1(source, cycled_source) + _l1(target, cycled_target)
        identity = (_l1(target, self.to_target(target, training=training))
                    + _l1(source, self.to_source(source, training=training)))
        discriminator = 0.5 * (_least_squares(self.target_critic(target, training=training), 1.0)
                               + _least_squares(critic_fake_target, 0.0)
                               + _least_squares(self.source_critic(source, training=training), 1.0)
                               + _least_squares(critic_fake_source, 0.0))
        return {"generator_loss": adversarial + self.cycle_weight * cycle + self.identity_weight * identity,
                "discriminator_loss": discriminator, "adversarial_loss": adversarial, "cycle_loss": cycle,
                "identity_loss": identity}

    def train_step(self, data):
        source, target = data
        generators = self.to_target.trainable_variables + self.to_source.trainable_variables
        critics = self.source_critic.trainable_variables + self.target_critic.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            losses = self.losses_of(source, target, training=True)
        self.generator_optimizer.apply_gradients(zip(tape.gradient(losses["generator_loss"], generators),
                                                     generators))
        self.discriminator_optimizer.apply_gradients(zip(tape.gradient(losses["discriminator_loss"], critics),
                                                         critics))
        del tape
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


def _least_squares(scores, wanted: float):
    return tf.reduce_mean(tf.square(scores - wanted))


def _l1(a, b):
    return tf.reduce_mean(tf.abs(a - b))


def to_unit_range(images):
    """uint8 0–255 pixels → float32 in [−1, 1] (the generators' range)."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def from_unit_range(images):
    """Float images in [−1, 1] → uint8 0–255, rounded."""
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0, 255), tf.uint8)
