"""DANN (Ganin et al., 2016): a domain classifier on the features, behind gradient reversal."""

from __future__ import annotations

from tltf.adapt.methods.adversarial import AdversarialMethod
from tltf.adapt.methods.base import register_method


@register_method
class Dann(AdversarialMethod):
    """Domain-adversarial training of the classifier (`tltf.adapt.DomainAdversarialModel`).

    Example:
        adaptation: {method: dann, target: {source: npz, path: mnist_m.npz}, lambda: {max: 1.0}}
    """

    name = "dann"
    title = "DANN"

    def wrapper(self, model, adaptation, seed: int):
        from tltf.adapt.dann import DomainAdversarialModel

        head = adaptation.domain_head
        return DomainAdversarialModel(model, head.hidden, head.dropout, features=adaptation.features, name="dann")
