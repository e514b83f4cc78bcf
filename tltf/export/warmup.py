"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays these PredictionLog records when it loads a version, so
the first real request does not pay for graph tracing and memory allocation.
"""

from __future__ import annotations

from pathlib import Path

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"


def write_warmup_requests(version_dir, model_name: str, images, encoded: list[bytes]) -> Path:
    """Writes one float request and one bytes request built from real images.

    Args:
        version_dir: the SavedModel folder.
        model_name: the name TF Serving serves the model under.
        images: float32 `[N,H,W,3]` raw pixels for `serving_default`.
        encoded: encoded image files for `serving_bytes`.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from tltf.export.signatures import BYTES_INPUT, BYTES_SIGNATURE, FLOAT_INPUT, FLOAT_SIGNATURE

    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    requests = [
        (FLOAT_SIGNATURE, FLOAT_INPUT, tf.make_tensor_proto(images, dtype=tf.float32)),
        (BYTES_SIGNATURE, BYTES_INPUT, tf.make_tensor_proto(encoded, dtype=tf.string)),
    ]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, input_name, tensor in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            request.inputs[input_name].CopyFrom(tensor)
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir) -> list:
    """The PredictionLog records of a version's warm-up file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(str(Path(version_dir) / WARMUP_FILE)):
        logs.append(prediction_log_pb2.PredictionLog.FromString(record.numpy()))
    return logs
