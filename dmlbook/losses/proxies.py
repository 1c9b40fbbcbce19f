"""What every proxy-based loss shares: learnable class vectors (proxies), the cosine grid between a batch and them,
and a backward pass written out by hand.

A proxy loss compares each embedding with ``P`` learnable vectors instead of with the other samples of the batch:
one proxy per class (Proxy-Anchor, ProxyNCA, normalised softmax, ArcFace, CosFace) or several (SoftTriple). Both
sides are L2-normalised and the loss is a function of the (B, P) cosine grid ``s_ip = x̂_i · ŵ_p`` alone. Every
loss here has a closed-form ``G = ∂L/∂s``, so :class:`ProxyLoss` computes the value and ``G`` without autograd and
its backward pass is two matrix products, ``∂L/∂x̂ = G Ŵ`` and ``∂L/∂Ŵ = Gᵀ X̂``, chained through the two
normalisations by hand (:mod:`dmlbook.distances` does the same for the pair grid). The normalisations themselves
are applied to the small (B, P) grid, ``s = (X Wᵀ) / (r_x r_wᵀ)``, rather than to the (B, D) and (P, D) inputs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import check_class_range, check_embeddings, check_int
from ..mining import PairWeights
from .base import LossDetails, LossResult, MetricLoss, Pairs, check_loss_input

__all__ = ["PROXY_MATRIX_KIND", "ProxyLoss", "cosine_grid", "softmax_cross_entropy"]

#: ``LossDetails.matrix_kind`` of a proxy loss: ``matrix`` is the (B, P) cosine grid between samples and proxies
PROXY_MATRIX_KIND = "proxy_similarity"


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``L = 1/B Σ_i −log softmax(z_i)_{y_i}`` with its gradient ``∂L/∂z = (softmax(z) − onehot(y)) / B``.

    Computed without autograd. (B, C), (B,) → value (0-dim), gradient (B, C), probabilities (B, C).
    """
    b = logits.shape[0]
    index = labels.unsqueeze(1)  # (B, 1)
    log_p = torch.log_softmax(logits, dim=1)  # (B, C)
    value = log_p.gather(1, index).sum().div_(-b)
    prob = log_p.exp_()  # (B, C) softmax, in place of log_p
    grad = prob.scatter_add(1, index, torch.full_like(index, -1.0, dtype=prob.dtype))  # (B, C) p − onehot
    return value, grad.div_(b), prob


_EPS = 1e-12  # F.normalize's floor on a row norm


def _inverse_norms(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(1/r, [inside]/r²)`` per row, (N,) each, with ``r = max(||x_i||, 1e-12)`` (as ``F.normalize``); the second
    is 0 on rows where the floor is active (there the normalisation is linear: no radial term)."""
    norm = torch.linalg.vector_norm(x, dim=1)  # (N,)
    inv = norm.clamp(min=_EPS).reciprocal_()  # (N,)
    return inv, torch.where(norm >= _EPS, inv * inv, torch.zeros_like(inv))


def cosine_grid(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``s = X̂ Ŵᵀ`` (B, P) computed as ``(X Wᵀ) / (r_x r_wᵀ)``: the normalisation is applied to the small grid
    instead of to X and W. Also returns ``1/r`` and the radial factors of :func:`_inverse_norms` for the rows of
    X (B,) and of W (P,)."""
    inv_x, rad_x = _inverse_norms(x)  # (B,), (B,)
    inv_w, rad_w = _inverse_norms(w)  # (P,), (P,)
    s = (x @ w.T).mul_(inv_x.unsqueeze(1)).mul_(inv_w)  # (B, P)
    return s, inv_x, rad_x, inv_w, rad_w


class _ProxyGrid(torch.autograd.Function):
    """``L(s)`` with ``s = X̂ Ŵᵀ``: the loss's closed form gives the value and ``G = ∂L/∂s``.

    Backward, through both L2 normalisations, with ``a_i = Σ_p G_ip s_ip = x̂_i · (G Ŵ)_i`` and
    ``b_p = Σ_i G_ip s_ip = ŵ_p · (Gᵀ X̂)_p`` (the radial parts, read off the small grid)::

        ∂L/∂x_i = ((G Ŵ)_i − a_i x̂_i) / r_i = (G ⊘ r_x r_wᵀ) W |_i − (a_i / r_i²) x_i
        ∂L/∂w_p = ((Gᵀ X̂)_p − b_p ŵ_p) / r_p = (G ⊘ r_x r_wᵀ)ᵀ X |_p − (b_p / r_p²) w_p

    (rows on the 1e-12 floor, where ``F.normalize`` is linear, drop the radial term): two matrix products on the
    raw X and W, each followed by one in-place pass for its radial correction.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, closed_form, labels: Tensor) -> Tensor:  # type: ignore[override]
        s, inv_x, rad_x, inv_w, rad_w = cosine_grid(x, w)  # (B, P), (B,) × 2, (P,) × 2
        value, grad = closed_form(s, labels)  # 0-dim, (B, P)
        ctx.save_for_backward(grad, s, x, inv_x, rad_x, w, inv_w, rad_w)
        return value

    @staticmethod
    def backward(ctx, upstream: Tensor):  # type: ignore[override]
        grad, s, x, inv_x, rad_x, w, inv_w, rad_w = ctx.saved_tensors
        radial = grad * s  # (B, P) G ⊙ s
        scaled = grad.mul((inv_x * upstream).unsqueeze(1)).mul_(inv_w)  # (B, P) upstream · G ⊘ (r_x r_wᵀ)
        gx = gw = None  # the upstream factor (0-dim) rides on the small vectors
        if ctx.needs_input_grad[0]:
            a = radial.sum(dim=1).mul_(rad_x).mul_(upstream)  # (B,) upstream · a_i / r_i²
            gx = torch.mm(scaled, w).addcmul_(x, a.unsqueeze(1), value=-1.0)  # (B, D)
        if ctx.needs_input_grad[1]:
            b = radial.sum(dim=0).mul_(rad_w).mul_(upstream)  # (P,) upstream · b_p / r_p²
            gw = torch.mm(scaled.T, x).addcmul_(w, b.unsqueeze(1), value=-1.0)  # (P, D)
        return gx, gw, None, None


class ProxyLoss(MetricLoss):
    """Base class of the losses with learnable proxies (see the module docstring).

    A subclass implements ``_closed_form(s, labels) -> (value, ∂L/∂s)`` on the (B, P) cosine grid (no autograd)
    and ``_weights(s, labels) -> (positive, negative, num_trivial)`` for :meth:`details`; it may compute with
    the proxies in another row order (``_layout``, and ``_public`` to map a grid back).

    Attributes:
        proxies: the (P, D) parameter, ``P = num_classes · centers_per_class``; row ``c · K + k`` is proxy k of
            class c (K = 1 except for SoftTriple).
        lr_mult: the learning-rate factor a trainer applies to the proxies when the user gives none (each loss
            says why it chose its value).

    ``forward(embeddings (B, D), labels (B,)) -> scalar``. Labels must lie in ``0 .. num_classes − 1``.
    :meth:`details` reports per-proxy (B, P) quantities: ``matrix`` the cosine grid ``s_ip``, ``pair_gradient``
    ``|∂L/∂s_ip|``, ``weights.positive`` / ``weights.negative`` the loss's weight on each sample–proxy pair of the
    own / other classes, and ``weights.num_trivial`` the samples already classified with the margin (unit
    ``"anchor"``, one candidate per sample).
    """

    matrix_kind = PROXY_MATRIX_KIND
    needs_classes = True
    lr_mult: float = 1.0
    centers_per_class: int = 1

    def __init__(self, num_classes: int, embedding_dim: int, *, centers_per_class: int = 1) -> None:
        super().__init__()
        self.num_classes = check_int(num_classes, "num_classes", 2)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", 1)
        self.centers_per_class = check_int(centers_per_class, "centers_per_class", 1)
        self.proxies = nn.Parameter(
            torch.empty(self.num_classes * self.centers_per_class, self.embedding_dim)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PML's initialisation for this loss (standard normal unless a subclass says otherwise)."""
        nn.init.normal_(self.proxies)

    # --- input -----------------------------------------------------------------------------------------------
    def _check(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Checked ``(embeddings, labels (int64), proxies in the embeddings' dtype)``."""
        embeddings, labels = check_loss_input(embeddings, labels)
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have {self.embedding_dim} columns (embedding_dim); "
                f"got shape {tuple(embeddings.shape)}"
            )
        check_class_range(labels, self.num_classes, "labels")
        w = self.proxies
        if w.device != embeddings.device:
            raise ValueError(
                f"embeddings are on {embeddings.device} but the loss's proxies on {w.device}; "
                f"move the loss with loss_fn.to(device)"
            )
        if not bool(torch.isfinite(w.detach().sum())):
            raise ValueError("proxies contain NaN or infinite values (did training diverge?)")
        return embeddings, labels, w.to(embeddings.dtype)

    # --- the loss --------------------------------------------------------------------------------------------
    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:  # type: ignore[override]
        x, labels, w = self._check(embeddings, labels)
        return _ProxyGrid.apply(x, self._layout(w), self._closed_form, labels)

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        """The loss of ``pairs.embeddings`` (the pair grid itself is not used)."""
        loss = self(pairs.embeddings, pairs.labels)
        return LossResult(loss, self.details(pairs.embeddings, pairs.labels).weights if details else None)

    def cosine(self, embeddings: Tensor) -> Tensor:
        """The (B, P) cosine grid ``s_ip = x̂_i · ŵ_p`` between embeddings and proxies (differentiable)."""
        x = check_embeddings(embeddings, min_samples=1)  # (B, D)
        if x.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have {self.embedding_dim} columns (embedding_dim); "
                f"got shape {tuple(x.shape)}"
            )
        return nn.functional.normalize(x, dim=1) @ nn.functional.normalize(self.proxies.to(x.dtype), dim=1).T

    @torch.no_grad()
    def details(self, embeddings: Tensor, labels: Tensor) -> LossDetails:  # type: ignore[override]
        """Loss, per-proxy weights, ``|∂L/∂s_ip|`` and the cosine grid ``s`` (B, P), all detached."""
        x, labels, w = self._check(embeddings, labels)
        s = cosine_grid(x, self._layout(w.detach()))[0]  # (B, P)
        value, grad = self._closed_form(s, labels)
        positive, negative, trivial = self._weights(s, labels)
        weights = PairWeights(
            self.method,
            self._public(positive),
            self._public(negative),
            int(trivial),
            int(x.shape[0]),
            "anchor",
        )
        return LossDetails(value, weights, self._public(grad.abs()), self._public(s), self.matrix_kind)

    def _layout(self, w: Tensor) -> Tensor:
        """The proxies (P, D) in the row order the loss computes with (differentiable); the same by default."""
        return w

    def _public(self, grid: Tensor) -> Tensor:
        """A (B, P) grid in the computing order back in the order of ``proxies``' rows."""
        return grid

    def _closed_form(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _weights(self, s: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
        raise NotImplementedError

    # --- helpers for the subclasses ----------------------------------------------------------------------------
    def _own_class(self, s: Tensor, labels: Tensor) -> Tensor:
        """(B, C) bool, true at each sample's own class."""
        own = torch.zeros(s.shape[0], self.num_classes, dtype=torch.bool, device=s.device)
        own[torch.arange(s.shape[0], device=s.device), labels] = True
        return own

    @staticmethod
    def _satisfied(logits: Tensor, own: Tensor) -> int:
        """Samples whose own-class logit beats every other logit (already classified, margin included)."""
        if logits.shape[1] < 2:
            return 0
        target = logits[own]  # (B,)
        other = logits.masked_fill(own, -math.inf).amax(dim=1)  # (B,)
        return int((target > other).sum())

    def _softmax_weights(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
        """Weights of a softmax cross-entropy: ``1 − p_{i,y_i}`` on the own class (the pull), ``p_ic`` on the
        others (the push): ``B · ∂L/∂z`` up to the sign."""
        own = self._own_class(logits, labels)  # (B, C)
        prob = torch.softmax(logits, dim=1)  # (B, C)
        positive = torch.where(own, 1.0 - prob, torch.zeros_like(prob))  # (B, C)
        negative = torch.where(own, torch.zeros_like(prob), prob)  # (B, C)
        return positive, negative, self._satisfied(logits, own)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}"
