"""The library route: tltf's pieces in a plain Keras `model.fit`.

Head warm-up on a frozen ImageNet MobileNetV2-0.35, then fine-tuning, on
PneumoniaMNIST. Run from the project root (or set SHARED to the folder
holding data/ and weights/):

    python docs/examples/library_route.py [EPOCHS_WARMUP EPOCHS_FINETUNE TRAIN_IMAGES]
"""

import os
import sys
from pathlib import Path

import keras
import numpy as np

import tltf  # first: it imports TensorFlow without the native start-up notices
from tltf.data.images import standardize
from tltf.evaluate.metrics import roc_auc

warmup_epochs, finetune_epochs, n_train = (int(a) for a in (sys.argv[1:] or ["2", "4", "4708"]))
size, batch = 96, 64
shared = Path(os.environ.get("SHARED", "../shared"))

data = np.load(shared / "data" / "pneumoniamnist.npz")
resize = lambda images: standardize(images, size)  # noqa: E731  grey 28 px -> RGB 96 px
x_train, y_train = resize(data["train_images"][:n_train]), data["train_labels"][:n_train].astype("float32")
x_val, y_val = resize(data["val_images"]), data["val_labels"].astype("float32")

# Raw 0-255 pixels in; MobileNetV2's own preprocessing is inside the model.
model = tltf.build_model(
    "mobilenet_v2", alpha=0.35, image_size=size,
    weights=shared / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
)
backbone = tltf.backbone_of(model)

# One optimizer for both phases; the learning rate follows the phases by step count.
steps = -(-len(x_train) // batch)
schedule = tltf.schedules.PhaseSchedule([
    {"steps": warmup_epochs * steps, "lr": 1e-3},
    {"steps": finetune_epochs * steps, "lr": 5e-4, "warmup_steps": steps, "decay": "cosine"},
])
optimizer = keras.optimizers.AdamW(learning_rate=schedule)
optimizer.build(model.trainable_variables)  # slots for every variable now, so the head's survive the switch
best = tltf.callbacks.BestModelCheckpoint("library-route.keras", monitor="val_auc")
metrics = [keras.metrics.AUC(name="auc")]

backbone.trainable = False  # phase 1: head only
model.compile(optimizer, "binary_crossentropy", metrics=metrics)
model.fit(x_train, y_train, batch_size=batch, epochs=warmup_epochs, validation_data=(x_val, y_val),
          callbacks=[best], verbose=2)

backbone.trainable = True  # phase 2: everything; Keras needs a recompile after `trainable` changes
model.compile(optimizer, "binary_crossentropy", metrics=metrics)
model.fit(x_train, y_train, batch_size=batch, initial_epoch=warmup_epochs, epochs=warmup_epochs + finetune_epochs,
          validation_data=(x_val, y_val), callbacks=[best], verbose=2)

best.restore_best()
x_test, y_test = resize(data["test_images"]), data["test_labels"].ravel()
auc = roc_auc(y_test, model.predict(x_test, verbose=0)[:, 0])
print(f"best val AUC {best.best:.4f} at epoch {best.best_epoch + 1}; test AUC {auc:.4f}")
