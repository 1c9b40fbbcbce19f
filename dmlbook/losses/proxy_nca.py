"""ProxyNCA (Movshovitz-Attias, Toshev, Leung, Ioffe & Singh, *No Fuss Distance Metric Learning using Proxies*,
ICCV 2017)."""

from __future__ import annotations

from torch import Tensor

from .._checks import check_positive
from .proxies import ProxyLoss, softmax_cross_entropy

__all__ = ["ProxyNCALoss"]


class ProxyNCALoss(ProxyLoss):
    """Neighbourhood component analysis against one proxy per class.

    With ``d(x, p) = ||x̂ − p̂||`` between L2-normalised embedding and proxy and ``t`` the softmax scale::

        L = 1/B Σ_i −log( e^{−t d²(x_i, p_{y_i})} / Σ_{c} e^{−t d²(x_i, p_c)} )

    (PML's form: the sum in the denominator includes the own proxy, unlike the paper's). On unit vectors
    ``d² = 2 − 2 s`` with ``s`` the cosine, so this is a softmax cross-entropy with logits ``2 t s``: how it is
    computed here. Equal to PML 2.9's ``ProxyNCALoss(num_classes, embedding_dim, softmax_scale=t)`` given the
    same ``proxies``; one difference at extreme scales: PML leaves out a sample whose own-class probability
    underflows to 0, here the log-softmax keeps it, finite. :meth:`details` weights: ``1 − p(own class)`` on
    the own proxy, ``p(c)`` on the others.

    ``lr_mult = 100``: the proxies start at random directions and must settle faster than the embeddings move;
    the same factor as its successor Proxy-Anchor, which shares the proxy parametrisation.

    Args:
        num_classes: C, one proxy per class.
        embedding_dim: D.
        softmax_scale: t > 0.
    """

    method = "proxy_nca"
    lr_mult = 100.0

    def __init__(self, *, num_classes: int, embedding_dim: int, softmax_scale: float = 1.0) -> None:
        super().__init__(num_classes, embedding_dim)
        self.softmax_scale = check_positive(softmax_scale, "softmax_scale")

    def _closed_form(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        scale = 2.0 * self.softmax_scale
        value, grad, _ = softmax_cross_entropy(s * scale, labels)
        return value, grad.mul_(scale)

    def _weights(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
        return self._softmax_weights(s * (2.0 * self.softmax_scale), labels)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, softmax_scale={self.softmax_scale}"
