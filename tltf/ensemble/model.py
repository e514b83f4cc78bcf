"""The ensemble's Keras model: one image input, each member at its own size, their probabilities averaged."""

from __future__ import annotations


def ensemble_model(members, image_size: int, weights=None, name: str = "ensemble"):
    """One Keras model whose output is the weighted mean of its members' probabilities.

    Every tltf model takes raw 0–255 pixels and carries its own preprocessing, so members may differ in backbone
    and input size: a member whose size is not `image_size` sees the input resized (bilinear) inside the model.

    Example:
        model = ensemble_model([load_run_model(a), load_run_model(b)], image_size=96)

    Args:
        members: Keras classifiers with the same output (one sigmoid unit, or C softmax units).
        image_size: the ensemble's input size in pixels.
        weights: one weight per member (normalised); default equal.
        name: the model's name.

    Raises:
        ValueError: the members' outputs differ in shape.
    """
    import keras

    from tltf.layers import ProbabilityAverage

    shapes = {tuple(member.output.shape[1:]) for member in members}
    if len(shapes) > 1:
        raise ValueError(f"the members' outputs differ in shape ({sorted(shapes)}): they classify different classes")
    images = keras.Input((image_size, image_size, 3), name="image")
    outputs = []
    for index, member in enumerate(members):
        member.name = f"member_{index}"  # loaded runs share names; the ensemble's layer names must be unique
        size = member.input.shape[1]
        member_images = images if size == image_size else keras.layers.Resizing(
            size, size, interpolation="bilinear", name=f"member_{index}_resize")(images)
        outputs.append(member(member_images))
    probabilities = ProbabilityAverage(weights, name="probabilities")(outputs)
    return keras.Model(images, probabilities, name=name)

