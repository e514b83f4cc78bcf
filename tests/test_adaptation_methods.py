"""CDAN+E, minimum class confusion, AdaBN, the unsupervised selection criteria and the verdict."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_adversarial_step, assert_delivered_by_dev_or_its_fallback, separable_images, write_recipe
from fixtures.shifted_domain import shift_domain

import tltf
from tltf.adapt import (
    ConditionalAdversarialModel,
    DomainAccuracyWatch,
    MinimumClassConfusionModel,
    MultilinearMap,
    adapt_batch_norm,
    adaptation_verdict,
    dev_risk,
    domain_head_multipliers,
    minimum_class_confusion,
    soft_neighborhood_density,
)
from tltf.adapt.domain_accuracy import domain_accuracy_problem
from tltf.adapt.selection import dev_problem, importance_weights, weight_diagnostics
from tltf.adapt.verdict import verdict_message
from tltf.recipe import load_recipe


def source_and_target(n=8, size=16):
    images, labels = separable_images(n, size, channels=3)
    target = shift_domain(images[..., 0])[..., None].repeat(3, -1)
    return images.astype("float32"), labels[:, None].astype("float32"), target.astype("float32")


def tiny_classifier(**kwargs):
    return tltf.build_model("tiny_test", image_size=16, weights=None, dropout=0.0, bn="frozen", **kwargs)


def assert_sgd_step(wrapper, variables, loss_fn, data, lr=0.1):
    """After `wrapper.train_step(data)` with SGD(lr), each variable moved by exactly −lr·∂loss_fn/∂variable."""
    with tf.GradientTape() as tape:
        loss = loss_fn()
    gradients = tape.gradient(loss, variables)
    before = [v.numpy().copy() for v in variables]
    wrapper.train_step(data)
    moved = 0
    for variable, old, gradient in zip(variables, before, gradients):
        expected = old - lr * (gradient.numpy() if gradient is not None else 0.0)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-4, atol=1e-6, err_msg=variable.path)
        moved += gradient is not None and np.abs(gradient.numpy()).max() > 1e-7
    assert moved >= 2


# --- minimum class confusion ---

def test_class_confusion_is_zero_for_confident_distinct_predictions_and_half_for_uniform_ones():
    confident = np.array([[0.999, 0.0005, 0.0005], [0.0005, 0.999, 0.0005], [0.0005, 0.0005, 0.999]] * 2)
    assert float(minimum_class_confusion(confident, temperature=1.0)) < 0.01
    uniform = np.full((6, 2), 0.5)
    assert float(minimum_class_confusion(uniform)) == pytest.approx(0.5)
    # Binary outputs [B,1] are the two-class probabilities [1 − p, p].
    p = np.array([[0.9], [0.2], [0.6]])
    assert float(minimum_class_confusion(p)) == pytest.approx(float(minimum_class_confusion(np.hstack([1 - p, p]))))


def test_class_confusion_matches_the_papers_formula_computed_here():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=10)
    tempered = np.exp(np.log(probabilities) / 2.5)
    tempered /= tempered.sum(1, keepdims=True)
    entropy = -(tempered * np.log(tempered)).sum(1)
    weights = 1 + np.exp(-entropy)
    weights = 10 * weights / weights.sum()
    confusion = (tempered * weights[:, None]).T @ tempered
    confusion /= confusion.sum(1, keepdims=True)
    expected = (confusion.sum() - np.trace(confusion)) / 4
    assert float(minimum_class_confusion(probabilities.astype("float32"))) == pytest.approx(expected, rel=1e-5)


def test_mcc_step_descends_task_loss_plus_weighted_confusion():
    model = tiny_classifier()
    mcc = MinimumClassConfusionModel(model, weight=0.7, temperature=2.5)
    mcc.compile(optimizer=keras.optimizers.SGD(0.1))
    source, labels, target = source_and_target()

    def loss():
        predictions = model(np.concatenate([source, target]), training=True)
        return mcc.task_loss(labels, predictions[:8]) + 0.7 * minimum_class_confusion(predictions[8:])

    assert_sgd_step(mcc, model.trainable_variables, loss, ((tf.constant(source), tf.constant(labels)),
                                                           tf.constant(target)))


# --- CDAN+E ---

def test_multilinear_map_is_the_outer_product_or_its_random_projection():
    features = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    probabilities = np.random.default_rng(1).dirichlet(np.ones(3), size=5).astype("float32")
    exact = MultilinearMap(3)
    np.testing.assert_allclose(exact(features, probabilities).numpy(),
                               np.einsum("bc,bd->bcd", probabilities, features).reshape(5, 12), rtol=1e-6)
    wide = np.random.default_rng(2).normal(size=(5, 2048)).astype("float32")
    randomized = MultilinearMap(3, seed=4)
    out = randomized(wide, probabilities).numpy()
    expected = (wide @ randomized.feature_projection.numpy()) * (probabilities @ randomized.class_projection.numpy())
    assert out.shape == (5, 1024)
    np.testing.assert_allclose(out, expected / 32.0, rtol=1e-4, atol=1e-5)


def test_cdan_step_reverses_the_entropy_weighted_conditional_domain_gradient():
    """One SGD step: the classifier moves by −lr·(g_task − λ·g_domain), the domain head by −lr·g_domain, with the
    domain loss (features ⊗ predictions, entropy-weighted per domain) computed here without the reversal."""
    keras.utils.set_random_seed(1)
    model = tiny_classifier()
    cdan = ConditionalAdversarialModel(model, hidden_units=[8], dropout=0.0, entropy_conditioning=True)
    cdan.compile(optimizer=keras.optimizers.SGD(0.1))
    cdan.reversal.lambda_.assign(0.5)
    source, labels, target = source_and_target()
    # A random head predicts ~0.5 everywhere, where entropy weights are all equal: give its logits a spread of 2.
    logit = model.get_layer("head").get_layer("logit")
    _, features = cdan.twin(np.concatenate([source, target]), training=True)
    direction = np.random.default_rng(0).normal(size=logit.kernel.shape).astype("float32")
    spread = np.std(features.numpy() @ direction)
    logit.kernel.assign(direction * 2.0 / spread)
    logit.bias.assign(-np.mean(features.numpy() @ logit.kernel.numpy(), keepdims=True)[0])
    domains = np.concatenate([np.zeros((8, 1)), np.ones((8, 1))]).astype("float32")
    classifier_vars, domain_vars = model.trainable_variables, cdan.domain_head.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        predictions, features = cdan.twin(np.concatenate([source, target]), training=True)
        probabilities = tf.stop_gradient(tf.concat([1 - predictions, predictions], axis=1))
        entropy = -tf.reduce_sum(probabilities * tf.math.log(tf.maximum(probabilities, 1e-7)), axis=1)
        weights = 1 + tf.exp(-entropy)
        weights = tf.concat([weights[:8] / tf.reduce_mean(weights[:8]), weights[8:] / tf.reduce_mean(weights[8:])], 0)
        assert np.std(weights.numpy()) > 0.05, weights  # the weighting is seen
        outer = tf.reshape(probabilities[:, :, None] * features[:, None, :], (16, -1))
        logits = cdan.domain_head(outer, training=True)
        domain = tf.reduce_mean(weights * keras.losses.binary_crossentropy(domains, logits, from_logits=True))
        task = cdan.task_loss(labels, predictions[:8])
    assert_adversarial_step(cdan, ((tf.constant(source), tf.constant(labels)), tf.constant(target)), classifier_vars,
                            domain_vars, tape.gradient(task, classifier_vars),
                            tape.gradient(domain, classifier_vars + domain_vars), lam=0.5, lr=0.1)


# --- AdaBN ---

def test_adabn_sets_frozen_batch_norm_statistics_to_the_targets_and_changes_nothing_else():
    model = tiny_classifier()
    policy = next(layer for layer in model.layers if isinstance(layer, tltf.layers.BatchNormPolicy))
    backbone = policy.layer
    bn = backbone.get_layer("block1_bn")
    _, _, target = source_and_target(n=16)
    weights = [w.numpy().copy() for w in model.trainable_weights]
    flags = [layer.trainable for layer in backbone.layers]
    used = adapt_batch_norm(model, target.astype("uint8"), batch_size=8, batches=2)
    assert used == 2
    # What block1's convolution gives each batch of target images (all 16 are used, in order), and the
    # average of the two batches' statistics.
    to_backbone = keras.Model(model.input, policy.input)
    conv = keras.Model(backbone.input, backbone.get_layer("block1_conv").output)
    outputs = [conv(to_backbone(target[i:i + 8])).numpy() for i in (0, 8)]
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([o.mean((0, 1, 2)) for o in outputs], 0),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([o.var((0, 1, 2)) for o in outputs], 0),
                               rtol=1e-3, atol=1e-5)
    assert policy.mode == "frozen" and [layer.trainable for layer in backbone.layers] == flags
    for before, after in zip(weights, model.trainable_weights):
        assert np.array_equal(before, after.numpy())


def test_adabn_matched_to_the_source_gives_target_activations_the_sources_moments_after_every_batch_norm():
    from tltf.train.callbacks.batch_norm_calibration import batch_norm_layers

    model = tiny_classifier()
    policy = next(layer for layer in model.layers if isinstance(layer, tltf.layers.BatchNormPolicy))
    norms = batch_norm_layers(model)
    rng = np.random.default_rng(0)
    for norm in norms:  # statistics that are not the source's own, as ImageNet's are not an X-ray's
        norm.moving_mean.assign(rng.normal(0, 0.3, norm.moving_mean.shape))
        norm.moving_variance.assign(rng.uniform(0.5, 2.0, norm.moving_variance.shape))
    source, _, target = source_and_target(n=16)
    to_backbone = keras.Model(model.input, policy.input)
    after_norms = keras.Model(policy.layer.input, [norm.output for norm in norms])

    def moments(images):
        return [(o.numpy().mean((0, 1, 2)), o.numpy().var((0, 1, 2))) for o in after_norms(to_backbone(images))]

    source_moments, target_before = moments(source), moments(target)
    assert np.abs(source_moments[0][0] - target_before[0][0]).max() > 0.03  # the shift is visible after the first
    weights = [w.numpy().copy() for w in model.trainable_weights]
    # one batch holding every image: the matching is exact at every layer, not only on average over batches
    used = adapt_batch_norm(model, target.astype("uint8"), batch_size=16, batches=1,
                            source_images=source.astype("uint8"))
    assert used == 1 and len(norms) >= 2
    for (source_mean, source_var), (target_mean, target_var) in zip(source_moments, moments(target)):
        np.testing.assert_allclose(target_mean, source_mean, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(target_var, source_var, rtol=1e-3, atol=1e-5)
    assert policy.mode == "frozen"
    for before, after in zip(weights, model.trainable_weights):
        assert np.array_equal(before, after.numpy())
    assert all("call" not in vars(norm) for norm in norms)  # each layer's own call again


def test_matched_statistics_are_classic_adabns_when_the_layer_held_the_sources():
    from tltf.adapt.batch_norm import _matched_statistics

    source_mean, source_var = np.array([0.5, -1.0]), np.array([2.0, 0.3])
    target_mean, target_var = np.array([1.5, 0.2]), np.array([4.0, 0.1])
    mean, variance = _matched_statistics(source_mean, source_var, source_mean, source_var, target_mean, target_var,
                                         0.0)
    np.testing.assert_allclose(mean, target_mean)
    np.testing.assert_allclose(variance, target_var)


# --- selection criteria ---

def test_dev_risk_is_the_mean_loss_under_equal_weights_and_uses_the_control_variate():
    losses = np.array([0.5, 0.2, 0.1, 0.9])
    assert dev_risk(np.ones(4), losses) == pytest.approx(losses.mean())
    weights = np.array([1.0, 2.0, 3.0, 2.0])
    weighted = weights * losses  # [0.5, 0.4, 0.3, 1.8]
    eta = -np.cov(weighted, weights)[0, 1] / np.var(weights, ddof=1)
    assert dev_risk(weights, losses) == pytest.approx(weighted.mean() + eta * weights.mean() - eta)


def test_importance_weights_are_near_one_for_one_domain_and_favour_target_like_points():
    rng = np.random.default_rng(0)
    same = importance_weights(rng.normal(size=(400, 3)), rng.normal(size=(400, 3)), rng.normal(size=(200, 3)))
    assert abs(same.mean() - 1.0) < 0.15
    shifted = importance_weights(rng.normal(size=(400, 3)), rng.normal(1.5, size=(400, 3)),
                                 np.array([[-1.5, -1.5, -1.5], [0.0, 0.0, 0.0], [1.5, 1.5, 1.5]]))
    assert shifted[0] < shifted[1] < shifted[2]


def test_dev_says_it_cannot_judge_domains_it_can_tell_apart_or_weights_on_a_few_images():
    rng = np.random.default_rng(1)
    source, validation = rng.normal(size=(400, 3)), rng.normal(size=(200, 3))
    overlapping = weight_diagnostics(importance_weights(source, rng.normal(0.3, size=(400, 3)), validation))
    assert 0.5 < overlapping["weight_mean"] < 2 and overlapping["effective_fraction"] > 0.5
    assert dev_problem(overlapping) == ""
    apart = weight_diagnostics(importance_weights(source, rng.normal(8.0, size=(400, 3)), validation))
    assert apart["weight_mean"] < 0.01  # every validation image looks like source: its weight is clipped near 0
    assert dev_problem(apart).startswith("DEV cannot judge this shift: the domain classifier tells source from "
                                         "target almost perfectly")
    few = np.r_[np.full(95, 0.2), np.full(5, 16.0)]  # mean 0.99, but five images carry the estimate
    assert weight_diagnostics(few)["effective_fraction"] == pytest.approx(few.sum() ** 2 / (few ** 2).sum() / 100)
    assert "rest on 8% of the source validation images" in dev_problem(weight_diagnostics(few))


def test_dev_chooses_among_the_epochs_it_can_judge_and_the_run_says_when_there_were_none():
    from tltf.adapt.evaluation import _dev_problem_in_training, selection_report

    history = {"dev_risk": [0.5, 0.2, 0.1], "dev_trusted": [1.0, 0.0, 0.0], "val_auc": [0.7, 0.9, 0.8],
               "dev_weight_mean": [1.0, 0.01, 0.02], "dev_effective_fraction": [0.6, 0.6, 0.5]}
    selection = selection_report(history)
    assert selection["dev"]["epoch"] == 1  # epochs 2 and 3 have lower risks, but DEV cannot judge them
    assert _dev_problem_in_training(history, selection, "dev") == ""  # it chose an epoch it could judge
    assert "[epoch 3; 2 of 3 epochs]" in _dev_problem_in_training(history, selection, "snd")  # the last epoch
    never = {**history, "dev_trusted": [0.0, 0.0, 0.0]}
    selection = selection_report(never)
    assert "dev" not in selection and selection["source_val"]["epoch"] == 2
    assert _dev_problem_in_training(never, selection, "dev").endswith(
        "[all 3 epochs]; so the epoch was chosen by source validation, as for the source-only model")


def test_soft_neighbourhood_density_of_identical_and_clustered_predictions():
    identical = np.tile([[0.7, 0.3]], (5, 1))
    assert soft_neighborhood_density(identical) == pytest.approx(np.log(4))
    clustered = np.array([[0.99, 0.01]] * 3 + [[0.01, 0.99]] * 3)
    # Each example's neighbours are its own cluster's 2 others: entropy log 2 (the other cluster is e^-19 away).
    assert soft_neighborhood_density(clustered) == pytest.approx(np.log(2), abs=1e-4)


# --- verdict and the domain classifier's watch ---

def binary_outputs(positive_share, n=200, seed=0):
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < positive_share
    return np.where(positive, rng.uniform(0.6, 0.99, n), rng.uniform(0.01, 0.4, n))[:, None]


def test_verdict_says_collapsed_worse_or_adapted():
    source_only = binary_outputs(0.6)
    adapted = binary_outputs(0.97, seed=1)
    collapsed = adaptation_verdict(adapted, source_only, 0.3, 0.4)
    share, other = (adapted >= 0.5).mean(), (source_only >= 0.5).mean()
    assert collapsed["verdict"] == "collapsed"
    assert collapsed["reasons"] == [f"it predicts {share:.0%} of the target images as one class (source-only: "
                                    f"{other:.0%})"]
    worse = adaptation_verdict(binary_outputs(0.55, seed=2), source_only, 0.5, 0.4)
    assert worse["verdict"] == "worse" and "DEV risk" in worse["reasons"][0]
    assert adaptation_verdict(binary_outputs(0.55, seed=2), source_only, 0.5, 0.6, criterion="snd")["verdict"] \
        == "worse"
    fine = adaptation_verdict(binary_outputs(0.55, seed=2), source_only, 0.3, 0.4)
    assert fine["verdict"] == "adapted" and not fine["reasons"]
    assert fine["source_only"]["predicted_share"][1] == pytest.approx((source_only[:, 0] >= 0.5).mean())
    unjudged = adaptation_verdict(binary_outputs(0.55, seed=2), source_only, 0.5, 0.4, "dev",
                                  "DEV cannot judge this shift: because")
    assert unjudged["verdict"] == "adapted" and unjudged["criterion_adapted"] == 0.5  # reported, not compared
    assert verdict_message(unjudged).endswith("; the two were not compared by DEV: DEV cannot judge this shift: "
                                              "because")
    # A source-only model that itself predicts one class is not a collapse of the adapted one.
    assert adaptation_verdict(binary_outputs(0.97, seed=1), binary_outputs(0.95, seed=3))["verdict"] == "adapted"


def test_domain_accuracy_out_of_range_for_two_epochs_while_lambda_is_on_is_a_problem(tltf_log):
    assert domain_accuracy_problem([0.55, 0.3, 0.5], [0.1, 0.5, 0.9]) == ""  # one epoch: a transient
    assert domain_accuracy_problem([0.2, 0.2, 0.6], [0.0, 0.0, 0.5]) == ""  # λ = 0: no game yet
    low = domain_accuracy_problem([0.57, 0.25, 0.15], [0.2, 0.6, 0.9])
    assert "0.25, 0.15 in epochs 2–3" in low and "below 0.4" in low
    assert "above 0.9" in domain_accuracy_problem([0.95, 0.97], [0.3, 0.5])
    watch = DomainAccuracyWatch()
    for accuracy in (0.57, 0.25, 0.15, 0.1):
        watch.on_epoch_end(0, {"domain_accuracy": accuracy, "lambda": 0.5})
    assert sum("below 0.4" in line for line in tltf_log) == 1  # once per stretch


def test_the_domain_classifier_learns_at_its_multiple_of_the_rate():
    model = tiny_classifier()
    dann = tltf.adapt.DomainAdversarialModel(model, hidden_units=[8], dropout=0.0)
    multipliers = domain_head_multipliers(dann, 10.0)
    assert set(multipliers) == {"domain_hidden_1/kernel", "domain_hidden_1/bias", "domain_logit/kernel",
                                "domain_logit/bias"}
    dann.compile(optimizer=tltf.optimizers.LayerwiseSGD(0.01, lr_multipliers=multipliers))
    source, labels, target = source_and_target()
    head = dann.domain_head.trainable_variables
    with tf.GradientTape() as tape:
        predictions, features = dann.twin(np.concatenate([source, target]), training=True)
        domains = np.concatenate([np.zeros((8, 1)), np.ones((8, 1))]).astype("float32")
        domain = tf.reduce_mean(dann.domain_loss(domains, dann.domain_head(features, training=True)))
    gradients = tape.gradient(domain, head)
    before = [v.numpy().copy() for v in head]
    dann.train_step(((tf.constant(source), tf.constant(labels)), tf.constant(target)))
    for variable, old, gradient in zip(head, before, gradients):
        np.testing.assert_allclose(variable.numpy(), old - 0.1 * gradient.numpy(), rtol=1e-4, atol=1e-7)


# --- through a recipe ---

class RecordMultipliers(keras.callbacks.Callback):
    """The learning-rate multipliers the optimizer holds when each phase's `fit` starts."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_begin(self, logs=None):
        from tltf.train.optimizers import inner_optimizer

        self.seen.append(dict(inner_optimizer(self.model.optimizer).lr_multipliers))


def adapted_run(tmp_path, domains, method, *settings, strategy="warmup_then_finetune", callbacks=()):
    source, target = domains
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(source)},
                        train={"strategy": strategy, "epochs": 3, "head_warmup": {"epochs": 1}})
    recipe = load_recipe(path, [f"adaptation.target={{source: npz, path: {target}}}", f"adaptation.method={method}",
                                "adaptation.domain_head.hidden=[8]", *settings])
    tltf.fit(recipe, tmp_path / "run", verbose=0, callbacks=callbacks)
    history = np.genfromtxt(tmp_path / "run" / "history.csv", delimiter=",", names=True)
    return json.loads((tmp_path / "run" / "metrics.json").read_text()), history


def test_cdan_run_delivers_the_epoch_dev_chooses_judges_it_and_exports_the_task_path(tmp_path, domains):
    from tltf.export import export_run

    multipliers = RecordMultipliers()
    metrics, history = adapted_run(tmp_path, domains, "cdan", callbacks=[multipliers])
    # The domain classifier is held still in the warm-up (λ is 0: nothing plays against it), then trains at 10×
    # the phase's rate (neither phase uses per-unit rates).
    keys = ["domain_hidden_1/kernel", "domain_hidden_1/bias", "domain_logit/kernel", "domain_logit/bias"]
    assert multipliers.seen == [dict.fromkeys(keys, 0.0), dict.fromkeys(keys, 10.0)]
    judged = metrics["adaptation"]
    assert judged["method"] == "cdan" and judged["select"] == "dev"
    # The delivered epoch is the one with the lowest DEV risk among those DEV can judge (source validation's when
    # there is none); what the other rules would pick is reported.
    assert_delivered_by_dev_or_its_fallback(metrics, history)
    assert judged["selection"]["source_val"]["epoch"] == int(np.argmax(history["val_auc"])) + 1
    assert judged["selection"]["target_labels"]["target_accuracy"] == pytest.approx(
        np.max(history["target_accuracy"]), abs=1e-4)
    assert judged["verdict"] in ("adapted", "worse", "collapsed") and 0 <= judged["agreement"] <= 1
    assert judged["criterion"] == "dev" and judged["criterion_adapted"] == pytest.approx(
        # the same criterion, recomputed on the delivered model
        history["dev_risk"][metrics["best_epoch"] - 1], abs=1e-3)
    assert (tmp_path / "run" / "source_only" / "model.keras").exists()
    report = (tmp_path / "run" / "report.md").read_text()
    assert "adaptation verdict" in report
    # DEV's own trustworthiness is logged every epoch, and said when no epoch passed it.
    trusted = [not dev_problem({"weight_mean": m, "effective_fraction": f})
               for m, f in zip(history["dev_weight_mean"], history["dev_effective_fraction"])]
    assert trusted == [bool(t) for t in history["dev_trusted"]]
    print("epochs DEV could judge:", trusted)
    assert (not any(trusted)) == ("dev_warning" in judged) == ("- warning: DEV cannot judge" in report)
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert not any("domain" in layer.name or "multilinear" in layer.name for layer in model.layers)
    assert export_run(tmp_path / "run", tmp_path / "serving").parity.ok


def test_mcc_run_chooses_by_source_validation_when_told(tmp_path, domains):
    metrics, history = adapted_run(tmp_path, domains, "mcc", "adaptation.select=source_val",
                                   "adaptation.compare_source_only=false")
    assert metrics["adaptation"]["select"] == "source_val" and "verdict" not in metrics["adaptation"]
    assert "confusion_loss" in history.dtype.names and "domain_accuracy" not in history.dtype.names
    assert metrics["best_epoch"] == int(np.argmax(history["val_auc"])) + 1


def test_adabn_run_keeps_its_source_only_model_instead_of_training_it_again(tmp_path, domains, tltf_log):
    metrics, _ = adapted_run(tmp_path, domains, "adabn")
    assert not any("training the source-only baseline" in line for line in tltf_log)
    adapted = keras.models.load_model(tmp_path / "run" / "model.keras")
    source_only = keras.models.load_model(tmp_path / "run" / "source_only" / "model.keras")
    # The same trained weights; only BatchNorm statistics differ.
    for a, b in zip(adapted.trainable_weights, source_only.trainable_weights):
        assert np.array_equal(a.numpy(), b.numpy())
    statistics = [(a.numpy(), b.numpy()) for a, b in zip(adapted.non_trainable_weights,
                                                         source_only.non_trainable_weights) if "moving_mean" in a.path]
    assert statistics and all(not np.allclose(a, b) for a, b in statistics)
    assert metrics["adaptation"]["select"] == "source_val" and "verdict" in metrics["adaptation"]
