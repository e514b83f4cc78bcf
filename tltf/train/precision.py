"""`train.precision: auto`: the dtype policy chosen for this device and this network.

On a GPU mixed precision is the known win: bfloat16 where the GPU computes
in it (compute capability 8.0 and later), float16 with loss scaling before.
On a CPU it depends on the network and the processor: on one machine with
bfloat16 instructions, ResNet50 at 224 px trained faster in bfloat16 and
MobileNetV2-0.35 at 96 px slower (`benchmarks/speed.py`). So on a CPU with
bfloat16 instructions, `auto` times a few training steps of the recipe's
network in both precisions, once per machine, network, image size and batch
size, remembers the answer in `$TLTF_CACHE/precision.json`, and chooses
bfloat16 only where it was clearly faster and its loss finite.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Callable, Optional

from tltf.config import cache_root
from tltf.log import logger

# bfloat16 must beat float32 by this factor: a tie is not worth the lower precision.
MIN_SPEEDUP = 1.1
TIMED_STEPS = 5


@dataclasses.dataclass
class PrecisionChoice:
    """The dtype policy a run uses, and why.

    Args:
        precision: `float32`, `mixed_float16` or `mixed_bfloat16`.
        reason: one line for the plan and `tltf explain`.
    """

    precision: str
    reason: str


def choose_precision(setting: str, network: str, batch_size: int, image_size: int,
                     make_model: Optional[Callable] = None) -> PrecisionChoice:
    """A `train.precision` setting, with `auto` resolved for this machine.

    Example:
        choose_precision("auto", "mobilenet_v2|alpha 0.35", 64, 96, make_model=lambda task: build(task))

    Args:
        setting: `float32`, `mixed_float16`, `mixed_bfloat16` or `auto`.
        network: names the network for the remembered timings (backbone, preset, width).
        batch_size, image_size: what a timed training step takes.
        make_model: `fn(task) -> model`, a randomly initialised copy of the network with the task's head: on a
            CPU with bfloat16 and nothing remembered, both precisions are timed now on it (a minute or two).
            None: say it is not measured yet and choose float32 (what `tltf explain` does).
    """
    if setting != "auto":
        return PrecisionChoice(setting, "train.precision in the recipe")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
        if tuple(capability) >= (8, 0):
            return PrecisionChoice("mixed_bfloat16", f"auto: the GPU computes in bfloat16 (compute capability "
                                                     f"{capability[0]}.{capability[1]})")
        return PrecisionChoice("mixed_float16", "auto: a GPU without bfloat16 units, float16 with loss scaling")
    if not cpu_has_bfloat16():
        return PrecisionChoice("float32", "auto: this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16)")
    key = _measurement_key(network, batch_size, image_size)
    rates = _remembered().get(key)
    if rates is None and make_model is None:
        return PrecisionChoice("float32", "auto: bfloat16 not yet timed for this network on this machine; "
                                          "tltf fit times it once (a minute or two) and remembers")
    if rates is None:
        rates = measure_training_rates(make_model, batch_size, image_size)
        _remember(key, rates)
    faster = rates["mixed_bfloat16"] >= MIN_SPEEDUP * rates["float32"] and rates["bfloat16_finite"]
    measured = (f"timed on this CPU: float32 {rates['float32']:.1f}, bfloat16 {rates['mixed_bfloat16']:.1f} "
                f"images/s")
    return PrecisionChoice("mixed_bfloat16" if faster else "float32", f"auto: {measured}")


def cpu_has_bfloat16() -> bool:
    """Whether the CPU has bfloat16 instructions (Linux's /proc/cpuinfo flags; False where it cannot tell)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def measure_training_rates(make_model: Callable, batch: int, size: int) -> dict:
    """Training images/s of `make_model(task)` (everything trainable) on random images in float32 and
    mixed_bfloat16, after a traced warm-up step; and whether bfloat16's loss was finite."""
    import keras
    import numpy as np

    from tltf.task import Task
    from tltf.train.distribution import dtype_policy

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size, 3)).astype("float32")
    labels = np.arange(batch) % 2
    logger.info(f"precision auto: timing {TIMED_STEPS} training steps in float32 and in bfloat16 "
                f"(once for this network on this machine)")
    rates, finite = {}, True
    for precision in ("float32", "mixed_bfloat16"):
        with dtype_policy(precision):
            task = Task(["a", "b"])
            model = make_model(task)
            model.compile(keras.optimizers.AdamW(1e-4), loss=task.loss())
            model.train_on_batch(images, labels)  # traces
            start = time.perf_counter()
            for _ in range(TIMED_STEPS):
                loss = model.train_on_batch(images, labels)
            rates[precision] = TIMED_STEPS * batch / (time.perf_counter() - start)
            finite = finite and bool(np.isfinite(loss))
    return {**rates, "bfloat16_finite": finite}


def _measurement_key(network: str, batch_size: int, image_size: int) -> str:
    import tensorflow as tf

    return (f"{_cpu_name()}|{os.cpu_count()} cpus|tensorflow {tf.__version__}|{network}|"
            f"{image_size} px|batch {batch_size}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _cache_file() -> Path:
    return cache_root() / "precision.json"


def _remembered() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _remember(key: str, rates: dict) -> None:
    """Adds one measurement to the cache file (written whole, then renamed); a cache that cannot be written
    only means measuring again next time."""
    path = _cache_file()
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({**_remembered(), key: rates}, indent=1))
        os.replace(partial, path)
    except OSError as error:
        logger.warning(f"{path}: cannot remember the precision measurement ({error.strerror})")
    finally:
        partial.unlink(missing_ok=True)  # nothing half-written is left beside the cache
