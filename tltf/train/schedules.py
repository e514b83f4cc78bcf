import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tltf")
class PhaseSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate that follows a list of phases, driven by the step count.

    Each phase has its own peak rate, an optional linear warm-up and a
    constant or cosine decay. Because the rate is a function of
    `optimizer.iterations`, one optimizer (and its slots) can serve every
    phase, and a resumed run picks up the right rate.

    Example:
        schedule = PhaseSchedule([
            {"steps": 300, "lr": 1e-3},
            {"steps": 700, "lr": 1e-4, "warmup_steps": 100, "decay": "cosine"},
        ])
        optimizer = keras.optimizers.AdamW(learning_rate=schedule)

    Args:
        phases: dicts with `steps`, `lr`, and optionally `warmup_steps`
            (default 0) and `decay` (`"constant"` or `"cosine"`). After the
            last phase the rate stays at its final value.
    """

    def __init__(self, phases):
        self.phases = [
            {"steps": int(p["steps"]), "lr": float(p["lr"]),
             "warmup_steps": int(p.get("warmup_steps", 0)), "decay": p.get("decay", "constant")}
            for p in phases
        ]

    def boundaries(self) -> list[int]:
        """The first step of each phase, and the step after the last one."""
        starts = [0]
        for phase in self.phases:
            starts.append(starts[-1] + phase["steps"])
        return starts

    def __call__(self, step):
        step = ops.cast(step, "float32")
        starts = self.boundaries()
        rate = ops.convert_to_tensor(0.0, "float32")
        for index, phase in enumerate(self.phases):
            local = step - starts[index]
            last = index == len(self.phases) - 1
            in_phase = ops.logical_and(local >= 0, ops.logical_or(local < phase["steps"], last))
            rate = ops.where(in_phase, self._phase_rate(phase, local), rate)
        return rate

    @staticmethod
    def _phase_rate(phase, local):
        peak, warmup, steps = phase["lr"], phase["warmup_steps"], max(phase["steps"], 1)
        local = ops.minimum(local, float(steps))
        if phase["decay"] == "cosine":
            progress = ops.clip((local - warmup) / max(steps - warmup, 1), 0.0, 1.0)
            decayed = 0.5 * peak * (1.0 + ops.cos(math.pi * progress))
        else:
            decayed = ops.convert_to_tensor(peak, "float32")
        if warmup:
            return ops.where(local < warmup, peak * (local + 1.0) / warmup, decayed)
        return decayed

    def get_config(self):
        return {"phases": self.phases}
