"""How far apart two domains are: the proxy A-distance and a 2-D embedding plot."""

from __future__ import annotations

import numpy as np


def proxy_a_distance(source_features: np.ndarray, target_features: np.ndarray, seed: int = 0) -> float:
    """`2·(1 − 2ε)`, ε the held-out error of a linear classifier telling the domains apart.

    0 means indistinguishable domains, 2 perfectly separable ones (Ben-David
    et al., 2007). Uses at most 2,000 features per domain, split half and half.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    source = source_features[rng.permutation(len(source_features))[:2000]]
    target = target_features[rng.permutation(len(target_features))[:2000]]
    features = np.concatenate([source, target]).astype(np.float64)
    domains = np.concatenate([np.zeros(len(source)), np.ones(len(target))])
    x_train, x_test, y_train, y_test = train_test_split(features, domains, test_size=0.5, random_state=seed,
                                                        stratify=domains)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    classifier.fit(x_train, y_train)
    error = 1.0 - classifier.score(x_test, y_test)
    return float(2.0 * (1.0 - 2.0 * min(error, 0.5)))


def plot_embedding(path, source_features, target_features, source_labels, target_labels, class_names, title=""):
    """PCA of source and target features, coloured by domain and by class, as a PNG."""
    from sklearn.decomposition import PCA

    from tltf.evaluate.plots import _pyplot

    plt = _pyplot()
    features = np.concatenate([source_features, target_features])
    points = PCA(n_components=2, random_state=0).fit_transform(features)
    count = len(source_features)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for points_part, name, marker in ((points[:count], "source", "o"), (points[count:], "target", "x")):
        axes[0].scatter(points_part[:, 0], points_part[:, 1], s=6, marker=marker, label=name, alpha=0.5)
    axes[0].set(title=f"by domain {title}".strip())
    axes[0].legend()
    labels = np.concatenate([source_labels, target_labels if target_labels is not None else
                             np.full(len(target_features), -1)])
    for class_id, name in enumerate(class_names):
        chosen = labels == class_id
        axes[1].scatter(points[chosen, 0], points[chosen, 1], s=6, label=name, alpha=0.5)
    if (labels == -1).any():
        axes[1].scatter(points[labels == -1, 0], points[labels == -1, 1], s=6, c="lightgrey", label="unlabelled")
    axes[1].set(title="by class")
    axes[1].legend(markerscale=2, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
