"""Heads: an embedding MLP for precomputed features and a linear classifier on embeddings.

``EmbeddingHead`` maps precomputed (frozen-backbone) features to the embedding space with a linear projection,
the embedding layer of most DML backbones, or with a small MLP. ``LinearClassifier`` is the classification
branch of hybrid losses such as DeMAL-CNN's (He et al. 2022: triplet loss + cross-entropy on a shared
classifier over the embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ._inputs import check_features, dropout_rate, flag, positive_int


class EmbeddingHead(nn.Module):
    """MLP from features to an embedding: ``[Dropout] Linear [BN] ReLU ... [Dropout] Linear [L2-normalise]``.

    Args:
        in_dim: feature dimension D_in.
        embedding_dim: output dimension D.
        hidden_dims: widths of the hidden layers; ``()`` (default) gives a single linear projection.
        dropout: dropout probability before every linear layer (0 disables it).
        normalize: L2-normalise the output (off by default: the losses normalise inside when they need to).
        batchnorm: BatchNorm1d after every hidden linear layer (never after the last one).

    ``forward(x)``: (B, in_dim) -> (B, embedding_dim).
    """

    def __init__(
        self,
        in_dim: int,
        embedding_dim: int = 128,
        *,
        hidden_dims: Sequence[int] = (),
        dropout: float = 0.0,
        normalize: bool = False,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        self.in_dim = positive_int(in_dim, "in_dim")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        if isinstance(hidden_dims, (str, bytes)) or not isinstance(hidden_dims, Sequence):
            raise TypeError(
                f"hidden_dims must be a sequence of ints (e.g. (512,)); got {type(hidden_dims).__name__}"
            )
        self.hidden_dims = tuple(positive_int(h, f"hidden_dims[{i}]") for i, h in enumerate(hidden_dims))
        self.dropout = dropout_rate(dropout, "dropout")
        self.normalize = flag(normalize, "normalize")
        self.batchnorm = flag(batchnorm, "batchnorm")
        layers: list[nn.Module] = []
        width = in_dim
        for hidden in self.hidden_dims:
            layers += [*self._drop(), nn.Linear(width, hidden, bias=not batchnorm)]
            layers += [nn.BatchNorm1d(hidden), nn.ReLU()] if batchnorm else [nn.ReLU()]
            width = hidden
        layers += [*self._drop(), nn.Linear(width, embedding_dim)]
        self.net = nn.Sequential(*layers)

    def _drop(self) -> list[nn.Module]:
        return [nn.Dropout(self.dropout)] if self.dropout > 0 else []

    def forward(self, x: Tensor) -> Tensor:
        x = check_features(x, self.in_dim)  # (B, D_in)
        z = self.net(x)  # (B, D)
        return F.normalize(z, dim=1) if self.normalize else z  # (B, D)


class LinearClassifier(nn.Module):
    """Class scores from embeddings, ``logits = W e + b``; the cross-entropy branch of a hybrid loss.

    Args:
        in_dim: embedding dimension D.
        num_classes: number of classes K.
        bias: learn a bias.

    ``forward(e)``: (B, D) -> (B, K) logits.
    """

    def __init__(self, in_dim: int, num_classes: int, *, bias: bool = True) -> None:
        super().__init__()
        self.in_dim = positive_int(in_dim, "in_dim")
        self.num_classes = positive_int(num_classes, "num_classes")
        self.fc = nn.Linear(in_dim, num_classes, bias=flag(bias, "bias"))

    def forward(self, embeddings: Tensor) -> Tensor:
        embeddings = check_features(embeddings, self.in_dim, "embeddings")  # (B, D)
        return self.fc(embeddings)  # (B, K)


__all__ = ["EmbeddingHead", "LinearClassifier"]
