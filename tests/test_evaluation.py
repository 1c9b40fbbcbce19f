"""dmlbook.evaluation: hand-computed cases, a loop reference, PML parity, chunking, faiss, errors."""

from __future__ import annotations

import importlib.util
import resource
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dmlbook.evaluation
from dmlbook.evaluation import (
    DEFAULT_CHUNK_BYTES,
    count_relevant,
    evaluate,
    evaluate_query_gallery,
    kmeans_nmi,
    knn,
    metrics,
    neighbours,
    retrieval_metrics,
)

HAVE_FAISS = importlib.util.find_spec("faiss") is not None
KNN_KEYS = ("recall@1", "r_precision", "map@r")


def clustered(
    n: int, dim: int, classes: int, seed: int, noise: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs around random class centres: metrics well inside (0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=gen)  # (n,)
    centres = torch.randn(classes, dim, generator=gen)  # (C, dim)
    return centres[labels] + noise * torch.randn(n, dim, generator=gen), labels  # (n, dim), (n,)


def assert_no_near_ties(query: torch.Tensor, gallery: torch.Tensor, k: int, exclude_self: bool) -> None:
    """Precondition for cross-implementation tests: float32 rounding cannot reorder the top k+1 neighbours."""
    q, g = F.normalize(query.double(), dim=1), F.normalize(gallery.double(), dim=1)
    d = torch.cdist(q, g)  # (Q, G)
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    v = d.topk(min(k + 1, d.shape[1] - int(exclude_self)), largest=False).values  # (Q, k+1)
    assert (v[:, 1:] - v[:, :-1]).min() > 1e-6, "test data has near-ties; pick another seed"


def loop_reference(query, query_labels, gallery, gallery_labels, ks, exclude_self):
    """R@K, R-precision and MAP@R from the definitions, one query at a time (float64, cosine ranking)."""
    q = F.normalize(query.double(), dim=1).numpy()
    g = F.normalize(gallery.double(), dim=1).numpy()
    ql, gl = query_labels.numpy(), gallery_labels.numpy()
    scores = {f"recall@{k}": [] for k in ks} | {"r_precision": [], "map@r": []}
    for i in range(len(q)):
        dist = np.linalg.norm(g - q[i], axis=1)
        order = np.argsort(dist, kind="stable")
        if exclude_self:
            order = order[order != i]
        rel = gl[order] == ql[i]
        r = int(rel.sum())
        if r == 0:  # lone query
            continue
        for k in ks:
            scores[f"recall@{k}"].append(float(rel[:k].any()))
        scores["r_precision"].append(rel[:r].sum() / r)
        precision = [rel[: j + 1].sum() / (j + 1) for j in range(r)]
        scores["map@r"].append(sum(p for p, hit in zip(precision, rel[:r]) if hit) / r)
    return {key: float(np.mean(vals)) for key, vals in scores.items()}


def pml_accuracy(query, query_labels, gallery=None, gallery_labels=None):
    calc_mod = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    calc = calc_mod.AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        knn_func=CustomKNN(LpDistance(normalize_embeddings=True)),
        device=torch.device("cpu"),
    )
    out = calc.get_accuracy(query, query_labels, gallery, gallery_labels)
    return {
        "recall@1": out["precision_at_1"],
        "r_precision": out["r_precision"],
        "map@r": out["mean_average_precision_at_r"],
    }


# ---------------------------------------------------------------------------------------- hand-computed
def test_six_points_on_a_line_by_hand():
    # positions 0, 1, 3, 7, 12, 20 with labels A A B A B B; every class has R = 2 other members.
    # Neighbours by distance (label, hit?):
    #   q=0  (A): 1 A+, 3 B, 7 A+, 12 B, 20 B   -> hits 1 0 1 0 0
    #   q=1  (A): 0 A+, 3 B, 7 A+, 12 B, 20 B   -> hits 1 0 1 0 0
    #   q=3  (B): 1 A, 0 A, 7 A, 12 B+, 20 B+   -> hits 0 0 0 1 1
    #   q=7  (A): 3 B, 12 B, 1 A+, 0 A+, 20 B   -> hits 0 0 1 1 0
    #   q=12 (B): 7 A, 20 B+, 3 B+, 1 A, 0 A    -> hits 0 1 1 0 0
    #   q=20 (B): 12 B+, 7 A, 3 B+, 1 A, 0 A    -> hits 1 0 1 0 0
    # R@1 = 3/6; R@2 = 4/6; R@4 = 6/6.
    # R-precision (top 2 / 2): 1/2, 1/2, 0, 0, 1/2, 1/2 -> 2/6.
    # MAP@R = mean of (1/2)(P(1) rel(1) + P(2) rel(2)): 1/2, 1/2, 0, 0, (1/2)(1/2), 1/2 -> 1.75/6 = 7/24.
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0], [12.0], [20.0]])
    out = evaluate(x, [0, 0, 1, 0, 1, 1], ks=(1, 2, 4), normalize=False, nmi=False)
    assert out == pytest.approx(
        {"recall@1": 1 / 2, "recall@2": 4 / 6, "recall@4": 1.0, "r_precision": 1 / 3, "map@r": 7 / 24},
        abs=1e-12,
    )
    assert all(type(v) is float for v in out.values())


def test_query_gallery_by_hand():
    # gallery: 0 (A), 2 (B), 5 (A), 9 (B); queries: 1 (A), 8 (B); R = 2 for both.
    #   q=1 (A): 0 A+ (1), 2 B (1, tie -> lower index 0 first), 5 A+ (4), 9 B  -> hits 1 0 1 0
    #   q=8 (B): 9 B+ (1), 5 A (3), 2 B+ (6), 0 A                              -> hits 1 0 1 0
    # R@1 = 1; R-precision = 1/2; MAP@R = (1/2)(1 + 0) = 1/2 for both.
    gallery, query = torch.tensor([[0.0], [2.0], [5.0], [9.0]]), torch.tensor([[1.0], [8.0]])
    out = evaluate_query_gallery(query, [0, 1], gallery, [0, 1, 0, 1], ks=(1, 4), normalize=False, nmi=False)
    assert out == pytest.approx({"recall@1": 1.0, "recall@4": 1.0, "r_precision": 0.5, "map@r": 0.5})


def test_retrieval_metrics_from_neighbour_labels():
    # one query of label 0 with R = 3 and ranked labels 0 1 0 0: MAP@R = (1 + 0 + 2/3) / 3, R-precision = 2/3
    out = retrieval_metrics(torch.tensor([[0, 1, 0, 0]]), torch.tensor([0]), torch.tensor([3]), ks=(1, 2))
    assert out == pytest.approx(
        {"recall@1": 1.0, "recall@2": 1.0, "map@r": (1 + 2 / 3) / 3, "r_precision": 2 / 3}
    )
    with pytest.raises(ValueError, match="columns"):
        retrieval_metrics(torch.tensor([[0, 1]]), torch.tensor([0]), torch.tensor([3]), ks=(1,))


def test_count_relevant():
    y = torch.tensor([3, 3, 5, 3, 7])
    assert count_relevant(y, y, exclude_self=True).tolist() == [2, 2, 0, 2, 0]
    assert count_relevant(torch.tensor([5, 9, 3]), y).tolist() == [1, 0, 3]


# ---------------------------------------------------------------------------------------- references
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop_reference(seed):
    x, y = clustered(200, 8, 25, seed)  # 25 classes of ~8: some lone classes are likely
    y[:3] = torch.tensor([100, 101, 102])  # and three certain ones
    with pytest.warns(UserWarning, match="lone"):
        out = evaluate(x.double(), y, ks=(1, 2, 4, 8, 16), nmi=False)
    ref = loop_reference(x, y, x, y, (1, 2, 4, 8, 16), exclude_self=True)
    assert out == pytest.approx(ref, abs=1e-12)


def test_query_gallery_matches_loop_reference():
    x, y = clustered(300, 8, 15, 3)
    q, ql, g, gl = x[:100].double(), y[:100], x[100:].double(), y[100:]
    ql[0] = 99  # a query whose class is not in the gallery is lone
    with pytest.warns(UserWarning, match="1 of 100"):
        out = evaluate_query_gallery(q, ql, g, gl, ks=(1, 5, 10), nmi=False)
    assert out == pytest.approx(loop_reference(q, ql, g, gl, (1, 5, 10), exclude_self=False), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_pml_parity(seed):
    x, y = clustered(300, 16, 20, seed)
    assert_no_near_ties(x, x, int(torch.bincount(y).max()), exclude_self=True)
    out = evaluate(x, y, nmi=False, backend="torch")
    assert {k: out[k] for k in KNN_KEYS} == pytest.approx(pml_accuracy(x, y), abs=1e-9)


def test_pml_parity_with_lone_classes():
    x, y = clustered(240, 16, 30, 2)
    y[:5] = torch.arange(100, 105)  # five single-sample classes: PML drops them from every k-NN metric
    assert_no_near_ties(x, x, int(torch.bincount(y).max()), exclude_self=True)
    with pytest.warns(UserWarning, match="5 of 240"):
        out = evaluate(x, y, nmi=False, backend="torch")
    assert {k: out[k] for k in KNN_KEYS} == pytest.approx(pml_accuracy(x, y), abs=1e-9)


def test_pml_parity_query_gallery():
    x, y = clustered(300, 16, 12, 0)
    q, ql, g, gl = x[:120], y[:120], x[120:], y[120:]
    assert_no_near_ties(q, g, int(torch.bincount(gl).max()), exclude_self=False)
    out = evaluate_query_gallery(q, ql, g, gl, nmi=False, backend="torch")
    assert {k: out[k] for k in KNN_KEYS} == pytest.approx(pml_accuracy(q, ql, g, gl), abs=1e-9)


# ---------------------------------------------------------------------------------------- k-NN
def test_knn_against_brute_force():
    x, _ = clustered(150, 6, 5, 4)
    dists, idx = knn(x.double(), x.double(), 7, exclude_self=True, backend="torch")
    full = torch.cdist(x.double(), x.double()).fill_diagonal_(float("inf"))  # (N, N)
    ref = full.sort(dim=1, stable=True)
    assert torch.equal(idx, ref.indices[:, :7])
    torch.testing.assert_close(dists, ref.values[:, :7])


def test_chunked_equals_unchunked():
    x, y = clustered(400, 12, 30, 5)
    whole = knn(x, x, 9, exclude_self=True, backend="torch")
    for chunk_bytes in (1, 5_000, 50_000):  # 1 query row per chunk, then 2 and 24 rows
        part = knn(x, x, 9, exclude_self=True, backend="torch", chunk_bytes=chunk_bytes)
        assert torch.equal(part[1], whole[1])
        torch.testing.assert_close(part[0], whole[0])
    assert evaluate(x, y, nmi=False, backend="torch", chunk_bytes=1) == evaluate(
        x, y, nmi=False, backend="torch"
    )


def test_ties_are_broken_by_lower_index_for_any_chunk_size():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (120, 3), generator=gen).float()  # integer points: many exact duplicates
    d = torch.cdist(x.double(), x.double()).fill_diagonal_(float("inf")).numpy()
    cols = np.broadcast_to(np.arange(120), d.shape)
    ref = np.lexsort((cols, d), axis=1)[:, :10]  # by distance, then by index
    for chunk_bytes in (1, 10_000, DEFAULT_CHUNK_BYTES):
        _, idx = knn(x, x, 10, exclude_self=True, backend="torch", chunk_bytes=chunk_bytes)
        assert (idx.numpy() == ref).all()


@pytest.mark.parametrize("exclude_self", [True, False])
def test_group_preselection_keeps_ties_by_lower_index(exclude_self):
    # 1,999 integer points in {0..4}^3: 125 distinct, so every k-th neighbour is tied with many others
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 5, (1999, 3), generator=gen).float()
    q = x if exclude_self else x[:300] + 1
    k = 12
    group = neighbours._group_size(len(x), k)
    assert group > 0 and len(x) % group  # pre-selection, padded gallery
    d = torch.cdist(q.double(), x.double())  # (Q, G) exact: small integers
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    cols = np.broadcast_to(np.arange(len(x)), d.shape)
    ref = np.lexsort((cols, d.numpy()), axis=1)[:, :k]  # by distance, then by index
    for chunk_bytes in (1, 100_000, DEFAULT_CHUNK_BYTES):
        dist, idx = knn(q, x, k, exclude_self=exclude_self, backend="torch", chunk_bytes=chunk_bytes)
        assert (idx.numpy() == ref).all()
        torch.testing.assert_close(dist.double(), d.gather(1, torch.from_numpy(ref)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("k", "chunk_bytes"), [(3, 4_800_000), (12, DEFAULT_CHUNK_BYTES), (12, 100_000)])
def test_leave_one_out_strips_keep_ties_by_lower_index(k, chunk_bytes, dtype):
    # 2,003 integer points: exact ties everywhere; (3, 4.8 MB) takes strips of 576 (float64: 288) rows in groups
    # of 32 (padded to 2,016), so later rows get grouped candidates from the transposed blocks
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(0, 5, (2003, 3), generator=gen).to(dtype)
    d = torch.cdist(x.double(), x.double()).fill_diagonal_(float("inf"))  # (N, N) exact
    cols = np.broadcast_to(np.arange(len(x)), d.shape)
    ref = np.lexsort((cols, d.numpy()), axis=1)[:, :k]
    dist, idx = knn(x, x, k, exclude_self=True, backend="torch", chunk_bytes=chunk_bytes)
    assert (idx.numpy() == ref).all()
    torch.testing.assert_close(dist.double(), d.gather(1, torch.from_numpy(ref)))


@pytest.mark.parametrize("near_duplicates", [False, True])
def test_group_preselection_equals_the_full_sort_bit_for_bit(monkeypatch, near_duplicates):
    x, _ = clustered(3000, 24, 40, 11)
    if near_duplicates:  # distances that round below 0 and are clamped: ties at 0 between distinct points
        x[1::2] = x[::2][: len(x[1::2])] + 1e-7 * torch.randn(len(x[1::2]), 24)
    q, g = F.normalize(x, dim=1), F.normalize(x[:2500], dim=1)
    strips = 2100 * 2528 * 4  # leave-one-out in 2 strips of 2,080 and 448 rows, grouped in both directions

    def run():
        return [
            knn(q, g, 15),
            knn(g, g, 15, exclude_self=True),
            knn(g, g, 15, exclude_self=True, chunk_bytes=strips),
        ]

    fast = run()
    assert neighbours._group_size(len(g), 15) > 0 and neighbours._group_size(2100, 15) > 0
    monkeypatch.setattr(neighbours, "_group_size", lambda gallery_size, k: 0)  # every row sorted in full
    full = run()
    for (d1, i1), (d2, i2) in zip(fast, full):
        assert torch.equal(i1, i2) and torch.equal(d1, d2)
    assert torch.equal(full[1][1], full[2][1])  # one strip or three: the same neighbours
    if near_duplicates:
        assert (full[1][0][:, 0] == 0).sum() > 100


def test_memory_chunks_never_build_the_full_matrix(monkeypatch):
    n, budget = 3000, 200_000
    blocks = []
    real_pair, real_shifted = neighbours._pair_sq_dists, neighbours._shifted_sq_dists

    def spy_pair(rows, cols, rows_sq, cols_sq, out):
        out = real_pair(rows, cols, rows_sq, cols_sq, out)
        blocks.append(out.numel() * out.element_size())
        return out

    def spy_shifted(query, gallery, gallery_sq, out):
        out = real_shifted(query, gallery, gallery_sq, out)
        blocks.append(out.numel() * out.element_size())
        return out

    monkeypatch.setattr(neighbours, "_pair_sq_dists", spy_pair)
    monkeypatch.setattr(neighbours, "_shifted_sq_dists", spy_shifted)
    x = torch.randn(n, 32)
    y = torch.randint(0, 300, (n,))
    evaluate(x, y, nmi=False, backend="torch", chunk_bytes=budget)  # leave-one-out: the pair blocks
    assert len(blocks) > 1 and max(blocks) <= budget and max(blocks) < n * n * 4
    assert sum(blocks) < 0.6 * n * n * 4  # each pair once: about half the matrix in all
    blocks.clear()
    evaluate_query_gallery(x[:500], y[:500], x, y, nmi=False, backend="torch", chunk_bytes=budget)
    assert len(blocks) > 1 and max(blocks) <= budget


@pytest.mark.slow
def test_memory_50k_by_512(monkeypatch):
    n, dim = 50_000, 512
    blocks = []
    real = neighbours._pair_sq_dists

    def spy(rows, cols, rows_sq, cols_sq, out):
        out = real(rows, cols, rows_sq, cols_sq, out)
        blocks.append(out.numel())
        return out

    monkeypatch.setattr(neighbours, "_pair_sq_dists", spy)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=gen)
    y = torch.arange(n) % 5000  # 10 per class
    out = evaluate(x, y, nmi=False, backend="torch")
    assert set(out) == {"recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision"}
    assert max(blocks) * 4 <= DEFAULT_CHUNK_BYTES
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    assert peak < n * n * 4 / 2  # the full float32 matrix alone would be 10 GB


@pytest.mark.skipif(not HAVE_FAISS, reason="faiss is not installed")
def test_faiss_agrees_with_torch():
    x, y = clustered(300, 16, 10, 7)
    q, g, k_max = x[:100], x[100:], int(torch.bincount(y).max())
    assert_no_near_ties(q, g, 12, exclude_self=False)
    assert_no_near_ties(x, x, k_max, exclude_self=True)
    for query, gallery, k, self_ in ((q, g, 12, False), (x, x, k_max, True)):
        dt, it = knn(query, gallery, k, exclude_self=self_, backend="torch")
        df, i_f = knn(query, gallery, k, exclude_self=self_, backend="faiss")
        assert torch.equal(it, i_f)
        torch.testing.assert_close(df, dt, atol=1e-4, rtol=1e-4)
    assert evaluate(x, y, nmi=False, backend="faiss") == pytest.approx(
        evaluate(x, y, nmi=False, backend="torch")
    )


@pytest.mark.skipif(not HAVE_FAISS, reason="faiss is not installed")
def test_auto_backend_choice():
    x = torch.zeros(3, 2)
    assert neighbours._resolve_backend("auto", x) == "faiss"
    assert neighbours._resolve_backend("auto", x.double()) == "torch"  # faiss would drop float64 precision


def test_faiss_missing(monkeypatch):
    monkeypatch.setattr(neighbours, "_import_faiss", lambda: None)
    x = torch.randn(5, 3)
    assert neighbours._resolve_backend("auto", x) == "torch"
    with pytest.raises(ImportError, match="faiss"):
        knn(x, x, 2, backend="faiss")


# ---------------------------------------------------------------------------------------- NMI, inputs
def test_perfect_embedding_scores_one_everywhere():
    y = torch.arange(60) % 6
    x = F.one_hot(y, 6).float() + 0.01 * torch.randn(60, 6, generator=torch.Generator().manual_seed(0))
    out = evaluate(x, y)
    assert out == pytest.approx(dict.fromkeys(out, 1.0))
    assert set(out) == {"recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi"}


def test_nmi_of_separated_clusters_is_one_and_seeded():
    y = np.repeat(np.arange(5), 20)
    x = np.eye(5)[y] * 10 + np.random.default_rng(0).normal(size=(100, 5))
    assert kmeans_nmi(x, y) == pytest.approx(1.0)
    noisy = np.random.default_rng(1).normal(size=(100, 5))
    assert kmeans_nmi(noisy, y, seed=3) == kmeans_nmi(noisy, y, seed=3) < 0.5


def test_sklearn_missing_gives_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.cluster", None)
    x, y = clustered(30, 4, 3, 0)
    with pytest.raises(ImportError, match=r"dmlbook\[train\]"):
        evaluate(x, y)
    evaluate(x, y, nmi=False)  # retrieval metrics do not need sklearn


def test_numpy_float64_and_grad_inputs():
    x, y = clustered(80, 8, 4, 7)
    ref = evaluate(x.double(), y, nmi=False)
    assert evaluate(x.double().numpy(), y.numpy(), nmi=False) == ref
    assert evaluate(x.double().requires_grad_(), y.tolist(), nmi=False) == ref
    assert evaluate(x.half(), y, nmi=False)["recall@1"] == pytest.approx(ref["recall@1"], abs=0.05)


def test_unnormalised_ranking_differs_from_cosine():
    x = torch.tensor([[1.0, 0.0], [10.0, 0.0], [1.0, 0.5]])  # by L2, 0's neighbour is 2; by cosine it is 1
    assert knn(x, x, 1, exclude_self=True)[1][0].item() == 2
    assert knn(x, x, 1, exclude_self=True, normalize=True)[1][0].item() == 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x, y = clustered(300, 16, 20, 0)
    cpu = evaluate(x, y, nmi=False, backend="torch")
    assert evaluate(x.cuda(), y.cuda(), nmi=False) == pytest.approx(cpu, abs=1e-6)


# ---------------------------------------------------------------------------------------- errors
X6 = torch.randn(6, 3)
Y6 = [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: evaluate(X6, Y6[:5]), ValueError, "labels has 5 entries"),
        (lambda: evaluate(X6, [0] * 6), ValueError, "single class"),
        (lambda: evaluate(X6.clone().index_fill_(0, torch.tensor([2]), float("nan")), Y6), ValueError, "NaN"),
        (lambda: evaluate(X6.clone().index_fill_(0, torch.tensor([1]), float("inf")), Y6), ValueError, "NaN"),
        (lambda: evaluate(torch.randn(6), Y6), ValueError, "2-D"),
        (lambda: evaluate(torch.randn(0, 3), []), ValueError, "empty"),
        (lambda: evaluate(torch.ones(6, 3, dtype=torch.long), Y6), TypeError, "floating"),
        (lambda: evaluate([[0.0]] * 6, Y6), TypeError, "numpy"),
        (lambda: evaluate(X6, Y6, ks=(0, 1)), ValueError, "positive"),
        (lambda: evaluate(X6, Y6, ks=()), ValueError, "non-empty"),
        (lambda: evaluate(X6, Y6, ks=(1.5,)), TypeError, "ints"),
        (lambda: evaluate(X6, Y6, ks=4), TypeError, "sequence"),
        (lambda: evaluate(X6, Y6, ks=(1, 6)), ValueError, "larger than the gallery"),
        (lambda: evaluate(X6, list(range(6))), ValueError, "every query is lone"),
        (lambda: evaluate(X6, Y6, backend="gpu"), ValueError, "backend"),
        (lambda: evaluate(X6, Y6, chunk_bytes=0), ValueError, "chunk_bytes"),
        (lambda: evaluate_query_gallery(X6, Y6, torch.randn(4, 2), [0, 1, 0, 1]), ValueError, "dim"),
        (
            lambda: evaluate_query_gallery(X6, Y6, X6[:3], [0, 0, 0]),
            ValueError,
            "gallery_labels has a single",
        ),
        (lambda: evaluate_query_gallery(X6, [0] * 6, X6, Y6, ks=(1,)), ValueError, "NMI"),
        (lambda: evaluate_query_gallery(X6, Y6, X6[:4], [0, 0, 1, 1], ks=(5,)), ValueError, "larger than"),
        (lambda: knn(X6, X6, 6, exclude_self=True), ValueError, "only 5 other samples"),
        (lambda: knn(X6, X6[:3], 1, exclude_self=True), ValueError, "same set"),
        (lambda: knn(X6, X6, 0), ValueError, "positive"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_package_re_exports_the_split_modules():
    """``dmlbook.evaluation`` is a package: every public name of its modules is importable from it, as the same
    object (so a patch of ``dmlbook.evaluation.neighbours._x`` reaches ``dmlbook.evaluation.evaluate``)."""
    assert sorted(dmlbook.evaluation.__all__) == sorted(metrics.__all__ + neighbours.__all__)
    for module in (metrics, neighbours):
        for name in module.__all__:
            assert getattr(dmlbook.evaluation, name) is getattr(module, name)
    assert metrics._knn is neighbours._knn  # evaluate() searches with the neighbours module's backends
