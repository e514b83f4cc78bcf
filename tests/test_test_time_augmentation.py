"""`evaluate.tta`: the delivered model averages an image and its mirrored views, in Keras and in the export."""

import json

import numpy as np
import tensorflow as tf
from conftest import write_recipe

import tltf
from tltf.data.sources import load_splits
from tltf.evaluate.evaluator import predict_probabilities
from tltf.evaluate.metrics import roc_auc
from tltf.export import export_run
from tltf.models.anatomy import members_of
from tltf.recipe import load_recipe
from tltf.run_dir import load_run_model


def test_the_delivered_model_averages_the_views_and_the_export_serves_the_same_scores(npz_path, tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)},
                                      evaluate={"tta": ["flip", "vflip"]}))
    run = tltf.fit(recipe, tmp_path / "run", verbose=0).run_dir
    model = load_run_model(run)
    (classifier,) = members_of(model)
    images = load_splits(recipe.data).test.images
    by_hand = np.mean([predict_probabilities(classifier, view) for view in
                       (images, images[:, :, ::-1], images[:, ::-1])], axis=0)
    delivered = predict_probabilities(model, images)
    np.testing.assert_allclose(delivered, by_hand, atol=1e-6)
    assert np.abs(delivered - predict_probabilities(classifier, images)).max() > 1e-4  # the views do change scores
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["auc"] == roc_auc(load_splits(recipe.data).test.labels, by_hand)
    exported = export_run(run, out=tmp_path / "serving")
    serving = tf.saved_model.load(str(exported.version_dir)).signatures["serving_default"]
    served = serving(images=tf.constant(images, tf.float32))["probabilities"].numpy().reshape(-1)
    np.testing.assert_allclose(served, delivered, atol=1e-5)
    assert (run / "saliency.png").is_file()  # Grad-CAM explains the classifier behind the views


def test_no_views_delivers_the_classifier_itself(npz_path, tmp_path):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(npz_path)}))
    run = tltf.fit(recipe, tmp_path / "run", verbose=0).run_dir
    assert members_of(load_run_model(run)) == []
