"""dmlbook.diagnostics: the core home of the embedding and batch measurements (analysis re-exports them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlbook import diagnostics


def test_class_means_match_a_loop():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(30, 5, generator=g)
    labels = torch.tensor([3, 0, 7] * 10)
    classes, means = diagnostics.class_means(emb, labels)
    assert classes.tolist() == [0, 3, 7] and means.shape == (3, 5) and means.dtype == torch.float64
    unit = torch.nn.functional.normalize(emb.double(), dim=1)
    for c, mean in zip(classes.tolist(), means):
        torch.testing.assert_close(mean, unit[labels == c].mean(0))
    _, raw = diagnostics.class_means(
        emb.numpy(), labels.numpy(), normalize=False
    )  # numpy input, no normalising
    torch.testing.assert_close(raw[0], emb.double()[labels == 0].mean(0))
    # the spread is measured around these means
    d = diagnostics.centroid_distances(emb, labels)
    index = torch.searchsorted(classes, labels)
    torch.testing.assert_close(d, (unit - means[index]).norm(dim=1))


def test_class_means_reject_bad_input():
    with pytest.raises(ValueError, match="labels"):
        diagnostics.class_means(torch.randn(4, 2), torch.tensor([0, 1, 1]))
    with pytest.raises(TypeError, match="integer"):
        diagnostics.class_means(torch.randn(4, 2), np.array([0.0, 1.0, 1.0, 0.0]))
