"""Symmetrical synthesis (Gu & Ko, *Symmetrical Synthesis for Deep Metric Learning*, AAAI 2020).

For two embeddings ``x_k, x_l`` of the same class, each is reflected about the line through the origin spanned by
the other:

    ``x'_k = β (α · proj_l(x_k) − x_k)``,  ``proj_l(x) = (xᵀx_l / ||x_l||²) x_l``,

with the paper's ``α = 2, β = 1`` giving the exact mirror image (:func:`symmetric_point`). A mirror image has the
norm of ``x_k`` and the same similarity to ``x_l`` as ``x_k`` — the positive term of a loss is unchanged — but it
lies elsewhere on the sphere, so it can be closer to an anchor of another class. The hard negative mining step
then uses, for every anchor ``x_i`` and every other class with pair ``(x_k, x_l)``, the hardest of
``{x_k, x_l, x'_k, x'_l}`` as that class's negative in the loss (:class:`SymmetricalSynthesis`, :func:`mine_symmetric`).
No extra network and no extra hyper-parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._checks import check_choice, check_embeddings, check_embeddings_labels, check_positive, check_real
from .distances import cosine_similarity_matrix, l2_normalize, pairwise_distances
from .losses.angular import AngularLoss
from .losses.base import LossDetails, MetricLoss, Pairs
from .losses.lifted import LiftedStructureLoss
from .losses.npairs import NPairsLoss, npairs_cross_entropy
from .losses.triplet import TripletMarginLoss
from .mining import PairWeights

__all__ = [
    "HARDNESS",
    "SYMMETRIC_LOSSES",
    "SymmetricBatch",
    "SymmetricMining",
    "SymmetricalSynthesis",
    "mine_symmetric",
    "official_npairs_logits",
    "symmetric_batch",
    "symmetric_point",
]

SYMMETRIC_LOSSES = (TripletMarginLoss, NPairsLoss, AngularLoss, LiftedStructureLoss)
HARDNESS = ("similarity", "angular")
VARIANTS = ("paper", "official")


def _reflect(p: Tensor, axis: Tensor, ratio: float, norm_ratio: float) -> Tensor:
    unit = axis / axis.norm(dim=1, keepdim=True)  # (N, D) û
    proj = (p * unit).sum(dim=1, keepdim=True) * unit  # (N, D) (pᵀû) û, the projection of p on the axis
    return norm_ratio * (ratio * proj - p)  # (N, D)


def symmetric_point(p: Tensor, axis: Tensor, ratio: float = 2.0, norm_ratio: float = 1.0) -> Tensor:
    """Row-wise ``q_i = β (α · proj_{axis_i}(p_i) − p_i)``: with the defaults, the reflection of ``p_i`` about the
    line spanned by ``axis_i``.

    The released code's ``tf_get_symmetric_point(anchor=axis, pos=p)`` with its flags ``symm_ratio = α`` and
    ``symm_norm_ratio = β``. For ``α = 2, β = 1`` the reflection keeps the norm, ``||q_i|| = ||p_i||``, and the
    similarity to the axis, ``q_iᵀ axis_i = p_iᵀ axis_i``; ``α`` moves the point along the family ``α · proj − p``
    and ``β`` scales its norm. Differentiable in both arguments.

    Args:
        p: (N, D) the points to reflect.
        axis: (N, D) the axis of each row (any non-zero vector on the line; its norm does not matter).
        ratio: α (the paper's setting 2).
        norm_ratio: β > 0 (the paper's setting 1).

    Returns:
        (N, D) the synthetic points.
    """
    p = check_embeddings(p, "p", min_samples=1)
    axis = check_embeddings(axis, "axis", min_samples=1)
    if p.shape != axis.shape:
        raise ValueError(
            f"p and axis must have the same shape (N, D); got {tuple(p.shape)} and {tuple(axis.shape)}"
        )
    if p.dtype != axis.dtype:
        raise TypeError(f"p and axis must have the same dtype; got {p.dtype} and {axis.dtype}")
    if p.device != axis.device:
        raise ValueError(f"p and axis must be on the same device; got {p.device} and {axis.device}")
    ratio = check_real(ratio, "ratio")
    norm_ratio = check_positive(norm_ratio, "norm_ratio")
    zero = int((axis.norm(dim=1) == 0).sum())
    if zero:
        raise ValueError(f"axis has {zero} zero rows; the reflection about a zero vector is undefined")
    return _reflect(p, axis, ratio, norm_ratio)


@dataclass(frozen=True)
class SymmetricBatch:
    """A batch of same-class pairs, as symmetrical synthesis sees it.

    Attributes:
        classes: (C,) the class labels, sorted.
        class_index: (B,) the position of each sample's class in ``classes``.
        first: (C,) the first sample of each class in the batch (the "anchor" of the released code).
        second: (C,) the other one (the "positive").
        partner: (B,) each sample's same-class partner: the axis of its mirror image.
    """

    classes: Tensor
    class_index: Tensor
    first: Tensor
    second: Tensor
    partner: Tensor

    @property
    def num_classes(self) -> int:
        return int(self.classes.numel())

    @property
    def candidates(self) -> Tensor:
        """(C, 4) the negative candidates of each class as indices into the pool ``[x, x']`` of 2B points:
        ``x_k, x_l, x'_k, x'_l`` with ``k = first``, ``l = second``."""
        b = self.partner.numel()
        return torch.stack([self.first, self.second, self.first + b, self.second + b], dim=1)


def symmetric_batch(labels: Tensor) -> SymmetricBatch:
    """The pairing of a batch in which every class appears exactly twice (P classes × 2 samples, in any order).

    Raises:
        ValueError: a class appears once or more than twice.
    """
    classes, class_index, counts = torch.unique(
        labels, return_inverse=True, return_counts=True
    )  # (C,), (B,), (C,)
    bad = (counts != 2).nonzero().squeeze(1)
    if bad.numel():
        c = int(bad[0])
        raise ValueError(
            "labels: symmetrical synthesis needs a batch of same-class pairs (every class exactly twice); "
            f"class {classes[c].item()} has {int(counts[c])} samples ({bad.numel()} classes are not pairs)"
        )
    order = torch.argsort(class_index, stable=True)  # (B,) the samples grouped by class, in batch order
    first, second = order[0::2], order[1::2]  # (C,) each
    partner = torch.empty_like(order)  # (B,)
    partner[first] = second
    partner[second] = first
    return SymmetricBatch(classes, class_index, first, second, partner)


@dataclass(frozen=True)
class SymmetricMining:
    """What symmetrical synthesis mined for one batch (all detached): enough to draw the geometry.

    Attributes:
        points: (2B, D) the pool of candidates: the B embeddings as given, then their B mirror images
            (``points[B + i]`` is the mirror image of ``points[i]`` about ``points[partner[i]]``).
        labels: (2B,) the class of each point.
        partner: (B,) each embedding's same-class partner.
        classes: (C,) the class labels; the columns of the (B, C) tensors below.
        hardness: ``"similarity"`` (cosine similarity to the anchor) or ``"angular"`` (the angular loss's logit
            for the anchor's pair, ``(x̂_a + x̂_p)ᵀ x_n``).
        hardest: (B, C) index into ``points`` of the negative mined for anchor i and class c: the hardest of the
            class's two embeddings and two mirror images; −1 for the anchor's own class.
        hardest_score: (B, C) its hardness (−inf for the own class).
        hardest_original: (B, C) the hardest of the two embeddings alone (what mining without synthesis picks).
        hardest_original_score: (B, C) its hardness.
        negative: (B, 2B) bool, the mined negatives of each anchor (one per other class).
    """

    points: Tensor
    labels: Tensor
    partner: Tensor
    classes: Tensor
    hardness: str
    hardest: Tensor
    hardest_score: Tensor
    hardest_original: Tensor
    hardest_original_score: Tensor
    negative: Tensor

    @property
    def num_samples(self) -> int:
        """B, the number of real embeddings."""
        return int(self.partner.numel())

    @property
    def is_synthetic(self) -> Tensor:
        """(2B,) bool: which points are mirror images."""
        return torch.arange(self.points.shape[0], device=self.points.device) >= self.num_samples

    @property
    def synthetic_chosen(self) -> Tensor:
        """(B, C) bool: the mined negative is a mirror image."""
        return self.hardest >= self.num_samples

    @property
    def synthetic_fraction(self) -> float:
        """Share of the mined negatives that are mirror images (nan when there are none)."""
        valid = self.hardest >= 0
        count = int(valid.sum())
        return int(self.synthetic_chosen.sum()) / count if count else float("nan")


def _hardness_scores(pool: Tensor, partner: Tensor, hardness: str) -> Tensor:
    """(B, 2B) how hard each candidate of the pool is as a negative for each anchor (larger = harder)."""
    b = partner.numel()
    unit = l2_normalize(pool)  # (2B, D)
    if hardness == "angular":
        centre = unit[:b] + unit[partner]  # (B, D) x̂_a + x̂_p of each anchor's pair
        return centre @ pool.T  # (B, 2B) (x̂_a + x̂_p)ᵀ x_n, PML's un-normalised negative
    return unit[:b] @ unit.T  # (B, 2B) cosine similarity ⇔ −distance on the unit sphere


@torch.no_grad()
def _mine(pool: Tensor, labels: Tensor, pairing: SymmetricBatch, hardness: str) -> SymmetricMining:
    b, c = pairing.partner.numel(), pairing.num_classes
    scores = _hardness_scores(pool, pairing.partner, hardness)  # (B, 2B)
    cand = pairing.candidates  # (C, 4)
    per_class = scores[:, cand.reshape(-1)].view(b, c, 4)  # (B, C, 4) x_k, x_l, x'_k, x'_l of each class
    own = pairing.class_index.unsqueeze(1) == torch.arange(c, device=pool.device).unsqueeze(0)  # (B, C)
    column = torch.arange(c, device=pool.device).unsqueeze(0)  # (1, C)

    def pick(values: Tensor) -> tuple[Tensor, Tensor]:
        best = values.max(dim=2)  # (B, C) ties go to the earlier candidate: originals first
        index = cand[column, best.indices].masked_fill(own, -1)  # (B, C)
        return index, best.values.masked_fill(own, float("-inf"))

    hardest, score = pick(per_class)
    original, original_score = pick(per_class[:, :, :2])
    negative = torch.zeros(b, 2 * b, dtype=torch.bool, device=pool.device)  # (B, 2B)
    rows, cols = (~own).nonzero(as_tuple=True)
    negative[rows, hardest[rows, cols]] = True
    return SymmetricMining(
        pool.detach(),
        torch.cat([labels, labels]),
        pairing.partner,
        pairing.classes,
        hardness,
        hardest,
        score,
        original,
        original_score,
        negative,
    )


def mine_symmetric(
    embeddings: Tensor,
    labels: Tensor,
    *,
    ratio: float = 2.0,
    norm_ratio: float = 1.0,
    hardness: str = "similarity",
) -> SymmetricMining:
    """Synthesise the mirror images of a batch of same-class pairs and mine, for every anchor and every other
    class, the hardest of the class's two embeddings and two mirror images (Gu & Ko, AAAI 2020).

    Args:
        embeddings: (B, D), every class exactly twice.
        labels: (B,) integer labels.
        ratio: α of :func:`symmetric_point`.
        norm_ratio: β of :func:`symmetric_point`.
        hardness: ``"similarity"`` (largest cosine similarity to the anchor = smallest distance: triplet,
            N-pair, lifted structure) or ``"angular"`` (largest angular logit of the anchor's pair).
    """
    embeddings, labels = check_embeddings_labels(embeddings, labels)
    hardness = check_choice(hardness, HARDNESS, "hardness")
    ratio, norm_ratio = check_real(ratio, "ratio"), check_positive(norm_ratio, "norm_ratio")
    embeddings = embeddings.detach()
    pairing = symmetric_batch(labels)
    _check_nonzero(embeddings)
    pool = torch.cat(
        [embeddings, _reflect(embeddings, embeddings[pairing.partner], ratio, norm_ratio)]
    )  # (2B, D)
    return _mine(pool, labels, pairing, hardness)


def official_npairs_logits(
    anchor: Tensor, positive: Tensor, ratio: float = 2.0, norm_ratio: float = 1.0
) -> Tensor:
    """The released code's Symm + N-pair logits (``symm_npair_loss``): the element-wise maximum of the six
    similarity matrices ``X̂ Ŷᵀ`` over the combinations ``(X, Y)`` of ``[A, P, S1, S2]`` — ``(A,P), (A,S1),
    (A,S2), (P,S1), (P,S2), (S1,S2)``, rows from X — with ``S1`` the mirror image of P about A and ``S2`` that of A
    about P. Every point is L2-normalised (the dmlbook convention; the code used raw features and an L2
    regulariser). The maximum also covers the diagonal (the positive logit).

    Args:
        anchor: (C, D) A, one sample per class.
        positive: (C, D) P, the other sample of the same class, row for row.

    Returns:
        (C, C) logits; row c scores anchor c against every class, the positive on the diagonal.
    """
    anchor = check_embeddings(anchor, "anchor", min_samples=1)
    positive = check_embeddings(positive, "positive", min_samples=1)
    if anchor.shape != positive.shape:
        raise ValueError(
            f"anchor and positive must have the same shape (C, D); got {tuple(anchor.shape)} and {tuple(positive.shape)}"
        )
    ratio, norm_ratio = check_real(ratio, "ratio"), check_positive(norm_ratio, "norm_ratio")
    _check_nonzero(anchor, "anchor")
    _check_nonzero(positive, "positive")
    return _official_logits(anchor, positive, ratio, norm_ratio)


def _official_logits(anchor: Tensor, positive: Tensor, ratio: float, norm_ratio: float) -> Tensor:
    s1 = _reflect(positive, anchor, ratio, norm_ratio)  # (C, D) P mirrored about A
    s2 = _reflect(anchor, positive, ratio, norm_ratio)  # (C, D) A mirrored about P
    points = [l2_normalize(t) for t in (anchor, positive, s1, s2)]  # 4 × (C, D)
    combos = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]  # itertools.combinations(range(4), 2)
    sims = torch.stack([points[i] @ points[j].T for i, j in combos])  # (6, C, C)
    return sims.max(dim=0).values  # (C, C)


def _check_nonzero(embeddings: Tensor, name: str = "embeddings") -> None:
    zero = (embeddings.norm(dim=1) == 0).nonzero().squeeze(1)
    if zero.numel():
        raise ValueError(
            f"{name} has {zero.numel()} zero rows (first: row {int(zero[0])}); a mirror image about a zero vector "
            "is undefined"
        )


class SymmetricalSynthesis(nn.Module):
    """Symmetrical synthesis as a plug-in for a metric loss (Gu & Ko, AAAI 2020): ``Symm(loss)(embeddings, labels)``.

    The batch must consist of same-class pairs (every class exactly twice, e.g. ``dmlbook.data.PKSampler`` with
    K = 2, as the
    released code's 64 classes × 2). For each pair ``(x_k, x_l)`` the mirror images ``x'_k`` (of ``x_k`` about
    ``x_l``) and ``x'_l`` are synthesised (:func:`symmetric_point`, differentiable: their gradient reaches both
    embeddings of the pair). Then, for every anchor ``x_i`` and every other class, the hardest of
    ``{x_k, x_l, x'_k, x'_l}`` is mined as that class's single negative (:func:`mine_symmetric`; under
    ``torch.no_grad``) and the wrapped loss runs on the pool of 2B points — the B embeddings, whose positive pairs
    are the B ordered pairs ``(i, partner(i))``, and the B mirror images, which are only ever negatives — with
    exactly those negatives. Supported losses and what "hardest" and "feeding" mean for each:

    * :class:`~dmlbook.losses.TripletMarginLoss`: the triplets ``(i, partner(i), mined n)``, one per other class;
      its own mining then applies on top (``"batch_hard"``: the hardest of all ``4(C − 1)`` candidates);
    * :class:`~dmlbook.losses.LiftedStructureLoss`: ``N(i)`` and ``N(j)`` of each positive pair are the mined
      negatives of i and of j;
    * :class:`~dmlbook.losses.NPairsLoss`: each class's first sample is the anchor and its mined negatives
      replace the other pairs' positives (``negatives="all"`` on the pool);
    * :class:`~dmlbook.losses.AngularLoss`: hardness is the angular logit of the anchor's pair,
      ``(x̂_a + x̂_p)ᵀ x_n`` (the negative closest to the pair's centre direction), not the similarity to ``x_a``
      alone.

    Hardness is the similarity to the anchor for the first three (``s`` largest ⇔ ``d`` smallest: the same
    choice for distance and similarity losses). The losses L2-normalise the points of the pool, so ``norm_ratio``
    (β) matters only through AngularLoss's un-normalised negatives, and ``ratio`` (α) moves the direction.

    ``variant="official"`` (NPairsLoss only) is the released code's ``symm_npair_loss`` instead: logits = the
    element-wise maximum over the six similarity matrices of ``[A, P, S1, S2]`` (:func:`official_npairs_logits`),
    then the N-pair cross-entropy with identity targets. Note it also takes the maximum for the positive logit and
    uses P, S1 as anchors too.

    :meth:`mine` returns what was mined (points, mirror images, the chosen negative of each anchor and class);
    :meth:`details` the wrapped loss's :class:`~dmlbook.losses.LossDetails` on the (2B, 2B) pool grid.

    Args:
        loss: the wrapped loss: TripletMarginLoss, NPairsLoss, AngularLoss or LiftedStructureLoss.
        ratio: α of :func:`symmetric_point` (2: the mirror image).
        norm_ratio: β of :func:`symmetric_point` (1: keep the norm).
        variant: ``"paper"`` (mine the hardest of four per anchor and class) or ``"official"`` (NPairsLoss only).
    """

    def __init__(
        self, loss: MetricLoss, *, ratio: float = 2.0, norm_ratio: float = 1.0, variant: str = "paper"
    ) -> None:
        super().__init__()
        if not isinstance(loss, SYMMETRIC_LOSSES):
            names = ", ".join(cls.__name__ for cls in SYMMETRIC_LOSSES)
            raise TypeError(f"loss must be one of {names}; got {type(loss).__name__}")
        self.variant = check_choice(variant, VARIANTS, "variant")
        if self.variant == "official" and not isinstance(loss, NPairsLoss):
            raise ValueError(
                "variant='official' (the released code's maximum over six similarity matrices) exists for "
                f"NPairsLoss only; got {type(loss).__name__}"
            )
        self.loss = loss
        self.ratio = check_real(ratio, "ratio")
        self.norm_ratio = check_positive(norm_ratio, "norm_ratio")
        self.hardness = "angular" if isinstance(loss, AngularLoss) else "similarity"

    def _prepare(
        self, embeddings: Tensor, labels: Tensor, *, detach: bool = False
    ) -> tuple[Tensor, Tensor, SymmetricBatch]:
        embeddings, labels = check_embeddings_labels(embeddings, labels)
        embeddings = embeddings.detach() if detach else embeddings
        pairing = symmetric_batch(labels)
        _check_nonzero(embeddings)
        synthetic = _reflect(embeddings, embeddings[pairing.partner], self.ratio, self.norm_ratio)  # (B, D)
        return torch.cat([embeddings, synthetic]), labels, pairing  # (2B, D) the pool

    def _pool_pairs(self, pool: Tensor, matrix: Tensor, mining: SymmetricMining) -> Pairs:
        b = mining.num_samples
        positive = torch.zeros(2 * b, 2 * b, dtype=torch.bool, device=pool.device)  # (2B, 2B)
        positive[torch.arange(b, device=pool.device), mining.partner] = True
        negative = torch.zeros_like(positive)  # (2B, 2B) mirror images are never anchors
        negative[:b] = mining.negative
        return Pairs(matrix, positive, negative, pool, mining.labels)

    def _matrix(self, pool: Tensor) -> Tensor:
        if self.loss.matrix_kind == "similarity":
            return cosine_similarity_matrix(pool)  # (2B, 2B)
        return pairwise_distances(pool)  # (2B, 2B)

    def _extra(self) -> dict:
        return {"negatives": "all"} if isinstance(self.loss, NPairsLoss) else {}

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        pool, labels, pairing = self._prepare(embeddings, labels)
        if self.variant == "official":
            x = pool[: pairing.partner.numel()]  # (B, D)
            logits = _official_logits(x[pairing.first], x[pairing.second], self.ratio, self.norm_ratio)
            return npairs_cross_entropy(logits)
        mining = _mine(pool.detach(), labels, pairing, self.hardness)
        pairs = self._pool_pairs(pool, self._matrix(pool), mining)
        return self.loss.compute(pairs, details=False, **self._extra()).loss

    def mine(self, embeddings: Tensor, labels: Tensor) -> SymmetricMining:
        """What this plug-in mines for a batch (detached): the pool of embeddings and mirror images and, for every
        anchor and other class, the chosen negative. With ``variant="official"`` the loss does not use it."""
        pool, labels, pairing = self._prepare(embeddings, labels, detach=True)
        return _mine(pool, labels, pairing, self.hardness)

    def details(self, embeddings: Tensor, labels: Tensor) -> LossDetails:
        """The wrapped loss's details on the (2B, 2B) grid of the pool (rows and columns 0..B−1 the embeddings,
        B..2B−1 their mirror images); with ``variant="official"``, on the (C, C) grid of the maximum logits."""
        pool, labels, pairing = self._prepare(embeddings, labels, detach=True)
        with torch.enable_grad():
            if self.variant == "official":
                x = pool[: pairing.partner.numel()]  # (B, D)
                matrix = _official_logits(x[pairing.first], x[pairing.second], self.ratio, self.norm_ratio)
                matrix = matrix.detach().requires_grad_(True)  # (C, C)
                loss = npairs_cross_entropy(matrix)
                weights = self._official_weights(matrix.detach())
            else:
                mining = _mine(pool, labels, pairing, self.hardness)
                matrix = self._matrix(pool).detach().requires_grad_(True)  # (2B, 2B)
                result = self.loss.compute(
                    self._pool_pairs(pool, matrix, mining), details=True, **self._extra()
                )
                loss, weights = result.loss, result.weights
            grad = torch.autograd.grad(loss, matrix, allow_unused=True)[0] if loss.requires_grad else None
        grad = torch.zeros_like(matrix) if grad is None else grad.abs()
        assert weights is not None
        return LossDetails(loss.detach(), weights, grad.detach(), matrix.detach(), self.loss.matrix_kind)

    @staticmethod
    def _official_weights(logits: Tensor) -> PairWeights:
        prob = torch.softmax(logits, dim=1)  # (C, C)
        eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)  # (C, C)
        w_pos = torch.where(eye, 1.0 - prob, torch.zeros_like(prob))  # (C, C)
        w_neg = torch.where(eye, torch.zeros_like(prob), prob)  # (C, C)
        off = logits.masked_fill(eye, float("-inf")).max(dim=1).values  # (C,)
        satisfied = int((off < logits.diagonal()).sum())
        return PairWeights("symmetric_official", w_pos, w_neg, satisfied, int(logits.shape[0]), "pair")

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, norm_ratio={self.norm_ratio}, variant={self.variant!r}"
