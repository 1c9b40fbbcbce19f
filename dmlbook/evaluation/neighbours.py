"""Exact k nearest neighbours under the Euclidean distance: a torch backend and a faiss one.

:func:`knn` is exact. The torch backend processes the queries in chunks so that one (chunk, gallery) block of
squared distances stays under ``chunk_bytes`` (256 MiB by default): 50,000 x 512 never builds the
50,000 x 50,000 matrix. Ties (equal computed distances) are broken by the lower gallery index, so results are
deterministic and do not depend on the chunk size. Two things make it fast:

* leave-one-out (``exclude_self``, as in :func:`~dmlbook.evaluation.metrics.evaluate`) computes each pair's
  distance once: strip [s, e) of the rows is compared with rows [s, N) only, and the block serves both its own
  rows and, transposed, the later rows, so the matrix products cover half of the N x N pairs;
* a row's k nearest are found among few candidates: the columns are cut into groups of m (about
  sqrt(G / (k + 1))), and the k nearest lie in the k + 1 groups with the smallest minima, unless a tie at the
  boundary could hide outside them (then that row is sorted in full). Only candidates get the query's norm
  added and the clamp at 0, so the values, and the results, are those of a full sort.

At 30,000 x 512 on 2 cores this takes about 0.6-0.8 of faiss's time (``benchmarks/knn_speed.py``). The faiss
backend (``IndexFlatL2``, exact) is used when asked for, or by ``backend="auto"`` when faiss is importable and
the input is a float32 CPU tensor (auto never moves data off a GPU or drops float64 precision); its tie order
is faiss's own.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dmlbook._checks import check_choice, check_embeddings

DEFAULT_CHUNK_BYTES = 256 * 2**20  # budget for one (chunk, gallery) block of distances
BACKENDS = ("auto", "torch", "faiss")

__all__ = ["BACKENDS", "DEFAULT_CHUNK_BYTES", "knn"]


# ----------------------------------------------------------------------------------------------- validation
def _as_embeddings(x: Any, name: str, *, min_samples: int) -> Tensor:
    """numpy or torch (N, D) floating input -> validated tensor (half precision is promoted to float32)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array of shape (N, dim); got {type(x).__name__}"
        )
    x = check_embeddings(x.detach(), name, min_samples=min_samples)
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_k(k: Any, gallery_size: int, exclude_self: bool) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive int; got {k!r}")
    available = gallery_size - int(exclude_self)
    if k > available:
        what = "other samples" if exclude_self else "gallery samples"
        raise ValueError(f"k={k} is larger than the gallery: each query has only {available} {what}")
    return int(k)


def _check_chunk_bytes(chunk_bytes: Any) -> int:
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, numbers.Integral) or chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be a positive int (bytes); got {chunk_bytes!r}")
    return int(chunk_bytes)


def _pair(query: Tensor, gallery: Tensor) -> tuple[Tensor, Tensor]:
    """Same device, same feature dimension, common floating dtype."""
    if query.device != gallery.device:
        raise ValueError(f"query is on {query.device} but gallery is on {gallery.device}; they must match")
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query has dim {query.shape[1]} but gallery has dim {gallery.shape[1]}; they must match"
        )
    dtype = torch.promote_types(query.dtype, gallery.dtype)
    return query.to(dtype), gallery.to(dtype)


# ------------------------------------------------------------------------------------------- k-NN (torch)
def _shifted_sq_dists(query: Tensor, gallery: Tensor, gallery_sq: Tensor, out: Tensor) -> Tensor:
    """||g||^2 - 2 q.g into ``out`` (c, G): the squared distance less ||q||^2, a per-row constant that cannot
    change a row's ranking, so it is added (with the clamp at 0) only to the entries that are kept."""
    return torch.addmm(gallery_sq.unsqueeze(0), query, gallery.T, alpha=-2.0, out=out)  # (c, G)


def _pair_sq_dists(rows: Tensor, cols: Tensor, rows_sq: Tensor, cols_sq: Tensor, out: Tensor) -> Tensor:
    """(||x_i||^2 + ||x_j||^2) - 2 x_i.x_j into ``out`` (r, c), unclamped. The norms are added first, and
    addition commutes exactly, so a pair gets the same value whichever of its points is the row."""
    torch.add(rows_sq.unsqueeze(1), cols_sq.unsqueeze(0), out=out)  # (r, c)
    return out.addmm_(rows, cols.T, alpha=-2.0)  # (r, c)


def _finish(d: Tensor, shift: Tensor | None) -> Tensor:
    """Squared distances clamped at 0, from unclamped ones (plus the per-row ``shift``, (c, 1), if any): the same
    rounding as computing them for the whole row first. A new tensor."""
    return (d.add(shift) if shift is not None else d.clone(memory_format=torch.contiguous_format)).clamp_(
        min=0
    )


def _lowest_index_selection(d: Tensor, kth: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k smallest entries per row, taking tied values at the boundary from the lowest column indices."""
    below = d < kth  # (r, G)
    tied = d == kth  # (r, G)
    need = k - below.sum(1, keepdim=True)  # (r, 1) tied entries still to take
    keep = below | (tied & (torch.cumsum(tied, 1, dtype=torch.int32) <= need))  # (r, G), k per row
    idx = keep.nonzero()[:, 1].view(d.shape[0], k)  # (r, k), ascending column order
    return d.gather(1, idx), idx  # (r, k), (r, k)


def _topk_deterministic(d: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Row-wise k smallest values, sorted by (value, column index)."""
    vals, idx = torch.topk(d, min(k + 1, d.shape[1]), dim=1, largest=False)  # (c, k+1): one extra to see ties
    if vals.shape[1] > k:
        ambiguous = vals[:, k] == vals[:, k - 1]  # (c,) a tie straddles the cut: topk's pick is arbitrary
        vals, idx = vals[:, :k], idx[:, :k]  # (c, k)
        if bool(ambiguous.any()):
            rows = ambiguous.nonzero().squeeze(1)  # (r,)
            vals[rows], idx[rows] = _lowest_index_selection(d[rows], vals[rows, -1:], k)
    return _first_k(vals, idx, k)  # (c, k), (c, k)


def _first_k(vals: Tensor, idx: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k smallest (value, index) pairs of each row, in that order: values >= 0 (squared distances, +inf
    allowed), indices unique in a row and below 2^31.

    float32: one selection on int64 keys, the value's bits (-0.0 folded into +0.0; the bits of non-negative
    floats order as the floats do) in the high half and the index in the low half. Other dtypes: a sort by
    index, then a stable sort by value.
    """
    if vals.dtype == torch.float32:
        keys = (
            (vals + 0.0).view(torch.int32).to(torch.int64) << 32
        ) | idx  # (c, n) ordered as (value, index)
        keys = (
            torch.topk(keys, k, dim=1, largest=False).values if k < keys.shape[1] else keys.sort(dim=1).values
        )
        return (keys >> 32).to(torch.int32).view(torch.float32), keys & 0xFFFFFFFF  # (c, k), (c, k)
    idx, order = idx.sort(dim=1)  # (c, n) by index, then a stable sort by value keeps ties by index
    vals, order2 = vals.gather(1, order).sort(dim=1, stable=True)  # (c, n)
    return vals[:, :k], idx.gather(1, order2[:, :k])  # (c, k), (c, k)


def _group_size(n: int, k: int, *, minimum: int = 32) -> int:
    """Columns per group of the candidate pre-selection over n columns (a power of two), or 0 when it would not
    pay (k too large for n). About sqrt(n / (k + 1)) balances the two small selections (among n / m group
    minima, then among the (k + 1) m candidates). ``minimum``: 32 for groups of contiguous columns, below which
    their minima vectorise badly."""
    group = max(minimum, 2 ** round(math.log2(max(1.0, math.sqrt(n / (k + 1))))))
    return group if 4 * (k + 1) * group <= n else 0


def _select(d: Tensor, k: int, group: int, shift: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The k smallest finished values per row of ``d`` (c, W) and their columns, sorted by (value, column),
    exactly; by candidate pre-selection when the columns form enough whole groups of ``group``.

    Pre-selection: let t be the (k+1)-th smallest group minimum of a row. Every column outside the k + 1 groups
    with the smallest minima is >= t, and those groups hold at least k + 1 columns <= t. So the k smallest lie
    among their (k + 1) x group columns, unless the k-th value found equals the finished t, when a tie with a
    column outside cannot be ruled out: such rows (rare: exact or float-rounding ties) are redone in full. The
    finishing (adding ``shift``, clamping at 0) is monotone, so selecting before it is exact.
    """
    c, width = d.shape
    if not group or width % group or width < 4 * (k + 1) * group:
        return _topk_deterministic(_finish(d, shift), k)
    if d.stride(1) == 1:  # groups of contiguous columns
        minima = d.view(c, width // group, group).amin(2)  # (c, W/m)
    else:  # d is a transposed block: its groups are whole rows of the block, reduced row against row
        minima = d.T.view(width // group, group, c).amin(1).T.contiguous()  # (c, W/m)
    low, groups = torch.topk(minima, k + 1, dim=1, largest=False)  # (c, k+1) sorted ascending
    offsets = torch.arange(group, device=d.device)  # (m,)
    cols = (groups.unsqueeze(2) * group + offsets).view(c, -1)  # (c, (k+1) m) candidate columns
    vals, idx = _first_k(_finish(d.gather(1, cols), shift), cols, k)  # (c, k) by (value, column)
    unsure = vals[:, -1] >= _finish(low[:, k:], shift).squeeze(1)  # (c,)
    if bool(unsure.any()):
        rows = unsure.nonzero().squeeze(1)  # (r,)
        vals[rows], idx[rows] = _topk_deterministic(
            _finish(d[rows], shift[rows] if shift is not None else None), k
        )
    return vals, idx  # (c, k), (c, k)


def _merge(vals: Tensor, idx: Tensor, new_vals: Tensor, new_idx: Tensor) -> tuple[Tensor, Tensor]:
    """Merge running (r, k) neighbour lists with (r, k') candidates: the k smallest by (value, index)."""
    return _first_k(torch.cat([vals, new_vals], 1), torch.cat([idx, new_idx], 1), vals.shape[1])  # (r, k)


def _chunk_rows(n_cols: int, itemsize: int, chunk_bytes: int) -> int:
    """Rows per block so that a (rows, n_cols) block of distances fits in ``chunk_bytes``."""
    return max(1, chunk_bytes // (n_cols * itemsize))


def _knn_torch(
    query: Tensor, gallery: Tensor, k: int, exclude_self: bool, chunk_bytes: int
) -> tuple[Tensor, Tensor]:
    if exclude_self:
        return _knn_torch_self(query, k, chunk_bytes)
    n_query, n_gallery = query.shape[0], gallery.shape[0]
    group = _group_size(n_gallery, k)
    gallery_sq = gallery.pow(2).sum(1)  # (G,)
    if group:  # pad to whole groups with columns at +inf (zero rows, infinite norm)
        pad = -n_gallery % group
        gallery = torch.cat([gallery, gallery.new_zeros(pad, gallery.shape[1])])  # (G', D)
        gallery_sq = torch.cat([gallery_sq, gallery_sq.new_full((pad,), float("inf"))])  # (G',)
    rows = min(n_query, _chunk_rows(gallery.shape[0], query.element_size(), chunk_bytes))
    block = query.new_empty(rows, gallery.shape[0])  # (rows, G') reused by every chunk
    dists = query.new_empty(n_query, k)  # (Q, k)
    indices = torch.empty(n_query, k, dtype=torch.long, device=query.device)  # (Q, k)
    for start in range(0, n_query, rows):
        stop = min(start + rows, n_query)
        q = query[start:stop]  # (c, D)
        d = _shifted_sq_dists(q, gallery, gallery_sq, block[: stop - start])  # (c, G')
        dists[start:stop], indices[start:stop] = _select(d, k, group, shift=q.pow(2).sum(1, keepdim=True))
    return dists.sqrt_(), indices  # (Q, k), (Q, k)


def _knn_torch_self(x: Tensor, k: int, chunk_bytes: int) -> tuple[Tensor, Tensor]:
    """Leave-one-out k-NN of ``x`` (N, D) among its own rows, computing each pair's distance once.

    The rows are taken in strips: strip [s, e) is compared with rows [s, N) only. Its block gives rows s..e their
    neighbours among columns >= s; transposed, it gives every later row j >= e its candidates among rows s..e,
    merged into j's running list. Row j's columns < s came that way from earlier strips, so the matrix
    products cover half of the N x N pairs. Results are exact, ties broken by lower index as in the other path.
    """
    n, itemsize = x.shape[0], x.element_size()
    x_sq = x.pow(2).sum(1)  # (N,)
    col_group, row_group, rows = _group_size(n, k), 0, min(n, _chunk_rows(n, itemsize, chunk_bytes))
    if col_group:  # pad to whole groups with rows at +inf (zero rows, infinite norm); strips of whole groups
        pad = -n % col_group
        padded_rows = min(n + pad, _chunk_rows(n + pad, itemsize, chunk_bytes)) // col_group * col_group
        if padded_rows:
            x = torch.cat([x, x.new_zeros(pad, x.shape[1])])  # (N', D)
            x_sq = torch.cat([x_sq, x_sq.new_full((pad,), float("inf"))])  # (N',)
            rows = padded_rows
            row_group = min(col_group, _group_size(rows, k, minimum=2))  # divides col_group: both powers of 2
        else:  # the budget holds less than one group of rows
            col_group = 0
    n_pad = x.shape[0]
    buffer = x.new_empty(rows * n_pad)  # room for the largest block, reused
    dists = x.new_full((n_pad, k), float("inf"))  # (N', k) running lists, sorted by (value, index)
    indices = torch.arange(n_pad, n_pad + k, device=x.device).expand(n_pad, k).clone()  # (N', k) placeholders
    for start in range(0, n_pad, rows):
        stop = min(start + rows, n_pad)
        d = buffer[: (stop - start) * (n_pad - start)].view(stop - start, n_pad - start)  # (r, N' - s)
        _pair_sq_dists(x[start:stop], x[start:], x_sq[start:stop], x_sq[start:], d)
        d.diagonal().fill_(float("inf"))  # (i, i): the query itself
        vals, cols = _select(d, min(k, d.shape[1]), col_group)  # (r, k) among columns >= s
        dists[start:stop], indices[start:stop] = _merge(
            dists[start:stop], indices[start:stop], vals, cols + start
        )
        if stop < n_pad:  # later rows: their candidates among this strip's rows (groups of rows, any size)
            vals, cols = _select(d[:, stop - start :].T, min(k, stop - start), row_group)  # (N' - e, k')
            dists[stop:], indices[stop:] = _merge(dists[stop:], indices[stop:], vals, cols + start)
    return dists[:n].sqrt_(), indices[:n]  # (N, k), (N, k)


# ------------------------------------------------------------------------------------------- k-NN (faiss)
def _import_faiss() -> Any | None:
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _drop_self(dists: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """From k+1 neighbours, drop the query's own index (or the last one if it is not among them)."""
    is_self = indices == torch.arange(indices.shape[0]).unsqueeze(1)  # (Q, k+1)
    is_self[~is_self.any(1), -1] = True  # (Q, k+1), exactly one True per row
    shape = (indices.shape[0], indices.shape[1] - 1)
    return dists[~is_self].view(shape), indices[~is_self].view(shape)  # (Q, k), (Q, k)


def _knn_faiss(query: Tensor, gallery: Tensor, k: int, exclude_self: bool) -> tuple[Tensor, Tensor]:
    faiss = _import_faiss()
    index = faiss.IndexFlatL2(gallery.shape[1])
    index.add(np.ascontiguousarray(gallery.cpu().numpy(), dtype=np.float32))
    sq, idx = index.search(np.ascontiguousarray(query.cpu().numpy(), dtype=np.float32), k + int(exclude_self))
    dists, indices = torch.from_numpy(sq), torch.from_numpy(idx).long()  # (Q, k'), (Q, k')
    if exclude_self:
        dists, indices = _drop_self(dists, indices)  # (Q, k), (Q, k)
    dists = dists.clamp_(min=0).sqrt_().to(device=query.device, dtype=query.dtype)
    return dists, indices.to(query.device)


def _resolve_backend(backend: str, query: Tensor) -> str:
    if check_choice(backend, BACKENDS, "backend") == "torch":
        return backend
    have_faiss = _import_faiss() is not None
    if backend == "faiss" and not have_faiss:
        raise ImportError("backend='faiss' needs faiss: pip install faiss-cpu (or faiss-gpu)")
    if backend == "auto":
        usable = have_faiss and query.device.type == "cpu" and query.dtype == torch.float32
        return "faiss" if usable else "torch"
    return backend


def _knn(
    query: Tensor, gallery: Tensor, k: int, *, exclude_self: bool, backend: str, chunk_bytes: int
) -> tuple[Tensor, Tensor]:
    if _resolve_backend(backend, query) == "faiss":
        return _knn_faiss(query, gallery, k, exclude_self)
    return _knn_torch(query, gallery, k, exclude_self, chunk_bytes)


@torch.no_grad()
def knn(
    query: Tensor | np.ndarray,
    gallery: Tensor | np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    normalize: bool = False,
    backend: str = "auto",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours of each query row in ``gallery`` under the Euclidean distance.

    Args:
        query: (Q, D) float tensor or array.
        gallery: (G, D) float tensor or array.
        k: neighbours per query; at most G (G - 1 with ``exclude_self``).
        exclude_self: the query set *is* the gallery (row i of ``query`` is row i of ``gallery``, so Q == G);
            gallery index i is never returned for query i (leave-one-out).
        normalize: L2-normalise both sets first (the ranking is then the cosine-similarity ranking).
        backend: ``"torch"``, ``"faiss"`` (``IndexFlatL2`` on CPU in float32), or ``"auto"`` (faiss when
            importable and the input is a float32 CPU tensor, else torch).
        chunk_bytes: torch backend only: memory budget for one (chunk, G) block of distances.

    Returns:
        ``(distances, indices)``, both (Q, k), sorted by increasing distance, on the query's device;
        distances are Euclidean (not squared) in the query dtype. Torch breaks ties by lower gallery index.
    """
    q = _as_embeddings(query, "query", min_samples=1)
    g = _as_embeddings(gallery, "gallery", min_samples=1)
    q, g = _pair(q, g)
    if exclude_self and q.shape[0] != g.shape[0]:
        raise ValueError(
            f"exclude_self=True needs query and gallery to be the same set; got {q.shape[0]} and "
            f"{g.shape[0]} rows"
        )
    k = _check_k(k, g.shape[0], exclude_self)
    if normalize:
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)  # (Q, D), (G, D)
    return _knn(
        q, g, k, exclude_self=exclude_self, backend=backend, chunk_bytes=_check_chunk_bytes(chunk_bytes)
    )
