"""Loop references written from the loss formulas (slow, for small batches only) and test-data helpers.

Each reference walks over pairs or triplets in Python with differentiable scalar torch ops, so it gives both the
value and (through autograd) the gradient to compare with the vectorised library code.
"""

from __future__ import annotations

import itertools
import math

import torch


def batch(
    n_classes: int = 4, per_class: int = 4, dim: int = 8, *, dtype=torch.float64, device="cpu", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_classes * per_class, dim, generator=g, dtype=torch.float64).to(
        dtype=dtype, device=device
    )
    y = torch.arange(n_classes).repeat_interleave(per_class).to(device)
    return x, y


def _unit(x):
    return [row / row.norm() for row in x]


def _dist(u, i, j):
    return (u[i] - u[j]).norm()


def _pairs(y):
    n = len(y)
    pos = [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
    neg = [(i, j) for i in range(n) for j in range(n) if y[i] != y[j]]
    return pos, neg


def _mean_nonzero(terms):
    active = [t for t in terms if t.item() > 0]
    return sum(active) / len(active) if active else torch.zeros((), dtype=torch.float64)


def contrastive(x, y, pos_margin=0.0, neg_margin=1.0):
    u, (pos, neg) = _unit(x), _pairs(y.tolist())
    lp = [torch.relu(_dist(u, i, j) - pos_margin) for i, j in pos]
    ln = [torch.relu(neg_margin - _dist(u, i, j)) for i, j in neg]
    return _mean_nonzero(lp) + _mean_nonzero(ln)


def triplets(y):
    y = y.tolist()
    n = len(y)
    return [
        (a, p, q)
        for a in range(n)
        for p in range(n)
        for q in range(n)
        if a != p and y[a] == y[p] and y[q] != y[a]
    ]


def _triplet_terms(x, y, margin, mining):
    """The hinges ``[d_ap − d_an + m]₊`` of the mined triplets, anchor by anchor: all triplets, one (hardest
    positive, hardest negative) per anchor, or the semi-hard ``d_ap < d_an ≤ d_ap + m``."""
    u, lab = _unit(x), y.tolist()
    n = len(lab)
    chosen = []
    for a in range(n):
        ps = [p for p in range(n) if p != a and lab[p] == lab[a]]
        ns = [q for q in range(n) if lab[q] != lab[a]]
        if mining == "batch_hard" and ps and ns:
            p = max(ps, key=lambda p: _dist(u, a, p).item())
            q = min(ns, key=lambda q: _dist(u, a, q).item())
            chosen.append((a, p, q))
        elif mining != "batch_hard":
            chosen += [(a, p, q) for p in ps for q in ns]
    terms = []
    for a, p, q in chosen:
        d_ap, d_an = _dist(u, a, p), _dist(u, a, q)
        if mining == "semi_hard" and not (d_ap.item() < d_an.item() <= d_ap.item() + margin):
            continue
        terms.append(torch.relu(d_ap - d_an + margin))
    return terms


def triplet(x, y, margin=0.05, mining="all"):
    """``[d_ap − d_an + m]₊`` averaged over the mined triplets with a non-zero loss."""
    return _mean_nonzero(_triplet_terms(x, y, margin, mining))


def multi_similarity(x, y, alpha=2.0, beta=50.0, base=0.5, epsilon=None):
    u, lab = _unit(x), y.tolist()
    n = len(lab)
    s = [[u[i] @ u[j] for j in range(n)] for i in range(n)]
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        ps = [j for j in range(n) if j != i and lab[j] == lab[i]]
        ns = [j for j in range(n) if lab[j] != lab[i]]
        if epsilon is not None:
            if not ps or not ns:
                ps, ns = [], []
            else:
                max_neg = max(s[i][j].item() for j in ns)
                min_pos = min(s[i][j].item() for j in ps)
                ps, ns = (
                    [j for j in ps if s[i][j].item() - epsilon < max_neg],
                    [j for j in ns if s[i][j].item() + epsilon > min_pos],
                )
        if ps:
            total = total + torch.log(1 + sum(torch.exp(-alpha * (s[i][j] - base)) for j in ps)) / alpha
        if ns:
            total = total + torch.log(1 + sum(torch.exp(beta * (s[i][j] - base)) for j in ns)) / beta
    return total / n


def lifted(x, y, neg_margin=1.0, pos_margin=0.0):
    u, lab = _unit(x), y.tolist()
    n = len(lab)
    pos, _ = _pairs(lab)
    terms = []
    for i, j in pos:
        negs = [torch.exp(neg_margin - _dist(u, k, m)) for k in (i, j) for m in range(n) if lab[m] != lab[k]]
        if not negs:
            return torch.zeros((), dtype=torch.float64)
        J = torch.log(sum(negs)) + _dist(u, i, j) - pos_margin
        terms.append(torch.relu(J) ** 2 / 2)
    return sum(terms) / len(terms) if terms else torch.zeros((), dtype=torch.float64)


def ranked_list(x, y, margin=0.4, Tn=10.0, imbalance=0.5, alpha=None, Tp=0.0, eps=1e-5):
    """TPAMI form with PML's per-entry eps in the denominators."""
    alpha = 1 + margin / 2 if alpha is None else alpha
    u, lab = _unit(x), y.tolist()
    n = len(lab)
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        num_p = den_p = num_n = den_n = torch.zeros((), dtype=torch.float64)
        for j in range(n):
            if j == i:
                continue
            d = _dist(u, i, j)
            if lab[j] == lab[i] and d.item() > alpha - margin:
                w = torch.exp(Tp * (d - (alpha - margin)))
                num_p, den_p = num_p + w * (d - (alpha - margin)), den_p + w
            if lab[j] != lab[i] and d.item() < alpha:
                w = torch.exp(Tn * (alpha - d))
                num_n, den_n = num_n + w * (alpha - d), den_n + w
        total = total + (1 - imbalance) * num_p / (den_p + n * eps) + imbalance * num_n / (den_n + n * eps)
    return total / n


def osm_caa(x, y, attention, sigma=0.8, margin=1.2, lam=0.5, detach=True, kernel_scale=1.0, pair_scale=1.0):
    """Weighted contrastive loss of Wang et al. (AAAI 2019); ``attention`` is a list of per-sample a_i."""
    u, (pos, neg) = _unit(x), _pairs(y.tolist())

    def w(t):
        return t.detach() if detach else t

    num_p = den_p = num_n = den_n = torch.zeros((), dtype=torch.float64)
    for i, j in pos:
        d = _dist(u, i, j)
        wp = w(torch.exp(-(d**2) / (kernel_scale * sigma**2)) * torch.minimum(attention[i], attention[j]))
        num_p, den_p = num_p + wp * d**2, den_p + wp
    for i, j in neg:
        d = _dist(u, i, j)
        wn = w(torch.relu(margin - d) * torch.minimum(attention[i], attention[j]))
        num_n, den_n = num_n + wn * torch.relu(margin - d) ** 2, den_n + wn
    lp = 0.5 * num_p / den_p if den_p.item() > 0 else torch.zeros((), dtype=torch.float64)
    ln = 0.5 * num_n / den_n if den_n.item() > 0 else torch.zeros((), dtype=torch.float64)
    return ((1 - lam) * lp + lam * ln) * pair_scale


def value_and_grad(fn, x, y, **kw):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x, y, **kw)
    (g,) = torch.autograd.grad(out, x, allow_unused=True)
    return out.detach(), (torch.zeros_like(x) if g is None else g)


def assert_close_value_grad(ours, reference, x, y, *, rtol=1e-9, **kw):
    v1, g1 = value_and_grad(ours, x, y, **kw)
    v2, g2 = value_and_grad(reference, x, y, **kw)
    assert math.isclose(v1.item(), v2.item(), rel_tol=rtol, abs_tol=rtol), (v1.item(), v2.item())
    scale = max(g2.abs().max().item(), 1e-12)
    assert (g1.to(g2.dtype) - g2).abs().max().item() <= rtol * scale + 1e-15, "gradients differ"


def assert_pml_parity(
    ours, pml_fn, *, dtype, device="cpu", seeds=(0, 1, 2), n=96, dim=32, classes=24
) -> None:
    """Value and gradient of ``ours`` equal PML's on random batches: ≤ 1e-5 relative in float32, ≤ 1e-9 in float64.

    Labels are drawn at random (classes of different sizes, some singletons) to exercise every convention.
    """
    tol = 1e-5 if dtype == torch.float32 else 1e-9
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, dim, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
        y = torch.randint(0, classes, (n,), generator=g).to(device)
        v1, g1 = value_and_grad(ours, x, y)
        v2, g2 = value_and_grad(pml_fn, x, y)
        assert abs(v1.item() - v2.item()) <= tol * max(abs(v2.item()), 1e-3), (seed, v1.item(), v2.item())
        rel = ((g1 - g2).norm() / g2.norm().clamp(min=1e-30)).item()
        assert rel <= tol, f"seed {seed}: relative gradient difference {rel:.2e} > {tol}"


# ---- N-pair, angular (PML's forms) ----------------------------------------------------------------------------


def npairs(x, y, negatives="pairs"):
    """PML's NPairsLoss: the first two samples of each class form its pair; CE of the anchor over the pairs'
    positives. ``negatives="all"``: every sample of another class instead."""
    u, lab = _unit(x), y.tolist()
    n = len(lab)
    chosen = []
    for c in sorted(set(lab)):
        members = [i for i in range(n) if lab[i] == c]
        if len(members) >= 2:
            chosen.append((members[0], members[1]))
    if not chosen:
        return torch.zeros((), dtype=torch.float64)
    terms = []
    for a, p in chosen:
        s_ap = u[a] @ u[p]
        if negatives == "pairs":
            others = [q for b, q in chosen if b != a]
        else:
            others = [m for m in range(n) if lab[m] != lab[a]]
        zero = torch.zeros((), dtype=torch.float64)
        terms.append(torch.log(1 + sum((torch.exp(u[a] @ u[m] - s_ap) for m in others), zero)))
    return sum(terms) / len(terms)


def angular(x, y, alpha=40.0):
    """PML's AngularLoss: every ordered positive pair, every negative; the negative enters un-normalised."""
    u, (pos, _) = _unit(x), _pairs(y.tolist())
    lab = y.tolist()
    t2 = math.tan(math.radians(alpha)) ** 2
    terms = []
    for a, p in pos:
        negs = [m for m in range(len(lab)) if lab[m] != lab[a]]
        if not negs:
            return torch.zeros((), dtype=torch.float64)
        f = [4 * t2 * (u[a] + u[p]) @ x[m] - 2 * (1 + t2) * (u[a] @ u[p]) for m in negs]
        terms.append(torch.log(1 + sum(torch.exp(v) for v in f)))
    return sum(terms) / len(terms) if terms else torch.zeros((), dtype=torch.float64)


# ---- Ranked list loss, the released code's variant (algorithms.md §6.2) -----------------------------------------


def _rll_official_terms(x, y, margin, Tn, imbalance, alpha, Tp):
    """Per query i: constants (S_i, Σ_P w, Σ_N w) and the lists of (j, sign, w, d_ij) with d_ij = ||u_i − sg(u_j)||."""
    alpha = 1 + margin / 2 if alpha is None else alpha
    inner = alpha - margin
    u, lab = _unit(x), y.tolist()
    n = len(lab)
    queries = []
    for i in range(n):
        items = []
        for j in range(n):
            if j == i:
                continue
            d = (u[i] - u[j].detach()).norm()  # the reference side is a constant
            dv = d.item()
            if lab[j] == lab[i] and dv > inner:
                items.append((+1, math.exp(Tp * (dv - inner)), d))
            if lab[j] != lab[i] and 0 < dv < alpha:
                items.append((-1, math.exp(Tn * (alpha - dv)), d))
        sum_p = sum(w for s, w, _ in items if s > 0)
        sum_n = sum(w for s, w, _ in items if s < 0)
        queries.append((sum_p + sum_n, sum_p, sum_n, items))
    return queries, alpha, inner


def ranked_list_official(x, y, margin=0.4, Tn=10.0, imbalance=0.5, alpha=None, Tp=0.0):
    """Σ_i (S_i/S) [(1−λ) Σ_{P*_i} w (d − (α−m)) / Σ w + λ Σ_{N*_i} w (α − d) / Σ w], w and S constants,
    d_ij = ||x̂_i − sg(x̂_j)||."""
    queries, alpha, inner = _rll_official_terms(x, y, margin, Tn, imbalance, alpha, Tp)
    total_s = sum(q[0] for q in queries)
    total = torch.zeros((), dtype=torch.float64)
    if total_s == 0:
        return total + 0 * x.sum()
    for s_i, sum_p, sum_n, items in queries:
        for sign, w, d in items:
            if sign > 0:
                total = total + (s_i / total_s) * (1 - imbalance) * w / sum_p * (d - inner)
            else:
                total = total + (s_i / total_s) * imbalance * w / sum_n * (alpha - d)
    return total


def ranked_list_official_surrogate(x, y, margin=0.4, Tn=10.0, alpha=None, Tp=0.0):
    """algorithms.md §6.2 verbatim: L_code = Σ_i (S_i/S) Σ_{j≠i} sg(c_ij) s_ij ||f_i − sg(f_j)||, c_ij = ½ w_ij / Σ w
    over P*_i (s = +1) or N*_i (s = −1). Only its gradient is meaningful."""
    queries, _, _ = _rll_official_terms(x, y, margin, Tn, 0.5, alpha, Tp)
    total_s = sum(q[0] for q in queries)
    total = torch.zeros((), dtype=torch.float64)
    for s_i, sum_p, sum_n, items in queries:
        for sign, w, d in items:
            c = 0.5 * w / (sum_p if sign > 0 else sum_n)
            total = total + (s_i / total_s) * c * sign * d
    return total


# ---- Symmetrical synthesis (Gu & Ko, AAAI 2020; algorithms.md §4) ----------------------------------------------


def symmetric_point(p, axis, ratio=2.0, norm_ratio=1.0):
    """The released code's tf_get_symmetric_point(anchor=axis, pos=p), row by row: U = A/||A||,
    R = A + ((P − A)·U) U, Q = β (α R − P)."""
    rows = []
    for p_i, a_i in zip(p, axis):
        unit = a_i / a_i.norm()
        r = a_i + ((p_i - a_i) @ unit) * unit
        rows.append(norm_ratio * (ratio * r - p_i))
    return torch.stack(rows)


def symm_pool(x, y, ratio=2.0, norm_ratio=1.0):
    """(pool, partner, members): the embeddings then their mirror images, each about its same-class partner."""
    lab = y.tolist()
    n = len(lab)
    members = {c: [i for i in range(n) if lab[i] == c] for c in sorted(set(lab))}
    partner = [0] * n
    for a, b in members.values():
        partner[a], partner[b] = b, a
    mirrors = symmetric_point(x, x[partner], ratio, norm_ratio)
    return torch.cat([x, mirrors]), partner, members


def symm_mine(pool, y, partner, members, hardness="similarity"):
    """For every anchor i and other class: the pool index of the hardest of x_k, x_l, x'_k, x'_l."""
    n = len(partner)
    u = _unit(pool)
    chosen = {}
    for i in range(n):
        for c, (k, l) in members.items():
            if c == y[i].item():
                continue
            cands = [k, l, n + k, n + l]
            if hardness == "angular":
                score = [((u[i] + u[partner[i]]) @ pool[m]).item() for m in cands]
            else:
                score = [(u[i] @ u[m]).item() for m in cands]
            chosen[i, c] = cands[max(range(4), key=lambda t: (score[t], -t))]
    return chosen


def symm_triplet(x, y, margin=0.05, mining="all", ratio=2.0, norm_ratio=1.0):
    pool, partner, members = symm_pool(x, y, ratio, norm_ratio)
    chosen = symm_mine(pool, y, partner, members)
    u, n = _unit(pool), len(partner)
    terms = []
    for a in range(n):
        negs = [m for (i, _), m in chosen.items() if i == a]
        if not negs:
            continue
        d_ap = _dist(u, a, partner[a])
        if mining == "batch_hard":
            negs = [min(negs, key=lambda m: _dist(u, a, m).item())]
        for m in negs:
            d_an = _dist(u, a, m)
            if mining == "semi_hard" and not (d_ap.item() < d_an.item() <= d_ap.item() + margin):
                continue
            terms.append(torch.relu(d_ap - d_an + margin))
    return _mean_nonzero(terms)


def symm_lifted(x, y, neg_margin=1.0, pos_margin=0.0, ratio=2.0, norm_ratio=1.0):
    pool, partner, members = symm_pool(x, y, ratio, norm_ratio)
    chosen = symm_mine(pool, y, partner, members)
    u, n = _unit(pool), len(partner)
    if len(members) < 2:
        return torch.zeros((), dtype=torch.float64)
    terms = []
    for i in range(n):
        j = partner[i]
        negs = [torch.exp(neg_margin - _dist(u, k, m)) for (k, _), m in chosen.items() if k in (i, j)]
        J = torch.log(sum(negs)) + _dist(u, i, j) - pos_margin
        terms.append(torch.relu(J) ** 2 / 2)
    return sum(terms) / len(terms)


def symm_npairs(x, y, ratio=2.0, norm_ratio=1.0):
    pool, partner, members = symm_pool(x, y, ratio, norm_ratio)
    chosen = symm_mine(pool, y, partner, members)
    u = _unit(pool)
    terms = []
    for a, p in members.values():
        s_ap = u[a] @ u[p]
        negs = [m for (i, _), m in chosen.items() if i == a]
        zero = torch.zeros((), dtype=torch.float64)
        terms.append(torch.log(1 + sum((torch.exp(u[a] @ u[m] - s_ap) for m in negs), zero)))
    return sum(terms) / len(terms)


def symm_npairs_official(x, y, ratio=2.0, norm_ratio=1.0):
    """symm_npair_loss of the released code on L2-normalised points: element-wise max over the six combinations."""
    _, _, members = symm_pool(x, y, ratio, norm_ratio)
    firsts = [a for a, _ in members.values()]
    seconds = [p for _, p in members.values()]
    A, P = x[firsts], x[seconds]
    S1, S2 = symmetric_point(P, A, ratio, norm_ratio), symmetric_point(A, P, ratio, norm_ratio)
    pts = [torch.stack(_unit(t)) for t in (A, P, S1, S2)]
    k = len(firsts)
    terms = []
    for c in range(k):
        row = []
        for m in range(k):
            sims = [pts[i][c] @ pts[j][m] for i, j in itertools.combinations(range(4), 2)]
            row.append(max(sims, key=lambda t: t.item()))
        logits = torch.stack(row)
        terms.append(torch.logsumexp(logits, 0) - logits[c])
    return sum(terms) / k


def symm_angular(x, y, alpha=40.0, ratio=2.0, norm_ratio=1.0):
    pool, partner, members = symm_pool(x, y, ratio, norm_ratio)
    chosen = symm_mine(pool, y, partner, members, hardness="angular")
    u, n = _unit(pool), len(partner)
    if len(members) < 2:
        return torch.zeros((), dtype=torch.float64)
    t2 = math.tan(math.radians(alpha)) ** 2
    terms = []
    for a in range(n):
        p = partner[a]
        negs = [m for (i, _), m in chosen.items() if i == a]
        f = [4 * t2 * (u[a] + u[p]) @ pool[m] - 2 * (1 + t2) * (u[a] @ u[p]) for m in negs]
        terms.append(torch.log(1 + sum(torch.exp(v) for v in f)))
    return sum(terms) / len(terms)


def pair_batch(n_classes=4, dim=5, *, dtype=torch.float64, seed=0, shuffle=True):
    """A batch of same-class pairs (every class exactly twice), in shuffled order."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2 * n_classes, dim, generator=g, dtype=torch.float64).to(dtype)
    y = torch.arange(n_classes).repeat_interleave(2)
    if shuffle:
        perm = torch.randperm(2 * n_classes, generator=g)
        y = y[perm]
    return x, y


# ---- triplet loss averaged over every mined triplet (PML's MeanReducer) ------------------------------------


def triplet_mean(x, y, margin=0.05, mining="all"):
    """``1/T Σ_{(a,p,n) mined} [d_ap − d_an + m]₊`` over every mined triplet, zero-loss ones included: all
    triplets, one (hardest positive, hardest negative) per anchor, or the semi-hard ``d_ap < d_an ≤ d_ap + m``."""
    terms = _triplet_terms(x, y, margin, mining)
    return sum(terms) / len(terms) if terms else torch.zeros((), dtype=torch.float64)


# ---- Proxy and classification losses (issue 16): references with the class vectors W (P, D) -----------------


def _cos(x, w):
    """Cosine grid as nested lists of 0-dim tensors, c[i][p] = x̂_i · ŵ_p."""
    u, v = _unit(x), _unit(w)
    return [[u[i] @ v[p] for p in range(len(v))] for i in range(len(u))]


def _log1p_sum_exp(terms):
    return torch.log(1 + sum(torch.exp(t) for t in terms)) if terms else torch.zeros((), dtype=torch.float64)


def _ce(logits, target):
    """−log softmax(logits)[target] for a list of 0-dim logits."""
    return torch.logsumexp(torch.stack(logits), 0) - logits[target]


def proxy_anchor(x, y, w, margin=0.1, alpha=32.0):
    """Kim et al. (CVPR 2020): proxies of the classes in the batch pull their samples, every proxy pushes the rest."""
    c, lab = _cos(x, w), y.tolist()
    n, n_cls = len(lab), len(w)
    present = sorted(set(lab))
    pos = sum(_log1p_sum_exp([-alpha * (c[i][p] - margin) for i in range(n) if lab[i] == p]) for p in present)
    neg = sum(
        _log1p_sum_exp([alpha * (c[i][p] + margin) for i in range(n) if lab[i] != p]) for p in range(n_cls)
    )
    return pos / len(present) + neg / n_cls


def proxy_nca(x, y, w, softmax_scale=1.0):
    """PML's ProxyNCA: softmax over −t ||x̂ − ŵ_c||², the own proxy included in the denominator."""
    u, v, lab = _unit(x), _unit(w), y.tolist()
    terms = [
        _ce([-softmax_scale * ((u[i] - v[p]) ** 2).sum() for p in range(len(v))], lab[i])
        for i in range(len(u))
    ]
    return sum(terms) / len(terms)


def normalized_softmax(x, y, w, temperature=0.05):
    c, lab = _cos(x, w), y.tolist()
    terms = [_ce([s / temperature for s in row], lab[i]) for i, row in enumerate(c)]
    return sum(terms) / len(terms)


def arcface(x, y, w, margin=0.5, scale=64.0):
    """Deng et al. (CVPR 2019) in PML's form: cos(θ + m) on the own class, cos θ − m sin m beyond θ = π − m."""
    c, lab = _cos(x, w), y.tolist()
    terms = []
    for i, row in enumerate(c):
        theta = torch.acos(row[lab[i]])
        own = (
            torch.cos(theta + margin)
            if theta.item() <= math.pi - margin
            else torch.cos(theta) - margin * math.sin(margin)
        )
        terms.append(_ce([scale * (own if p == lab[i] else s) for p, s in enumerate(row)], lab[i]))
    return sum(terms) / len(terms)


def cosface(x, y, w, margin=0.35, scale=64.0):
    c, lab = _cos(x, w), y.tolist()
    terms = [
        _ce([scale * (s - margin * (p == lab[i])) for p, s in enumerate(row)], lab[i])
        for i, row in enumerate(c)
    ]
    return sum(terms) / len(terms)


def soft_triple(x, y, w, centers_per_class=10, la=20.0, gamma=0.1, margin=0.01):
    """Qian et al. (ICCV 2019) without the centre regulariser (PML's form); row c·K + k of w is centre k of class c."""
    c, lab, k = _cos(x, w), y.tolist(), centers_per_class
    terms = []
    for i, row in enumerate(c):
        logits = []
        for cls in range(len(w) // k):
            sims = row[cls * k : (cls + 1) * k]
            q = torch.softmax(torch.stack(sims) / gamma, 0)
            big_s = sum(q[j] * sims[j] for j in range(k))
            logits.append(la * (big_s - margin * (cls == lab[i])))
        terms.append(_ce(logits, lab[i]))
    return sum(terms) / len(terms)


def supcon(x, y, temperature=0.1):
    """Khosla et al. (NeurIPS 2020), L_out, averaged over the anchors with a non-zero term (PML's reducer)."""
    u, lab = _unit(x), y.tolist()
    n = len(lab)
    if not any(lab[i] == lab[j] for i in range(n) for j in range(n) if i != j) or len(set(lab)) < 2:
        return torch.zeros((), dtype=torch.float64)
    terms = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        den = torch.logsumexp(torch.stack([u[i] @ u[j] / temperature for j in others]), 0)
        ps = [p for p in others if lab[p] == lab[i]]
        if ps:
            terms.append(-sum(u[i] @ u[p] / temperature - den for p in ps) / len(ps))
    active = [t for t in terms if t.item() > 0]
    return sum(active) / len(active) if active else torch.zeros((), dtype=torch.float64)


def value_and_grads(fn, x, y, w):
    """Value of ``fn(x, y, w)`` and its gradients with respect to x and w."""
    x = x.detach().clone().requires_grad_(True)
    w = w.detach().clone().requires_grad_(True)
    out = fn(x, y, w)
    gx, gw = torch.autograd.grad(out, (x, w))
    return out.detach(), gx, gw


def proxy_fn(loss):
    """``loss`` as a function of (x, y, w): the proxies replaced by ``w`` for the call."""

    def fn(x, y, w):
        return torch.func.functional_call(loss, {"proxies": w}, (x, y))

    return fn


def assert_close_value_grads(ours, reference, x, y, w, *, rtol=1e-9):
    """Value and the gradients w.r.t. the embeddings and the class vectors agree to ``rtol`` (relative)."""
    v1, gx1, gw1 = value_and_grads(ours, x, y, w)
    v2, gx2, gw2 = value_and_grads(reference, x, y, w)
    assert math.isclose(v1.item(), v2.item(), rel_tol=rtol, abs_tol=rtol), (v1.item(), v2.item())
    for name, a, b in (("embeddings", gx1, gx2), ("weights", gw1, gw2)):
        scale = max(b.abs().max().item(), 1e-12)
        assert (a - b).abs().max().item() <= rtol * scale + 1e-15, f"gradients w.r.t. the {name} differ"


def pml_proxy_parity(ours, pml_loss, attr, *, transposed, dtype, device="cpu", seeds=(0, 1, 2), n=96, dim=32):
    """Relative differences (value, grad embeddings, grad weights) of ``ours`` and PML's loss given the same weights.

    PML's weights ``pml_loss.<attr>`` are ``ours.proxies`` (transposed for ``W`` and ``fc``). Labels are drawn at
    random among ``ours.num_classes`` (classes of different sizes, some absent). Returns the worst of each.
    """
    ours = ours.to(dtype=dtype, device=device)
    pml_loss = pml_loss.to(dtype=dtype, device=device)
    worst = [0.0, 0.0, 0.0]
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            ours.proxies.copy_(torch.randn(ours.proxies.shape, generator=g, dtype=torch.float64).to(dtype))
            w_pml = getattr(pml_loss, attr)
            w_pml.copy_(ours.proxies.T if transposed else ours.proxies)
        x = torch.randn(n, dim, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
        y = torch.randint(0, ours.num_classes, (n,), generator=g).to(device)
        results = []
        for fn, w in ((ours, ours.proxies), (pml_loss, w_pml)):
            xx = x.clone().requires_grad_(True)
            out = fn(xx, y)
            gx, gw = torch.autograd.grad(out, (xx, w))
            results.append((out.detach(), gx, gw.T if (transposed and fn is pml_loss) else gw))
        (v1, gx1, gw1), (v2, gx2, gw2) = results
        worst[0] = max(worst[0], abs(v1.item() - v2.item()) / max(abs(v2.item()), 1e-3))
        worst[1] = max(worst[1], ((gx1 - gx2).norm() / gx2.norm().clamp(min=1e-30)).item())
        worst[2] = max(worst[2], ((gw1 - gw2).norm() / gw2.norm().clamp(min=1e-30)).item())
    return tuple(worst)
