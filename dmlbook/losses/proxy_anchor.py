"""Proxy-Anchor loss (Kim, Kim, Cho & Kwak, *Proxy Anchor Loss for Deep Metric Learning*, CVPR 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_positive
from .proxies import ProxyLoss

__all__ = ["ProxyAnchorLoss"]


class ProxyAnchorLoss(ProxyLoss):
    """Each class proxy is an anchor; the samples of the batch are its positives and negatives.

    With ``s(x, p)`` the cosine between an L2-normalised embedding and a proxy, ``P`` all proxies, ``P⁺`` the
    proxies of the classes present in the batch, ``X⁺_p`` the samples of p's class and ``X⁻_p`` the others::

        L = 1/|P⁺| Σ_{p∈P⁺} log(1 + Σ_{x∈X⁺_p} e^{−α (s(x,p) − δ)})
          + 1/|P|  Σ_{p∈P}  log(1 + Σ_{x∈X⁻_p} e^{ α (s(x,p) + δ)})

    Each log-sum-exp is a soft maximum over the batch, so a proxy weighs its samples by their hardness relative to
    the others: ``∂L/∂s(x,p) = −α/|P⁺| · h⁺(x,p)`` for a positive and ``α/|P| · h⁻(x,p)`` for a negative, with
    ``h^±(x,p) = e^{∓α(s ∓ δ)} / (1 + Σ_{X^±_p} e^{∓α(s ∓ δ)})`` — these ``h`` are the per-proxy weights of
    :meth:`details`. Equal to PML 2.9's ``ProxyAnchorLoss(num_classes, embedding_dim, margin, alpha)`` given the
    same ``proxies`` (PML's ``proxies`` have this layout already), and initialised like it (Kaiming normal,
    fan-out), as the authors' code.

    ``lr_mult = 100``: the proxies start at random directions and each one is moved only by its own class's few
    samples of a batch, so at the network's learning rate they lag behind the embeddings; the authors' released
    code trains them at 100× the network's learning rate, and so does this default.

    Args:
        num_classes: C, one proxy per class (labels in ``0 .. C − 1``).
        embedding_dim: D.
        margin: δ ≥ 0.
        alpha: α > 0, the scale (the sharpness of the soft maximum).
    """

    method = "proxy_anchor"
    lr_mult = 100.0

    def __init__(
        self, *, num_classes: int, embedding_dim: int, margin: float = 0.1, alpha: float = 32.0
    ) -> None:
        super().__init__(num_classes, embedding_dim)
        self.margin = check_positive(margin, "margin", allow_zero=True)
        self.alpha = check_positive(alpha, "alpha")

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")

    def _soft_weights(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(h⁺, h⁻, L⁺, L⁻, own)``: (B, C) weights, (C,) per-proxy terms, (B, C) own-class mask."""
        own = self._own_class(s, labels)  # (B, C)
        ninf = torch.full_like(s, float("-inf"))
        out = []
        for mask, exponent in (
            (own, -self.alpha * (s - self.margin)),
            (~own, self.alpha * (s + self.margin)),
        ):
            a = torch.where(mask, exponent, ninf)  # (B, C)
            shift = a.amax(dim=0).clamp_(min=0.0)  # (C,) ≥ 0: also the shift of the "1 +"
            e = (a - shift).exp_()  # (B, C), 0 off the mask
            total = e.sum(dim=0).add_(torch.exp(-shift))  # (C,) e^{−shift} (1 + Σ e^a)
            out.append((e.div_(total), shift + total.log()))  # (B, C) h, (C,) log(1 + Σ e^a)
        (h_pos, l_pos), (h_neg, l_neg) = out
        return h_pos, h_neg, l_pos, l_neg, own

    def _closed_form(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        h_pos, h_neg, l_pos, l_neg, own = self._soft_weights(s, labels)
        with_pos = own.any(dim=0).sum().to(s.dtype)  # |P⁺|
        value = l_pos.sum() / with_pos + l_neg.sum() / self.num_classes
        grad = h_neg.mul_(self.alpha / self.num_classes).sub_(h_pos.mul_(self.alpha / with_pos))  # (B, C)
        return value, grad

    def _weights(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
        h_pos, h_neg, _, _, own = self._soft_weights(s, labels)
        logits = torch.where(own, s - self.margin, s + self.margin)  # (B, C) the margin on both sides
        return h_pos, h_neg, self._satisfied(logits, own)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, alpha={self.alpha}"
