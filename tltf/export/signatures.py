"""The serving signatures: the model plus decoding, resizing and the decision.

`serving_default` takes float32 `images [N,H,W,3]` of raw 0–255 pixels;
`serving_bytes` takes `image_bytes [N]` of encoded JPEG/PNG/BMP/GIF. Both
resize in the graph with the resize training used, run the model, and
return `probabilities`, `class_id` and `class_name`. `saliency` takes the
same float `images` and returns Grad-CAM maps `saliency [N,S,S]` (S the
model's input size) for the class it decides, with `probabilities` and
`class_id`.
"""

from __future__ import annotations

FLOAT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
SALIENCY_SIGNATURE = "saliency"
FLOAT_INPUT = "images"
BYTES_INPUT = "image_bytes"


def serving_functions(model, class_names: list[str], threshold: float):
    """`(serve_images, serve_bytes)` as plain functions for `keras.export.ExportArchive`.

    Args:
        model: the trained Keras model (raw pixels in, probabilities out).
        class_names: names indexed by class id.
        threshold: the binary decision threshold on the positive
            probability (chosen on val); ignored for multiclass.
    """
    import tensorflow as tf

    from tltf.data.images import decode_pixels, resize_pixels
    from tltf.task import Task

    size = int(model.input.shape[1])
    names = tf.constant(class_names)
    binary = Task(class_names).binary

    def decide(pixels):
        probabilities = tf.cast(model(resize_pixels(pixels, size), training=False), tf.float32)
        if binary:
            probabilities = probabilities[:, 0]
            class_id = tf.cast(probabilities >= threshold, tf.int64)
        else:
            class_id = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "class_id": class_id, "class_name": tf.gather(names, class_id)}

    def serve_images(images):
        return decide(images)

    def serve_bytes(image_bytes):
        # Images of different sizes cannot share a batch before they are resized.
        pixels = tf.map_fn(lambda data: resize_pixels(decode_pixels(data)[None], size)[0], image_bytes,
                           fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        return decide(pixels)

    return serve_images, serve_bytes


def saliency_function(model, threshold: float):
    """`saliency(images)` for `keras.export.ExportArchive`: Grad-CAM of the decided class (see `GradCam.maps`).

    Raises:
        ValueError: from `GradCam`, for a model it cannot read.
    """
    from tltf.data.images import resize_pixels
    from tltf.saliency.grad_cam import GradCam

    cam, size = GradCam(model), int(model.input.shape[1])

    def saliency(images):
        maps, probabilities = cam.maps(resize_pixels(images, size), threshold=threshold)
        class_id = cam.decisions(probabilities, threshold)
        return {"saliency": maps, "probabilities": probabilities, "class_id": class_id}

    return saliency


def input_signatures():
    import tensorflow as tf

    return {
        FLOAT_SIGNATURE: [tf.TensorSpec([None, None, None, 3], tf.float32, name=FLOAT_INPUT)],
        SALIENCY_SIGNATURE: [tf.TensorSpec([None, None, None, 3], tf.float32, name=FLOAT_INPUT)],
        BYTES_SIGNATURE: [tf.TensorSpec([None], tf.string, name=BYTES_INPUT)],
    }
