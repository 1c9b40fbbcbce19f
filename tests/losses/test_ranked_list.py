import pytest
import torch
from dml_reference import assert_close_value_grad, assert_pml_parity, batch
from dml_reference import ranked_list as reference

from dmlbook.losses import RankedListLoss

SETTINGS = [
    {},
    {"margin": 0.6, "Tn": 5.0, "Tp": 2.0, "imbalance": 0.3},
    {"margin": 0.2, "alpha": 1.3, "Tn": 0.0},
    {"margin": 0.5, "alpha": 0.3, "Tp": -1.0},
]  # the last: positive boundary α − m < 0, every positive mined


@pytest.mark.parametrize("kw", SETTINGS)
def test_matches_loop_reference(kw):
    x, y = batch(3, 4, 5, seed=11)
    loss = RankedListLoss(**kw)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: reference(x, y, **kw), x, y)


def test_gradcheck():
    x, y = batch(3, 3, 4, seed=12)
    loss = RankedListLoss(margin=0.6, Tn=3.0, Tp=1.0)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (x.requires_grad_(),))


@pytest.mark.filterwarnings("ignore:Values of Tp or Tn")
def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    assert_pml_parity(RankedListLoss(), pml.RankedListLoss(margin=0.4, Tn=10), dtype=dtype, device=device)


def test_boundaries_select_non_trivial_pairs():
    x, y = batch(4, 4, 6, seed=13)
    loss = RankedListLoss(margin=0.4)  # α = 1.2, positive boundary 0.8
    info = loss.details(x, y)
    d = info.matrix
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    assert torch.equal(info.weights.positive > 0, same & (d > 0.8))
    assert torch.equal(info.weights.negative > 0, (y[:, None] != y[None, :]) & (d < 1.2))


# ---- the released code's variant (algorithms.md §6.2) ---------------------------------------------------------

from dml_reference import ranked_list_official as official_reference
from dml_reference import ranked_list_official_surrogate

OFFICIAL_SETTINGS = [
    {},
    {"margin": 0.6, "Tn": 5.0, "Tp": 2.0, "imbalance": 0.3},
    {"margin": 0.2, "alpha": 1.3, "Tn": 0.0},
]


@pytest.mark.parametrize("kw", OFFICIAL_SETTINGS)
def test_official_matches_loop_reference(kw):
    x, y = batch(3, 4, 5, seed=41)
    loss = RankedListLoss(variant="official", **kw)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: official_reference(x, y, **kw), x, y)


@pytest.mark.parametrize("kw", [{}, {"margin": 0.6, "Tn": 5.0, "Tp": 2.0}, {"margin": 0.2, "alpha": 1.3}])
def test_official_gradient_is_the_code_surrogate(kw):
    """§6.2: L_code = Σ_i (S_i/S) Σ_j sg(c_ij) s_ij ||f_i − sg(f_j)|| has the same gradient (λ = ½)."""
    x, y = batch(4, 3, 6, seed=42)
    x = x.requires_grad_(True)
    (ours,) = torch.autograd.grad(RankedListLoss(variant="official", **kw)(x, y), x)
    (code,) = torch.autograd.grad(ranked_list_official_surrogate(x, y, **kw), x)
    assert torch.allclose(ours, code, rtol=1e-9, atol=1e-13)


def test_official_gradient_is_not_the_derivative_of_its_value():
    """No gradcheck for this variant: with constant weights and a constant reference side, the code's update is not
    the derivative of any value; finite differences of the value see the weights and the other end move."""
    x, y = batch(3, 3, 4, seed=43)
    loss = RankedListLoss(margin=0.6, Tn=3.0, Tp=1.0, variant="official")
    assert not torch.autograd.gradcheck(lambda x: loss(x, y), (x.requires_grad_(),), raise_exception=False)


def test_official_weights_are_constants_and_only_the_query_end_moves():
    """Non-trivial pairs (0, 1) and (2, 3) only: each end gets the gradient of its own ranked list only, with
    constant weights — the hinge's unit vector times (S_i/S)·λ·w/Σw."""
    x = torch.tensor(
        [[1.0, 0.0], [0.8, 0.6], [-1.0, 0.0], [-0.8, -0.6]], dtype=torch.float64, requires_grad=True
    )
    y = torch.tensor([0, 1, 2, 3])  # only (0, 1) and (2, 3) are closer than α = 1.2; they are negatives
    out = RankedListLoss(variant="official")(x, y)
    (grad,) = torch.autograd.grad(out, x)
    u = x.detach()
    d = (u[0] - u[1]).norm()

    def radial(g, v):  # the gradient through the L2 normalisation
        return g - (g @ v) * v

    # ∂L/∂d_01 for query 0: −(S_0/S)·λ·w/Σw = −¼·½·1 (four equal queries, one negative each)
    assert torch.allclose(grad[0], radial(-0.125 * (u[0] - u[1]) / d, u[0]), atol=1e-12)
    assert torch.allclose(grad[1], radial(-0.125 * (u[1] - u[0]) / d, u[1]), atol=1e-12)
    (paper,) = torch.autograd.grad(RankedListLoss()(x, y), x)  # both ends of each pair: twice the push
    assert not torch.allclose(paper, grad)


def test_official_details_report_the_constant_coefficients():
    x, y = batch(3, 4, 5, seed=44)
    paper, official = RankedListLoss().details(x, y), RankedListLoss(variant="official").details(x, y)
    assert torch.equal(paper.weights.positive, official.weights.positive)
    assert torch.equal(paper.weights.negative, official.weights.negative)
    assert paper.weights.num_trivial == official.weights.num_trivial
    w = official.weights
    share = (w.positive.sum(1) + w.negative.sum(1)) / (w.positive.sum() + w.negative.sum())  # S_i / S
    expected = (
        share[:, None]
        * 0.5
        * (
            w.positive / w.positive.sum(1, keepdim=True).clamp(min=1e-300)
            + w.negative / w.negative.sum(1, keepdim=True).clamp(min=1e-300)
        )
    )
    assert torch.allclose(official.pair_gradient, expected, atol=1e-12)
    assert torch.allclose(official.loss, RankedListLoss(variant="official")(x, y), rtol=1e-12)


def test_official_without_non_trivial_pairs_is_a_connected_zero():
    x = torch.tensor(
        [[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]], dtype=torch.float64, requires_grad=True
    )
    y = torch.tensor([0, 0, 1, 1])  # positives inside α − m, negatives beyond α
    out = RankedListLoss(variant="official")(x, y)
    out.backward()
    assert out.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_default_variant_is_paper_and_bad_variant_is_rejected():
    assert RankedListLoss().variant == "paper"
    with pytest.raises(ValueError, match="variant must be one of 'paper', 'official'"):
        RankedListLoss(variant="caffe")


# ---- the closed-form gradient of the paper variant ---------------------------------------------------------------


@pytest.mark.parametrize("kw", SETTINGS)
def test_closed_form_forward_matches_compute_on_the_pair_grid(kw):
    """forward() uses the closed-form gradient on its own distance matrix; compute() with details is the path
    details() takes: same value, and its |∂L/∂d| is what forward's backward applies."""
    x, y = batch(4, 3, 6, seed=21)
    loss = RankedListLoss(**kw)
    info = loss.details(x, y)
    assert torch.allclose(info.loss, loss(x, y).detach(), rtol=1e-12)
    d = info.matrix.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss.compute(loss._pairs(x, y, d), details=False).loss, d)
    assert torch.allclose(grad.abs(), info.pair_gradient, rtol=1e-12)


def test_coincident_negatives_are_left_out():
    x = torch.tensor(
        [[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.6, 0.8]], dtype=torch.float64, requires_grad=True
    )
    y = torch.tensor([0, 1, 0, 1])  # samples 0 and 1 coincide but differ in label
    info = RankedListLoss().details(x, y)
    assert info.weights.negative[0, 1] == 0 and info.weights.negative[0, 3] > 0
    out = RankedListLoss()(x, y)
    out.backward()
    assert torch.isfinite(x.grad).all()


def test_keyword_only():
    with pytest.raises(TypeError):
        RankedListLoss(0.4, 10.0)
