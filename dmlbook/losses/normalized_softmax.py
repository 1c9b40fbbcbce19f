"""Normalised softmax (Zhai & Wu, *Classification is a Strong Baseline for Deep Metric Learning*, BMVC 2019)."""

from __future__ import annotations

from torch import Tensor

from .._checks import check_positive
from .proxies import ProxyLoss, softmax_cross_entropy

__all__ = ["NormalizedSoftmaxLoss"]


class NormalizedSoftmaxLoss(ProxyLoss):
    """Softmax cross-entropy over cosine similarities to L2-normalised class weights, with a temperature::

        L = 1/B Σ_i −log( e^{s(x_i, w_{y_i}) / T} / Σ_c e^{s(x_i, w_c) / T} )

    where ``s`` is the cosine between the L2-normalised embedding and class weight (the class weights act as
    proxies). Equal to PML 2.9's ``NormalizedSoftmaxLoss(num_classes, embedding_dim, temperature=T)`` given the
    same weights (PML's ``W`` is ``proxies.T``). :meth:`details` weights: ``1 − p(own class)`` on the own
    proxy, ``p(c)`` on the others.

    ``lr_mult = 10``: a classifier's weights are reached by every sample of the batch (the softmax runs over all
    classes), so they need less of a boost than the per-class proxies of Proxy-Anchor (100); still, they start
    at random directions and must settle before the embeddings can use them.

    Args:
        num_classes: C.
        embedding_dim: D.
        temperature: T > 0 (logits are cosines / T).
    """

    method = "normalized_softmax"
    lr_mult = 10.0

    def __init__(self, *, num_classes: int, embedding_dim: int, temperature: float = 0.05) -> None:
        super().__init__(num_classes, embedding_dim)
        self.temperature = check_positive(temperature, "temperature")

    def _closed_form(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        value, grad, _ = softmax_cross_entropy(s / self.temperature, labels)
        return value, grad.div_(self.temperature)

    def _weights(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
        return self._softmax_weights(s / self.temperature, labels)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}"
