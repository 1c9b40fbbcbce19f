"""Additive-margin softmax losses: ArcFace (Deng, Guo, Xue & Zafeiriou, *ArcFace: Additive Angular Margin Loss for
Deep Face Recognition*, CVPR 2019) and CosFace (Wang, Wang, Zhou, Ji, Gong, Zhou, Li & Liu, *CosFace: Large
Margin Cosine Loss for Deep Face Recognition*, CVPR 2018)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_positive
from .proxies import ProxyLoss, softmax_cross_entropy

__all__ = ["ArcFaceLoss", "CosFaceLoss"]


class _MarginSoftmax(ProxyLoss):
    """Scaled softmax cross-entropy whose own-class logit is ``ψ(cos θ)`` instead of ``cos θ``.

    ``lr_mult = 10``: the class weights are reached by every sample of the batch (the softmax runs over all
    classes), so they need less of a boost than the per-class proxies of Proxy-Anchor (100).
    """

    lr_mult = 10.0

    def __init__(self, num_classes: int, embedding_dim: int, margin: float, scale: float) -> None:
        super().__init__(num_classes, embedding_dim)
        self.margin = check_positive(margin, "margin", allow_zero=True)
        self.scale = check_positive(scale, "scale")

    def _target(self, c: Tensor) -> tuple[Tensor, Tensor]:
        """``(ψ(c), ψ'(c))`` for the own-class cosines c (B, 1)."""
        raise NotImplementedError

    def _logits(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """``scale ·`` the cosines with the own class's replaced by ψ; and ψ' (B, 1)."""
        index = labels.unsqueeze(1)  # (B, 1)
        psi, slope = self._target(s.gather(1, index))  # (B, 1), (B, 1)
        return (s * self.scale).scatter_(1, index, psi.mul_(self.scale)), slope  # (B, C), (B, 1)

    def _closed_form(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits, slope = self._logits(s, labels)  # (B, C), (B, 1)
        value, grad, _ = softmax_cross_entropy(logits, labels)
        index = labels.unsqueeze(1)  # (B, 1)
        grad.scatter_(1, index, grad.gather(1, index).mul_(slope))  # the own class: times ψ'
        return value, grad.mul_(self.scale)

    def _weights(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
        return self._softmax_weights(self._logits(s, labels)[0], labels)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, scale={self.scale}"


class ArcFaceLoss(_MarginSoftmax):
    """Additive angular margin: the own class's angle is widened by m before the scaled softmax::

        L = 1/B Σ_i −log( e^{s·ψ(θ_{i,y_i})} / (e^{s·ψ(θ_{i,y_i})} + Σ_{c≠y_i} e^{s cos θ_ic}) ),
        ψ(θ) = cos(θ + m)  if θ ≤ π − m,   cos θ − m sin m  otherwise,

    with ``θ_ic`` the angle between the L2-normalised embedding and class weight (the second branch keeps ψ
    decreasing in θ, as in PML and the insightface code). Equal to PML 2.9's ``ArcFaceLoss`` given the same
    weights (PML's ``W`` is ``proxies.T``), **but ``margin`` is in radians here and in degrees in PML**:
    ``ArcFaceLoss(margin=math.radians(28.6))`` equals PML's ``ArcFaceLoss(margin=28.6)``; the default 0.5 rad
    (28.65°) is the paper's. ``cos(θ + m)`` is computed as ``c cos m − √(1 − c²) sin m`` from the cosine c
    (clamped to [−1, 1] as in PML); its slope, unbounded at θ = 0, is capped where ``1 − c²`` is below the
    dtype's epsilon. :meth:`details` weights: ``1 − p(own class)`` on the own proxy, ``p(c)`` on the others.

    Args:
        num_classes: C.
        embedding_dim: D.
        margin: m, additive angular margin in radians, in ``[0, π/2]``.
        scale: s > 0.
    """

    method = "arcface"

    def __init__(
        self, *, num_classes: int, embedding_dim: int, margin: float = 0.5, scale: float = 64.0
    ) -> None:
        super().__init__(num_classes, embedding_dim, margin, scale)
        if self.margin > math.pi / 2:
            raise ValueError(
                f"margin is an angle in radians and must be in [0, π/2]; got {self.margin} "
                f"(PML's ArcFaceLoss takes degrees: use margin=math.radians({self.margin}))"
            )

    def _target(self, c: Tensor) -> tuple[Tensor, Tensor]:
        cos_m, sin_m = math.cos(self.margin), math.sin(self.margin)
        inside = c.abs() <= 1.0  # (B, 1) PML clamps c: no slope outside
        c = c.clamp(-1.0, 1.0)  # (B, 1)
        one_minus = 1.0 - c * c  # (B, 1) sin²θ
        sin = one_minus.clamp(min=0.0).sqrt()  # (B, 1)
        widened = c * cos_m - sin * sin_m  # (B, 1) cos(θ + m)
        slope_widened = cos_m + c * sin_m / one_minus.clamp(min=torch.finfo(c.dtype).eps).sqrt()  # (B, 1)
        first = c >= -cos_m  # (B, 1) θ ≤ π − m
        psi = torch.where(first, widened, c - self.margin * sin_m)  # (B, 1)
        slope = torch.where(first, slope_widened, torch.ones_like(c)) * inside  # (B, 1)
        return psi, slope


class CosFaceLoss(_MarginSoftmax):
    """Large margin cosine loss: the own class's cosine is lowered by m before the scaled softmax::

        L = 1/B Σ_i −log( e^{s (cos θ_{i,y_i} − m)} / (e^{s (cos θ_{i,y_i} − m)} + Σ_{c≠y_i} e^{s cos θ_ic}) )

    with ``θ_ic`` the angle between the L2-normalised embedding and class weight. Equal to PML 2.9's
    ``CosFaceLoss(num_classes, embedding_dim, margin=m, scale=s)`` given the same weights (PML's ``W`` is
    ``proxies.T``). :meth:`details` weights: ``1 − p(own class)`` on the own proxy, ``p(c)`` on the others.

    Args:
        num_classes: C.
        embedding_dim: D.
        margin: m ≥ 0, on the cosine.
        scale: s > 0.
    """

    method = "cosface"

    def __init__(
        self, *, num_classes: int, embedding_dim: int, margin: float = 0.35, scale: float = 64.0
    ) -> None:
        super().__init__(num_classes, embedding_dim, margin, scale)

    def _target(self, c: Tensor) -> tuple[Tensor, Tensor]:
        return c - self.margin, torch.ones_like(c)
