import keras

from tltf.log import logger
from tltf.models.blocks import BlockMap
from tltf.train.optimizers import ensure_slots
from tltf.train.unfreezing import backbone_units, set_trainable_units, unfrozen_count


class GradualUnfreezing(keras.callbacks.Callback):
    """Trains the head first, then unfreezes the backbone one unit at a time, top down.

    Works in any `model.fit` on a model from `tltf.build_model`. Before the
    first step it gives the optimizer slots for every backbone variable
    (keeping any slots and step count it already has). At each unfreezing it
    sets the layers' `trainable` flags and rebuilds the train function, so
    the new variables train from the next step with their own learning-rate
    multipliers (discriminative rates, layer decay) if the optimizer has
    them. BatchNorm follows the model's `bn` policy.

    Example:
        model.fit(ds, epochs=12, callbacks=[tltf.callbacks.GradualUnfreezing(every=2, unit="block", start_epochs=2)])

    Args:
        every: epochs between two unfreezings.
        unit: `"block"` or `"stage"` (see `tltf.models.blocks`).
        start_epochs: head-only epochs before the first unfreezing.
        verbose: log a line at each unfreezing (the `tltf` logger).
        model: the classifier whose blocks it unfreezes; default the one being fitted. tltf passes the full
            model when it fits the blocks above a frozen prefix on the prefix's cached output (the fitted model
            is made of the same layers, so their flags reach it).
    """

    def __init__(self, every: int = 2, unit: str = "block", start_epochs: int = 1, verbose: int = 1, model=None):
        super().__init__()
        self.classifier = model
        self.every = every
        self.unit = unit
        self.start_epochs = start_epochs
        self.verbose = verbose
        self.unfrozen: list[str] = []
        self.block_map = None

    def on_train_begin(self, logs=None):
        self.block_map = BlockMap.of(self._classifier, self.unit)
        self._units = backbone_units(self.block_map)
        set_trainable_units(self._classifier, self.block_map, self._units)
        with self.model.distribute_strategy.scope():
            ensure_slots(self.model.optimizer, self.model.trainable_variables)
        self._count = None

    def on_epoch_begin(self, epoch, logs=None):
        count = unfrozen_count(epoch, len(self._units), self.every, self.start_epochs)
        if count == self._count:
            return
        self._count = count
        self.unfrozen = self._units[len(self._units) - count:]
        set_trainable_units(self._classifier, self.block_map, self.unfrozen)
        self.model.make_train_function(force=True)
        if self.verbose:
            newest = self.unfrozen[0] if self.unfrozen else "none"
            logger.info(f"GradualUnfreezing: epoch {epoch + 1}: head + {count}/{len(self._units)} {self.unit}s "
                  f"trainable (newest: {newest})")

    def on_train_end(self, logs=None):
        # Every unit trainable again, as when the optimizer was built: a model saved now (the delivered one) must
        # reload with slots for all of them, and a unit never reached was frozen one layer at a time, which
        # setting the backbone trainable does not undo.
        set_trainable_units(self._classifier, self.block_map, self._units)

    @property
    def _classifier(self):
        return self.classifier if self.classifier is not None else self.model
