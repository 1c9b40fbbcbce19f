"""SoftTriple loss (Qian, Shang, Sun, Hu, Li & Jin, *SoftTriple Loss: Deep Metric Learning Without Triplet
Sampling*, ICCV 2019)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import check_int, check_positive
from .proxies import ProxyLoss, softmax_cross_entropy

__all__ = ["SoftTripleLoss"]


class SoftTripleLoss(ProxyLoss):
    """A softmax over classes, each represented by K centres softly assigned to the sample.

    With ``s_ick`` the cosine between the L2-normalised embedding i and centre k of class c::

        S_ic = Σ_k q_ick s_ick,   q_ick = e^{s_ick / γ} / Σ_k' e^{s_ick' / γ}
        L = 1/B Σ_i −log( e^{λ (S_{i,y_i} − δ)} / (e^{λ (S_{i,y_i} − δ)} + Σ_{c≠y_i} e^{λ S_ic}) )

    Equal to PML 2.9's ``SoftTripleLoss(num_classes, embedding_dim, centers_per_class=K, la=λ, gamma=γ,
    margin=δ)`` given the same centres (PML's ``fc`` is ``proxies.T``, the same column order), and initialised
    like it. Like PML, and unlike the paper, no regulariser merges redundant centres (the paper's τ term).
    ``proxies`` is (C·K, D) and row ``c·K + k`` is centre k of class c. :meth:`details` reports per-centre
    (B, C·K) weights: ``(1 − p_{i,y_i}) q_ick`` on the own class's centres, ``p_ic q_ick`` on the others.

    ``lr_mult = 100``: the centres start at random directions and each is moved only by the samples softly
    assigned to it; the authors' released code trains them at 100× the network's learning rate.

    Args:
        num_classes: C.
        embedding_dim: D.
        centers_per_class: K ≥ 1.
        la: λ > 0, the scale of the class softmax.
        gamma: γ > 0, the temperature of the soft assignment to centres.
        margin: δ ≥ 0.
    """

    method = "soft_triple"
    lr_mult = 100.0

    def __init__(
        self,
        *,
        num_classes: int,
        embedding_dim: int,
        centers_per_class: int = 10,
        la: float = 20.0,
        gamma: float = 0.1,
        margin: float = 0.01,
    ) -> None:
        super().__init__(
            num_classes, embedding_dim, centers_per_class=check_int(centers_per_class, "centers_per_class", 1)
        )
        self.la = check_positive(la, "la")
        self.gamma = check_positive(gamma, "gamma")
        self.margin = check_positive(margin, "margin", allow_zero=True)

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.proxies, a=math.sqrt(5), mode="fan_out")  # = PML's on fc = proxiesᵀ

    # The grid is computed with the centres in the order k·C + c, (B, K, C): the soft assignment then reduces over
    # a middle dimension with C contiguous, which a CPU runs many times faster than a softmax over K contiguous.
    def _layout(self, w: Tensor) -> Tensor:
        k, c = self.centers_per_class, self.num_classes
        return w.view(c, k, -1).transpose(0, 1).reshape(k * c, -1)  # (K·C, D) row k·C + c

    def _public(self, grid: Tensor) -> Tensor:
        b, k, c = grid.shape[0], self.centers_per_class, self.num_classes
        return grid.view(b, k, c).transpose(1, 2).reshape(b, c * k)  # (B, C·K) column c·K + k

    def _assign(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(logits λ (S − δ·own) (B, C), S (B, C), q (B, K, C))`` from the grid s (B, K·C)."""
        centres = s.view(s.shape[0], self.centers_per_class, self.num_classes)  # (B, K, C)
        q = torch.softmax(centres / self.gamma, dim=1)  # (B, K, C)
        big_s = (q * centres).sum(dim=1)  # (B, C)
        logits = big_s.clone()
        logits[torch.arange(s.shape[0], device=s.device), labels] -= self.margin
        return logits.mul_(self.la), big_s, q

    def _closed_form(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits, big_s, q = self._assign(s, labels)
        value, grad, _ = softmax_cross_entropy(logits, labels)  # (B, C) ∂L/∂logits
        centres = s.view_as(q)  # (B, K, C)
        # ∂L/∂s_ick = ∂L/∂S_ic · ∂S_ic/∂s_ick,  ∂S_ic/∂s_ick = q_ick (1 + (s_ick − S_ic)/γ) = q_ick (s_ick − S_ic + γ)/γ
        out = torch.sub(centres, big_s.sub_(self.gamma).unsqueeze(1)).mul_(q)  # (B, K, C) q (s − S + γ)
        return value, out.mul_(grad.mul_(self.la / self.gamma).unsqueeze(1)).view_as(s)

    def _weights(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
        logits, _, q = self._assign(s, labels)
        positive, negative, trivial = self._softmax_weights(logits, labels)  # (B, C) each
        return (positive.unsqueeze(1) * q).view_as(s), (negative.unsqueeze(1) * q).view_as(s), trivial

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, centers_per_class={self.centers_per_class}, la={self.la}, "
            f"gamma={self.gamma}, margin={self.margin}"
        )
