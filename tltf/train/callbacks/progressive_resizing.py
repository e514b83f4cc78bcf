import keras

from tltf.log import logger


class ProgressiveResizing(keras.callbacks.Callback):
    """Trains the first epochs of a fit at a smaller image size, the rest (and every validation) at full size.

    It sets the size of every `tltf.layers.InputResolution` layer in the fitted model at each epoch's start from
    the epoch number alone, so a resumed fit picks up the right size. Validation always runs at the layers' full
    size, so the epochs compete for "best" on the images the delivered model will see.

    Example:
        shrink = tltf.layers.InputResolution(96)
        images = keras.Input((96, 96, 3))
        fitted = keras.Model(images, classifier(shrink(images)))
        fitted.fit(train, validation_data=val, epochs=10,
                   callbacks=[tltf.callbacks.ProgressiveResizing(size=64, until_epoch=5)])

    Args:
        size: the smaller square size, in pixels.
        until_epoch: the first epoch (0-based, counted as `fit` counts them) trained at full size.
    """

    def __init__(self, size: int, until_epoch: int):
        super().__init__()
        self.size = int(size)
        self.until_epoch = int(until_epoch)
        self._epoch_size = None

    def _layers(self) -> list:
        from tltf.layers import InputResolution
        from tltf.models.anatomy import leaf_layers

        found = [layer for layer in leaf_layers(self.model) if isinstance(layer, InputResolution)]
        if not found:
            raise ValueError("ProgressiveResizing: the fitted model has no tltf.layers.InputResolution layer to "
                             "resize its images with")
        return found

    def _set(self, size=None) -> None:
        for layer in self._layers():
            layer.size.assign(layer.full_size if size is None else min(size, layer.full_size))

    def on_epoch_begin(self, epoch, logs=None):
        size = self.size if epoch < self.until_epoch else None
        if size != self._epoch_size and epoch == self.until_epoch:
            logger.info(f"progressive resizing: training at full size from epoch {epoch + 1}")
        self._epoch_size = size
        self._set(size)

    def on_test_begin(self, logs=None):
        self._set(None)

    def on_test_end(self, logs=None):
        self._set(self._epoch_size)

    def on_train_end(self, logs=None):
        self._set(None)
