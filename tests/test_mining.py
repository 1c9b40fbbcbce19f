import torch
from dml_reference import batch, triplets

from dmlbook.distances import cosine_similarity_matrix, label_masks, pairwise_distances
from dmlbook.mining import PairWeights, hardest_triplets, multi_similarity_mask, osm_weights, triplet_counts


def test_hardest_triplets_by_loop():
    x, y = batch(4, 3, 5, seed=20)
    y[-3:] = 7  # a class that still has positives
    d = pairwise_distances(x)
    pos, neg = label_masks(y)
    a, p, n = hardest_triplets(d, pos, neg)
    assert a.tolist() == list(range(len(y)))
    for i in range(len(y)):
        ps = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        ns = [j for j in range(len(y)) if y[j] != y[i]]
        assert p[i] == max(ps, key=lambda j: d[i, j]) and n[i] == min(ns, key=lambda j: d[i, j])


def test_anchors_without_a_positive_are_dropped():
    d = pairwise_distances(torch.randn(5, 3))
    pos, neg = label_masks(torch.tensor([0, 0, 1, 2, 2]))
    a, _, _ = hardest_triplets(d, pos, neg)
    assert a.tolist() == [0, 1, 3, 4]


def test_triplet_counts_equal_brute_force_for_many_margins():
    x, y = batch(5, 4, 3, seed=21)
    d = pairwise_distances(x)
    pos, neg = label_masks(y)
    for margin in (-0.2, 0.0, 0.1, 0.5, 3.0):
        for semi in (False, True):
            per_pos, per_neg, total = triplet_counts(d, pos, neg, margin, semi_hard=semi)
            want_pos, want_neg = torch.zeros_like(per_pos), torch.zeros_like(per_neg)
            for a, p, n in triplets(y):
                if d[a, p] - d[a, n] + margin > 0 and (not semi or d[a, n] > d[a, p]):
                    want_pos[a, p] += 1
                    want_neg[a, n] += 1
            assert total == len(triplets(y))
            assert torch.equal(per_pos, want_pos) and torch.equal(per_neg, want_neg), (margin, semi)


def test_multi_similarity_mask_by_loop():
    x, y = batch(4, 4, 6, seed=22)
    s = cosine_similarity_matrix(x)
    pos, neg = label_masks(y)
    keep_pos, keep_neg = multi_similarity_mask(s, pos, neg, 0.1)
    for i in range(len(y)):
        max_neg = s[i][neg[i]].max()
        min_pos = s[i][pos[i]].min()
        for j in range(len(y)):
            assert keep_pos[i, j] == (bool(pos[i, j]) and bool(s[i, j] - 0.1 < max_neg))
            assert keep_neg[i, j] == (bool(neg[i, j]) and bool(s[i, j] + 0.1 > min_pos))


def test_osm_weights_shape_of_the_kernels():
    d = torch.tensor([[0.0, 0.5, 1.5], [0.5, 0.0, 1.0], [1.5, 1.0, 0.0]])
    pos, neg = label_masks(torch.tensor([0, 0, 1]))
    w_pos, w_neg = osm_weights(d, pos, neg, sigma=0.8, margin=1.2)
    assert torch.isclose(w_pos[0, 1], torch.exp(torch.tensor(-0.25 / 0.64)))
    assert w_neg[0, 2] == 0 and torch.isclose(w_neg[1, 2], torch.tensor(0.2))
    official, _ = osm_weights(d, pos, neg, sigma=0.8, margin=1.2, kernel="official")
    assert torch.isclose(official[0, 1], torch.exp(torch.tensor(-0.25 / 1.28)))
    assert w_pos[0, 2] == 0 and w_neg[0, 1] == 0


def test_pair_weights_summary():
    w = PairWeights("x", torch.ones(2, 2), torch.zeros(2, 2), num_trivial=1, num_candidates=4, unit="pair")
    assert w.trivial_fraction == 0.25 and torch.equal(w.weights, torch.ones(2, 2))


def test_osm_weights_accept_float_masks():
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 0])
    d = pairwise_distances(x)
    pos, neg = label_masks(y)
    for kernel in ("paper", "official"):
        from_bool = osm_weights(d, pos, neg, sigma=0.8, margin=1.2, kernel=kernel)
        from_float = osm_weights(d, pos.double(), neg.double(), sigma=0.8, margin=1.2, kernel=kernel)
        assert all(torch.equal(a, b) for a, b in zip(from_bool, from_float))
        assert torch.equal(from_bool[0] > 0, pos) and torch.all(from_bool[1][~neg] == 0)
