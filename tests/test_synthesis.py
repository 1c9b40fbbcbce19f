"""Symmetrical synthesis (Gu & Ko, AAAI 2020): mirror images, hard negative mining over them, the loss plug-in."""

import math

import dml_reference as ref
import pytest
import torch
import torch.nn.functional as F
from dml_reference import assert_close_value_grad, pair_batch, symm_mine, symm_pool
from dml_reference import symmetric_point as reference_point

from dmlbook.losses import (
    AngularLoss,
    ContrastiveLoss,
    LiftedStructureLoss,
    NPairsLoss,
    TripletMarginLoss,
)
from dmlbook.synthesis import (
    SymmetricalSynthesis,
    mine_symmetric,
    official_npairs_logits,
    symmetric_batch,
    symmetric_point,
)


def _rows(n=7, d=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype)


# ---- symmetric_point ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio, norm_ratio", [(2.0, 1.0), (1.5, 1.0), (2.5, 0.5), (1.0, 1.5), (3.0, 2.0)])
def test_symmetric_point_matches_the_released_code(ratio, norm_ratio):
    p, axis = _rows(seed=1)
    expected = reference_point(p, axis, ratio, norm_ratio)
    assert torch.allclose(symmetric_point(p, axis, ratio, norm_ratio), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ratio, norm_ratio", [(2.0, 1.0), (1.5, 0.5), (2.5, 1.5)])
def test_symmetric_point_general_formula(ratio, norm_ratio):
    p, axis = _rows(seed=2)
    proj = (
        (p * axis).sum(1, keepdim=True) / (axis * axis).sum(1, keepdim=True)
    ) * axis  # (xᵀx_l/||x_l||²) x_l
    assert torch.allclose(
        symmetric_point(p, axis, ratio, norm_ratio), norm_ratio * (ratio * proj - p), atol=1e-12
    )


def test_defaults_keep_the_norm_and_the_similarity_to_the_axis():
    p, axis = _rows(n=50, d=16, seed=3)
    q = symmetric_point(p, axis)
    assert torch.allclose(q.norm(dim=1), p.norm(dim=1), rtol=1e-12)
    assert torch.allclose((q * axis).sum(1), (p * axis).sum(1), rtol=1e-10, atol=1e-12)
    assert torch.allclose(F.cosine_similarity(q, axis), F.cosine_similarity(p, axis), atol=1e-12)
    assert torch.allclose(symmetric_point(q, axis), p, atol=1e-12)  # a reflection is an involution


def test_other_settings_change_norm_and_direction_as_documented():
    p, axis = _rows(n=20, d=6, seed=4)
    assert torch.allclose(
        symmetric_point(p, axis, norm_ratio=0.5).norm(dim=1), 0.5 * p.norm(dim=1), rtol=1e-12
    )
    perpendicular = symmetric_point(
        p, axis, ratio=1.0
    )  # proj − p: minus the component orthogonal to the axis
    assert torch.allclose((perpendicular * axis).sum(1), torch.zeros(20, dtype=p.dtype), atol=1e-12)


def test_reflection_in_two_dimensions_and_axis_scale_invariance():
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    axis = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(
        symmetric_point(p, axis), torch.tensor([[0.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    )
    assert torch.allclose(symmetric_point(p, -3.0 * axis), symmetric_point(p, axis), atol=1e-15)


def test_symmetric_point_gradcheck():
    p, axis = _rows(n=4, d=3, seed=5)
    inputs = (p.requires_grad_(), axis.requires_grad_())
    assert torch.autograd.gradcheck(lambda p, a: symmetric_point(p, a, 1.7, 1.3), inputs)


@pytest.mark.parametrize(
    "p, axis, kw, error, match",
    [
        (torch.randn(4), torch.randn(4), {}, ValueError, "p must be 2-D"),
        (torch.randn(4, 3), torch.randn(4, 2), {}, ValueError, "p and axis must have the same shape"),
        (torch.randn(4, 3), torch.randn(3, 3), {}, ValueError, "p and axis must have the same shape"),
        (torch.randn(4, 3), torch.randn(4, 3, dtype=torch.float64), {}, TypeError, "same dtype"),
        (torch.randn(4, 3), torch.zeros(4, 3), {}, ValueError, "axis has 4 zero rows"),
        (torch.full((4, 3), float("nan")), torch.randn(4, 3), {}, ValueError, "p contains NaN"),
        (
            torch.randn(4, 3),
            torch.full((4, 3), float("inf")),
            {},
            ValueError,
            "axis contains NaN or infinite",
        ),
        ([[1.0, 2.0]], torch.randn(1, 2), {}, TypeError, "p must be a torch.Tensor"),
        (torch.randn(4, 3), torch.randint(0, 3, (4, 3)), {}, TypeError, "axis must be a floating-point"),
        (torch.randn(4, 3), torch.randn(4, 3), {"ratio": "2"}, TypeError, "ratio must be a number"),
        (torch.randn(4, 3), torch.randn(4, 3), {"ratio": float("nan")}, ValueError, "ratio must be finite"),
        (
            torch.randn(4, 3),
            torch.randn(4, 3),
            {"norm_ratio": 0.0},
            ValueError,
            "norm_ratio must be a finite",
        ),
    ],
)
def test_symmetric_point_bad_input(p, axis, kw, error, match):
    with pytest.raises(error, match=match):
        symmetric_point(p, axis, **kw)


# ---- pairing and mining ---------------------------------------------------------------------------------------


def test_symmetric_batch_pairs_each_class_in_batch_order():
    pairing = symmetric_batch(torch.tensor([7, 3, 3, 9, 7, 9]))
    assert pairing.classes.tolist() == [3, 7, 9]
    assert pairing.first.tolist() == [1, 0, 3] and pairing.second.tolist() == [2, 4, 5]
    assert pairing.partner.tolist() == [4, 2, 1, 5, 0, 3]
    assert pairing.candidates[1].tolist() == [0, 4, 6, 10]


@pytest.mark.parametrize("labels, count", [([0, 0, 1], 1), ([0, 0, 0, 1, 1, 2], 3), ([4, 5], 1)])
def test_batches_that_are_not_pairs_are_rejected(labels, count):
    with pytest.raises(ValueError, match=f"every class exactly twice.*has {count} samples"):
        symmetric_batch(torch.tensor(labels))


@pytest.mark.parametrize("hardness", ["similarity", "angular"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mining_matches_loop_reference(hardness, seed):
    x, y = pair_batch(5, 4, seed=seed)
    mined = mine_symmetric(x, y, hardness=hardness)
    pool, partner, members = symm_pool(x, y)
    expected = symm_mine(pool, y, partner, members, hardness)
    assert torch.allclose(mined.points, pool, atol=1e-12)
    assert mined.partner.tolist() == partner
    classes = mined.classes.tolist()
    for i in range(len(y)):
        for c_index, c in enumerate(classes):
            want = expected.get((i, c), -1)
            assert mined.hardest[i, c_index].item() == want, (i, c)
    assert torch.equal(mined.negative.sum(1), torch.full((len(y),), len(classes) - 1))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dim", [2, 3, 16])
def test_synthesis_never_makes_the_mined_negative_easier(seed, dim):
    """Property: the hardest of {x_k, x_l, x'_k, x'_l} is at least as hard as the hardest of {x_k, x_l}, for every
    anchor and class, for both notions of hardness; and in distance terms at least as close."""
    x, y = pair_batch(6, dim, seed=100 + seed)
    for hardness in ("similarity", "angular"):
        m = mine_symmetric(x, y, hardness=hardness)
        other = m.hardest >= 0
        assert torch.all(m.hardest_score[other] >= m.hardest_original_score[other])
        assert torch.all(m.hardest_original[other] < len(y))  # the originals-only choice is a real embedding
    m = mine_symmetric(x, y)
    u = F.normalize(m.points, dim=1)
    rows = torch.arange(len(y)).unsqueeze(1).expand_as(m.hardest)
    d_sym = (u[rows] - u[m.hardest.clamp(min=0)]).norm(dim=2)  # (B, C)
    d_plain = (u[rows] - u[m.hardest_original.clamp(min=0)]).norm(dim=2)
    assert torch.all(d_sym[other] <= d_plain[other] + 1e-12)


def test_a_mirror_image_is_chosen_when_it_is_closer():
    """2-D geometry: the mirror image of (0, 1) about (0.6, 0.8) is (0.96, 0.28), next to the anchor (1, 0)."""
    x = torch.tensor([[1.0, 0.0], [0.9, -0.3], [0.0, 1.0], [0.6, 0.8]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    m = mine_symmetric(x, y)
    assert torch.allclose(m.points[6], torch.tensor([0.96, 0.28], dtype=torch.float64))
    assert m.hardest[0].tolist() == [-1, 6] and m.hardest_original[0].tolist() == [-1, 3]
    assert bool(m.synthetic_chosen[0, 1]) and m.is_synthetic.tolist() == [False] * 4 + [True] * 4
    assert 0.0 < m.synthetic_fraction <= 1.0
    assert math.isclose(m.hardest_score[0, 1].item(), 0.96, rel_tol=1e-12)


def test_ties_go_to_the_original():
    # x_l parallel to x_k: the mirror image of x_k is x_k itself
    x = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    m = mine_symmetric(x, torch.tensor([0, 0, 1, 1]))
    assert m.hardest[:2, 1].tolist() == [2, 2]


def test_mining_bad_input():
    x, y = pair_batch(3, 4)
    with pytest.raises(ValueError, match="hardness must be one of 'similarity', 'angular'"):
        mine_symmetric(x, y, hardness="distance")
    x[2] = 0.0
    with pytest.raises(ValueError, match="embeddings has 1 zero rows"):
        mine_symmetric(x, y)


# ---- the plug-in ----------------------------------------------------------------------------------------------

CASES = {
    "triplet_all": (lambda: TripletMarginLoss(margin=0.3), lambda x, y: ref.symm_triplet(x, y, 0.3, "all")),
    "triplet_batch_hard": (
        lambda: TripletMarginLoss(margin=0.3, mining="batch_hard"),
        lambda x, y: ref.symm_triplet(x, y, 0.3, "batch_hard"),
    ),
    "triplet_semi_hard": (
        lambda: TripletMarginLoss(margin=0.5, mining="semi_hard"),
        lambda x, y: ref.symm_triplet(x, y, 0.5, "semi_hard"),
    ),
    "lifted": (lambda: LiftedStructureLoss(), ref.symm_lifted),
    "lifted_margins": (
        lambda: LiftedStructureLoss(neg_margin=0.5, pos_margin=0.2),
        lambda x, y: ref.symm_lifted(x, y, 0.5, 0.2),
    ),
    "npairs": (lambda: NPairsLoss(), ref.symm_npairs),
    "angular": (lambda: AngularLoss(), ref.symm_angular),
    "angular_35": (lambda: AngularLoss(alpha=35.0), lambda x, y: ref.symm_angular(x, y, 35.0)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_plug_in_matches_loop_reference(name, seed):
    make, reference = CASES[name]
    x, y = pair_batch(5, 4, seed=10 + seed)
    loss = SymmetricalSynthesis(make())
    assert_close_value_grad(lambda x, y: loss(x, y), reference, x, y)


@pytest.mark.parametrize("name", ["triplet_all", "lifted", "npairs", "angular"])
def test_plug_in_with_other_ratio_matches_loop_reference(name):
    make, _ = CASES[name]
    reference = {
        "triplet_all": lambda x, y: ref.symm_triplet(x, y, 0.3, "all", ratio=1.5, norm_ratio=0.7),
        "lifted": lambda x, y: ref.symm_lifted(x, y, ratio=1.5, norm_ratio=0.7),
        "npairs": lambda x, y: ref.symm_npairs(x, y, ratio=1.5, norm_ratio=0.7),
        "angular": lambda x, y: ref.symm_angular(x, y, ratio=1.5, norm_ratio=0.7),
    }[name]
    x, y = pair_batch(4, 3, seed=12)
    loss = SymmetricalSynthesis(make(), ratio=1.5, norm_ratio=0.7)
    assert_close_value_grad(lambda x, y: loss(x, y), reference, x, y)


@pytest.mark.parametrize("ratio", [2.0, 1.5])
def test_official_npairs_matches_loop_reference(ratio):
    x, y = pair_batch(5, 4, seed=13)
    loss = SymmetricalSynthesis(NPairsLoss(), variant="official", ratio=ratio)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: ref.symm_npairs_official(x, y, ratio), x, y)


def test_official_logits_are_the_maximum_of_six_matrices():
    a, p = _rows(n=4, d=3, seed=14)
    logits = official_npairs_logits(a, p)
    s1, s2 = symmetric_point(p, a), symmetric_point(a, p)
    pts = [F.normalize(t, dim=1) for t in (a, p, s1, s2)]
    for i, j in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]:
        assert torch.all(logits >= pts[i] @ pts[j].T - 1e-12)
    assert torch.all(logits.diagonal() >= (pts[0] * pts[1]).sum(1) - 1e-12)
    with pytest.raises(ValueError, match="anchor and positive must have the same shape"):
        official_npairs_logits(a, p[:3])


@pytest.mark.parametrize(
    "make",
    [
        lambda: SymmetricalSynthesis(TripletMarginLoss(margin=0.5, mining="batch_hard")),
        lambda: SymmetricalSynthesis(LiftedStructureLoss()),
        lambda: SymmetricalSynthesis(NPairsLoss()),
        lambda: SymmetricalSynthesis(NPairsLoss(), variant="official"),
        lambda: SymmetricalSynthesis(AngularLoss()),
    ],
    ids=["triplet_batch_hard", "lifted", "npairs", "npairs_official", "angular"],
)
def test_plug_in_gradcheck(make):
    x, y = pair_batch(3, 3, seed=15)
    loss = make()
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (x.requires_grad_(),))


def _mined_indices(loss, x, y):
    m = loss.mine(x, y)
    anchor, negative = m.negative.nonzero(as_tuple=True)
    return m, anchor, m.partner[anchor], negative


def test_triplet_plug_in_equals_pml_on_the_pool_with_the_mined_triplets(dtype):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    x, y = pair_batch(16, 8, dtype=dtype, seed=16)
    ours = SymmetricalSynthesis(TripletMarginLoss(margin=0.2))
    m, a, p, n = _mined_indices(ours, x, y)
    expected = pml.TripletMarginLoss(margin=0.2)(m.points, m.labels, (a, p, n))
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert math.isclose(ours(x, y).item(), expected.item(), rel_tol=tol)


def test_lifted_plug_in_equals_pml_on_the_pool_with_the_mined_pairs(dtype):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    x, y = pair_batch(16, 8, dtype=dtype, seed=17)
    ours = SymmetricalSynthesis(LiftedStructureLoss())
    m, a2, _, n = _mined_indices(ours, x, y)
    a1 = torch.arange(len(y))
    expected = pml.LiftedStructureLoss()(m.points, m.labels, (a1, m.partner, a2, n))
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert math.isclose(ours(x, y).item(), expected.item(), rel_tol=tol)


@pytest.mark.parametrize("seed", range(6))
def test_synthesis_makes_every_batch_hard_triplet_at_least_as_hard(seed):
    """With a margin of 4 every hinge is active, so the loss is the mean per-anchor hinge: synthesis can only raise
    it (the hardest of a superset of candidates)."""
    x, y = pair_batch(6, 3, seed=200 + seed)
    plain = TripletMarginLoss(margin=4.0, mining="batch_hard")
    assert SymmetricalSynthesis(plain)(x, y).item() >= plain(x, y).item() - 1e-12


def test_details_on_the_pool_grid_use_exactly_the_mined_negatives():
    x, y = pair_batch(5, 4, seed=18)
    loss = SymmetricalSynthesis(TripletMarginLoss(margin=4.0))  # every triplet active
    info, mined = loss.details(x, y), loss.mine(x, y)
    b = len(y)
    assert info.matrix.shape == (2 * b, 2 * b) and info.matrix_kind == "distance"
    assert torch.equal(info.weights.negative[:b] > 0, mined.negative)
    assert torch.all(info.weights.negative[b:] == 0) and torch.all(info.weights.positive[b:] == 0)
    assert torch.all(info.weights.positive[torch.arange(b), mined.partner] == len(mined.classes) - 1)
    assert math.isclose(info.loss.item(), loss(x, y).item(), rel_tol=1e-12)


def test_official_details_are_on_the_class_grid():
    x, y = pair_batch(5, 4, seed=19)
    loss = SymmetricalSynthesis(NPairsLoss(), variant="official")
    info = loss.details(x, y)
    assert info.matrix.shape == (5, 5)
    assert torch.allclose(info.pair_gradient, (info.weights.positive + info.weights.negative) / 5, atol=1e-12)
    assert math.isclose(info.loss.item(), loss(x, y).item(), rel_tol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_single_class_gives_a_finite_zero(name):
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    out = SymmetricalSynthesis(CASES[name][0]())(x, torch.tensor([4, 4]))
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(x.grad).all()


def test_float32_agrees_with_float64(device):
    x, y = pair_batch(16, 8, seed=20)
    for make, _ in CASES.values():
        loss = SymmetricalSynthesis(make())
        v64 = loss(x.to(device), y.to(device)).item()
        v32 = loss(x.to(device, torch.float32), y.to(device)).item()
        assert math.isclose(v32, v64, rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: SymmetricalSynthesis(ContrastiveLoss()), TypeError, "loss must be one of TripletMarginLoss"),
        (lambda: SymmetricalSynthesis("triplet"), TypeError, "got str"),
        (
            lambda: SymmetricalSynthesis(TripletMarginLoss(), variant="official"),
            ValueError,
            "variant='official'.*NPairsLoss only; got TripletMarginLoss",
        ),
        (lambda: SymmetricalSynthesis(NPairsLoss(), variant="tf"), ValueError, "variant must be one of"),
        (lambda: SymmetricalSynthesis(NPairsLoss(), ratio=None), TypeError, "ratio must be a number"),
        (
            lambda: SymmetricalSynthesis(NPairsLoss(), norm_ratio=-1.0),
            ValueError,
            "norm_ratio must be a finite",
        ),
    ],
)
def test_plug_in_bad_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "x, y, error, match",
    [
        (torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 3]), ValueError, "every class exactly twice"),
        (torch.randn(6, 3), torch.tensor([0, 0, 0, 1, 1, 1]), ValueError, "class 0 has 3 samples"),
        (torch.zeros(4, 3), torch.tensor([0, 0, 1, 1]), ValueError, "embeddings has 4 zero rows"),
        (torch.full((4, 3), float("nan")), torch.tensor([0, 0, 1, 1]), ValueError, "embeddings contains NaN"),
        (torch.randn(4), torch.tensor([0, 0, 1, 1]), ValueError, "embeddings must be 2-D"),
        (torch.randn(4, 3), torch.tensor([0, 0, 1]), ValueError, "labels has 3 entries"),
        (torch.randn(4, 3), torch.tensor([0.0, 0, 1, 1]), TypeError, "labels must have an integer dtype"),
    ],
)
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_plug_in_bad_input(x, y, error, match, variant):
    loss = SymmetricalSynthesis(NPairsLoss(), variant=variant)
    for call in (loss, loss.mine, loss.details):
        with pytest.raises(error, match=match):
            call(x, y)
