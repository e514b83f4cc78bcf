"""CDAN+E (Long et al., 2018): the domain classifier sees features ⊗ predictions, optionally entropy-weighted."""

from __future__ import annotations

from tltf.adapt.methods.adversarial import AdversarialMethod
from tltf.adapt.methods.base import register_method


@register_method
class Cdan(AdversarialMethod):
    """Conditional domain-adversarial training (`tltf.adapt.ConditionalAdversarialModel`).

    Example:
        adaptation: {method: cdan, target: {source: npz, path: sketches.npz}, entropy_conditioning: true}
    """

    name = "cdan"
    title = "CDAN+E"

    def conditioning(self, adaptation) -> str:
        return " on features ⊗ predictions" + (", entropy-weighted" if adaptation.entropy_conditioning else "")

    def wrapper(self, model, adaptation, seed: int):
        from tltf.adapt.cdan import ConditionalAdversarialModel

        head = adaptation.domain_head
        return ConditionalAdversarialModel(model, head.hidden, head.dropout, features=adaptation.features,
                                           entropy_conditioning=adaptation.entropy_conditioning, seed=seed,
                                           name="cdan")
