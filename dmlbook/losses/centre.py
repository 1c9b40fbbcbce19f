"""Centre-based structured metric learning: cross-entropy + lifted structure + class centres.

Gong, Zhong, Hu & Hua, *Joint Learning of the Center Points and Deep Metrics for Land-Use Classification in Remote
Sensing*, Remote Sensing 11(1):76, 2019 (doi 10.3390/rs11010076). No code was published and the paper's equations
could not be read here: the objective below is our reconstruction, built from
the abstract (joint supervision of cross-entropy and a "center-based structured metric"; class centres learned
during training; "decrease the variance between each feature and its centre, increase the variance between
centres") and the authors' earlier use of the lifted structured loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import (
    check_choice,
    check_class_range,
    check_embeddings,
    check_fraction,
    check_int,
    check_positive,
)
from ..mining import PairWeights
from .base import LossResult, MetricLoss, Pairs, check_loss_input
from .lifted import LiftedStructureLoss

CENTRE_UPDATES = ("learn", "ema")
TERMS = ("ce", "lifted", "intra", "inter")
PREDICT_BY = ("classifier", "centre")


def squared_distances_to(x: Tensor, centres: Tensor) -> Tensor:
    """``‖x_i − c_k‖²`` for rows of ``x`` (N, D) and ``centres`` (C, D) -> (N, C), clamped at 0 against rounding."""
    return (
        (x * x).sum(dim=1, keepdim=True) + (centres * centres).sum(dim=1) - 2.0 * x @ centres.T
    ).clamp_min(0.0)


def squared_centre_distances(centres: Tensor) -> Tensor:
    """``‖c_j − c_k‖²`` for every pair of rows of ``centres`` (C, D) -> (C, C)."""
    return squared_distances_to(centres, centres)  # (C, C)


class CentreStructuredLoss(MetricLoss):
    """Cross-entropy + lifted structure + feature-to-centre + centre-to-centre (Gong et al. 2019, reconstructed).

    On L2-normalised embeddings ``f̂_i`` (B of them, labels ``y_i`` in ``0 .. C−1``), class centres ``c_k ∈ R^D``
    and the loss's own linear classifier ``(W, b)``::

        L_CE    = −1/B Σ_i log softmax(W f̂_i + b)_{y_i}                                   point-wise
        L_SM    = 1/(2|P|) Σ_{(i,j)∈P} [J_ij]₊²,                                           pair-wise
                  J_ij = log(Σ_{n∈N(i)} e^{m⁻−d_in} + Σ_{n∈N(j)} e^{m⁻−d_jn}) + d_ij − m⁺
        L_intra = 1/(2B) Σ_i ‖f̂_i − c_{y_i}‖²                                             class-wise
        L_inter = 2/(C(C−1)) Σ_{j<k} [τ − ‖c_j − c_k‖²]₊                                   class-wise
        L       = w_CE L_CE + λ₁ L_SM + λ₂ L_intra + λ₃ L_inter

    ``L_SM`` is :class:`~dmlbook.losses.LiftedStructureLoss` (Oh Song et al., CVPR 2016) over ordered positive
    pairs ``P``. A single centre weight, ``λ₂(L_intra + γ L_inter)``, is the natural reading; here ``λ₃ = λ₂γ`` is a
    separate weight so that each of the four terms can be switched off (weight 0) for an ablation.

    What is reconstructed **[INFERRED, not from the paper]**: the lifted-structure form of the "structured metric",
    the squared-distance centre terms, the hinge form of ``L_inter`` and its margin ``τ``, and every default value
    (``m⁻ = 1``, ``m⁺ = 0``, ``λ₁ = 1``, ``λ₂ = λ₃ = 0.01``, of the order of centre loss's weight, Wen et al. 2016;
    ``τ = 2`` is the squared distance of two orthogonal unit vectors, a natural scale for centres of unit-norm
    features; a multiple of the initial centre distance would be another choice). The paper may define the
    centre term inside the structured loss instead.

    Class centres (``self.centres``, (C, D), initialised as random unit vectors):

    * ``centre_update="learn"``: an ``nn.Parameter`` trained by the optimiser with the rest of the loss's parameters
      (give the loss's parameters to the optimiser; a separate centre learning rate is a parameter group);
    * ``centre_update="ema"``: a buffer updated after every training-mode forward by centre loss's rule (Wen, Zhang,
      Li & Qiao, ECCV 2016, eq. 4): ``c_k ← c_k − α Σ_{i: y_i=k} (c_k − f̂_i) / (1 + n_k)`` with ``α``
      ``= centre_rate``. ``L_intra`` then uses the stored centres as constants (as centre loss does), and
      ``L_inter`` uses the *updated* centres, which depend on the batch's features, so the separation term still
      reaches the embedding (through the batch class means) **[INFERRED]**. ``eval()`` freezes the centres.

    ``loss_fn(embeddings, labels)`` returns ``L``; ``loss_fn.last_terms`` then holds the four unweighted terms
    (detached 0-dim tensors) and ``loss_fn.terms(embeddings, labels)`` computes them without a state update.
    :meth:`details` reports the lifted term's per-pair weights. :meth:`logits` and :meth:`predict` classify
    embeddings with the classifier or by the nearest centre.

    Args (keyword-only):
        num_classes: C, the number of classes (labels must lie in ``0 .. C−1``).
        embedding_dim: D, the embedding size.
        ce_weight: ``w_CE``, weight of the cross-entropy (point-wise term).
        lifted_weight: ``λ₁``, weight of the lifted structure (pair-wise term).
        intra_weight: ``λ₂``, weight of the feature-to-centre term.
        inter_weight: ``λ₃``, weight of the centre-to-centre separation term.
        inter_margin: ``τ``, the squared centre distance below which a pair of centres is pushed apart (0 < τ).
        neg_margin: ``m⁻`` of the lifted structure.
        pos_margin: ``m⁺`` of the lifted structure.
        centre_update: ``"learn"`` (gradient) or ``"ema"`` (centre-loss update).
        centre_rate: ``α`` of the ``"ema"`` update, in [0, 1].
    """

    method = "centre"
    matrix_kind = "distance"
    needs_classes = True

    def __init__(
        self,
        *,
        num_classes: int,
        embedding_dim: int,
        ce_weight: float = 1.0,
        lifted_weight: float = 1.0,
        intra_weight: float = 0.01,
        inter_weight: float = 0.01,
        inter_margin: float = 2.0,
        neg_margin: float = 1.0,
        pos_margin: float = 0.0,
        centre_update: str = "learn",
        centre_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = check_int(num_classes, "num_classes", 2)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", 1)
        self.term_weights = {
            "ce": check_positive(ce_weight, "ce_weight", allow_zero=True),
            "lifted": check_positive(lifted_weight, "lifted_weight", allow_zero=True),
            "intra": check_positive(intra_weight, "intra_weight", allow_zero=True),
            "inter": check_positive(inter_weight, "inter_weight", allow_zero=True),
        }
        if not any(self.term_weights.values()):
            raise ValueError(
                "at least one of ce_weight, lifted_weight, intra_weight, inter_weight must be > 0"
            )
        self.inter_margin = check_positive(inter_margin, "inter_margin")
        self.centre_update = check_choice(centre_update, CENTRE_UPDATES, "centre_update")
        self.centre_rate = check_fraction(centre_rate, "centre_rate")
        self.lifted = LiftedStructureLoss(neg_margin=neg_margin, pos_margin=pos_margin)  # checks the margins
        self.classifier = nn.Linear(embedding_dim, num_classes)
        init = F.normalize(torch.randn(num_classes, embedding_dim), dim=1)  # (C, D) random unit vectors
        if self.centre_update == "learn":
            self.centres = nn.Parameter(init)
        else:
            self.register_buffer("centres", init)
        self.last_terms: dict[str, Tensor] = {}

    # --- the four terms -------------------------------------------------------------------------------------
    def _check_batch(self, embeddings: Tensor, labels: Tensor) -> None:
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have {self.embedding_dim} columns (embedding_dim); "
                f"got {embeddings.shape[1]}"
            )
        check_class_range(labels, self.num_classes, "labels")

    def _ema_centres(self, x: Tensor, labels: Tensor) -> Tensor:
        """``c_k − α Σ_{i:y_i=k} (c_k − f̂_i) / (1 + n_k)`` for every class (C, D); differentiable in ``x``."""
        c = self.centres.detach().to(x.dtype)  # (C, D)
        counts = torch.bincount(labels, minlength=self.num_classes).to(x.dtype)  # (C,)
        sums = torch.zeros_like(c).index_add(0, labels, x)  # (C, D) Σ_{i:y_i=k} f̂_i
        delta = (counts.unsqueeze(1) * c - sums) / (1.0 + counts).unsqueeze(1)  # (C, D)
        return c - self.centre_rate * delta  # (C, D)

    def _terms(
        self, pairs: Pairs, *, details: bool = False
    ) -> tuple[dict[str, Tensor], Tensor | None, PairWeights | None]:
        """The unweighted terms, the EMA-updated centres (or None) and, with ``details``, the lifted weights."""
        x = F.normalize(pairs.embeddings, dim=1)  # (B, D) f̂
        labels = pairs.labels  # (B,)
        lifted = self.lifted.compute(pairs, details=details)
        if self.centre_update == "ema":
            pulled, separated = self.centres.detach().to(x.dtype), self._ema_centres(x, labels)  # (C, D) each
        else:  # parameters in another dtype than the embeddings are cast (differentiably)
            pulled = separated = self.centres.to(x.dtype)  # (C, D)
        diff = x - pulled[labels]  # (B, D) f̂_i − c_{y_i}
        sq = squared_centre_distances(separated)  # (C, C)
        upper = torch.triu(torch.ones_like(sq, dtype=torch.bool), diagonal=1)  # (C, C) j < k
        terms = {
            "ce": F.cross_entropy(self._classify(x), labels),
            "lifted": lifted.loss,
            "intra": 0.5 * (diff * diff).sum() / x.shape[0],
            "inter": (self.inter_margin - sq[upper]).relu().mean(),
        }
        return terms, (separated if self.centre_update == "ema" else None), lifted.weights

    def _total(self, terms: dict[str, Tensor]) -> Tensor:
        """``Σ weight · term`` over the terms whose weight is not 0."""
        return torch.stack(
            [self.term_weights[k] * terms[k] for k in TERMS if self.term_weights[k] != 0]
        ).sum()

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:  # type: ignore[override]
        embeddings, labels = check_loss_input(embeddings, labels)
        self._check_batch(embeddings, labels)
        terms, updated, _ = self._terms(self._pairs(embeddings, labels))
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        if updated is not None and self.training:
            with torch.no_grad():
                self.centres.copy_(updated)
        return self._total(terms)

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        self._check_batch(pairs.embeddings, pairs.labels)
        terms, _, weights = self._terms(pairs, details=details)
        if weights is not None:
            weights = PairWeights(
                self.method,
                weights.positive,
                weights.negative,
                weights.num_trivial,
                weights.num_candidates,
                weights.unit,
            )
        return LossResult(self._total(terms), weights)

    def terms(self, embeddings: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """The four unweighted terms ``{"ce", "lifted", "intra", "inter"}`` of a batch (no centre update)."""
        embeddings, labels = check_loss_input(embeddings, labels)
        self._check_batch(embeddings, labels)
        return self._terms(self._pairs(embeddings, labels))[0]

    @torch.no_grad()
    def reset_centres(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Set each class's centre to the mean of its normalised embeddings ``f̂`` (e.g. of the whole training set
        under the initial model, so that training does not start from random centres); classes without samples
        keep their centre. Returns the new centres (C, D)."""
        embeddings, labels = check_loss_input(embeddings, labels)
        self._check_batch(embeddings, labels)
        x = self._normalized(embeddings)  # (N, D)
        counts = torch.bincount(labels, minlength=self.num_classes)  # (C,)
        sums = torch.zeros_like(self.centres).index_add(0, labels.to(self.centres.device), x)  # (C, D)
        present = counts > 0  # (C,)
        self.centres[present] = sums[present] / counts[present].unsqueeze(1).to(sums.dtype)
        return self.centres.detach().clone()

    # --- classification -------------------------------------------------------------------------------------
    def _normalized(self, embeddings: Tensor) -> Tensor:
        """``f̂`` (N, D) of (N, D) embeddings, in the loss's dtype and on its device."""
        embeddings = check_embeddings(embeddings, min_samples=1)
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must have {self.embedding_dim} columns (embedding_dim); "
                f"got {embeddings.shape[1]}"
            )
        return F.normalize(embeddings.to(self.centres), dim=1)  # (N, D)

    def _classify(self, x: Tensor) -> Tensor:
        """``W f̂ + b`` (N, C) in the dtype of ``x`` (N, D)."""
        return F.linear(x, self.classifier.weight.to(x.dtype), self.classifier.bias.to(x.dtype))  # (N, C)

    def logits(self, embeddings: Tensor) -> Tensor:
        """The own classifier's class scores (N, C) of (N, D) embeddings (normalised first, as in training)."""
        return self.classifier(self._normalized(embeddings))  # (N, C)

    @torch.no_grad()
    def predict(self, embeddings: Tensor, *, by: str = "classifier") -> Tensor:
        """Predicted labels (N,): the classifier's argmax, or (``by="centre"``) the nearest centre to ``f̂``."""
        check_choice(by, PREDICT_BY, "by")
        if by == "classifier":
            return self.logits(embeddings).argmax(dim=1)
        x = self._normalized(embeddings)  # (N, D)
        return squared_distances_to(x, self.centres.detach()).argmin(dim=1)  # (N,)

    def extra_repr(self) -> str:
        w = ", ".join(f"{k}_weight={v}" for k, v in self.term_weights.items())
        return (
            f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, {w}, "
            f"inter_margin={self.inter_margin}, centre_update={self.centre_update!r}, "
            f"centre_rate={self.centre_rate}"
        )
