import pytest
import torch
import torch.nn.functional as F

from dmlbook.distances import (
    as_float,
    cosine_similarity_matrix,
    label_masks,
    normalized_pairwise_distances,
    pairwise_distances,
    same_label,
)


def _loop_distances(x):
    u = x / x.norm(dim=1, keepdim=True)
    return torch.stack([torch.stack([(u[i] - u[j]).norm() for j in range(len(u))]) for i in range(len(u))])


def test_distances_match_definition(device, dtype):
    x = torch.randn(9, 5, dtype=dtype, device=device)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(pairwise_distances(x), _loop_distances(x), atol=tol)
    assert torch.allclose(pairwise_distances(x, squared=True), _loop_distances(x) ** 2, atol=tol)
    u = x / x.norm(dim=1, keepdim=True)
    assert torch.allclose(cosine_similarity_matrix(x), u @ u.T, atol=tol)
    assert torch.allclose(pairwise_distances(x, normalize=False), torch.cdist(x, x), atol=10 * tol)


@pytest.mark.parametrize(
    "fn", [pairwise_distances, cosine_similarity_matrix, lambda x: pairwise_distances(x, squared=True)]
)
def test_gradcheck(fn):
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    off_diagonal = 1 - torch.eye(6, dtype=torch.float64)  # d is not differentiable at d = 0
    assert torch.autograd.gradcheck(lambda x: fn(x) * off_diagonal, (x,))


def test_coincident_points_get_a_zero_not_a_nan_gradient():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    pairwise_distances(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_label_masks():
    pos, neg = label_masks(torch.tensor([0, 0, 1, 2, 1]))
    assert pos.tolist() == [
        [False, True, False, False, False],
        [True, False, False, False, False],
        [False, False, False, False, True],
        [False, False, False, False, False],
        [False, False, True, False, False],
    ]
    assert torch.equal(neg, ~(pos | torch.eye(5, dtype=torch.bool)))


def _symmetric_upstream(n, dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    w = torch.randn(n, n, generator=g, dtype=dtype)
    return w + w.T  # (n, n) a symmetric ∂L/∂m


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("kind", ["distance", "squared", "similarity"])
def test_symmetric_fast_path_matches_general_backward(kind, normalize):
    # (coincident points are left out: there d is rounding noise, symmetric only to rounding, and 1/d is huge)
    x = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    w = _symmetric_upstream(7)

    def grad(symmetric):
        xx = x.clone().requires_grad_(True)
        if kind == "similarity":
            m = cosine_similarity_matrix(xx, normalize=normalize, symmetric_grad=symmetric)
        else:
            m = pairwise_distances(
                xx, normalize=normalize, squared=kind == "squared", symmetric_grad=symmetric
            )
        (m * w).sum().backward()
        return xx.grad

    general, fast = grad(False), grad(True)
    assert torch.allclose(fast, general, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("symmetric", [True, False])
def test_coincident_points_finite_on_both_paths(symmetric):
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], requires_grad=True)
    pairwise_distances(x, symmetric_grad=symmetric).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("normalize", [True, False])
def test_general_backward_matches_autograd(normalize):
    x = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 8, dtype=torch.float64) * (1 - torch.eye(8, dtype=torch.float64))  # not symmetric
    (g1,) = torch.autograd.grad((pairwise_distances(x, normalize=normalize) * w).sum(), x)
    u = F.normalize(x, dim=1) if normalize else x
    d = ((u.unsqueeze(1) - u.unsqueeze(0)) ** 2).sum(-1).clamp(min=1e-30).sqrt()  # (B, B) autograd throughout
    (g2,) = torch.autograd.grad((d * w).sum(), x)
    assert torch.allclose(g1, g2, rtol=1e-10, atol=1e-12)


def test_normalized_distances_share_one_backward():
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64)
    off_diagonal = 1 - torch.eye(6, dtype=torch.float64)

    def both(x):
        u, d = normalized_pairwise_distances(x)
        return (d * off_diagonal).sum() + (u @ w).square().sum()

    assert torch.autograd.gradcheck(both, (x,))
    assert torch.autograd.gradcheck(lambda x: normalized_pairwise_distances(x)[0] @ w, (x,))
    u, d = normalized_pairwise_distances(x)
    assert torch.equal(u, F.normalize(x, dim=1)) and torch.allclose(d, pairwise_distances(x))


def test_zero_row_gradient_matches_f_normalize():
    # a zero row sits on the eps floor of the normalisation: the gradient is g / eps there, as with F.normalize
    x = torch.randn(5, 3, dtype=torch.float64)
    x[1] = 0.0
    w = torch.randn(5, 5, dtype=torch.float64)
    xx = x.clone().requires_grad_(True)
    (g1,) = torch.autograd.grad((cosine_similarity_matrix(xx) * w).sum(), xx)
    u = F.normalize(xx, dim=1)
    (g2,) = torch.autograd.grad(((u @ u.T) * w).sum(), xx)
    assert torch.allclose(g1, g2, rtol=1e-12)


def test_label_masks_any_labels():
    y = torch.tensor([5, -3, 2**40, 5, 2**40 + 1, -3, 7])
    pos, neg = label_masks(y)
    same = y[:, None] == y[None, :]
    assert pos.dtype == neg.dtype == torch.bool
    assert torch.equal(pos, same & ~torch.eye(7, dtype=torch.bool)) and torch.equal(neg, ~same)
    for dtype in (torch.float32, torch.float64):
        s = same_label(y, dtype)
        assert s.dtype == dtype and torch.equal(s, same.to(dtype))
        assert torch.equal(as_float(pos, dtype), pos.to(dtype))


@pytest.mark.parametrize("shape", [(301, 260), (256, 300)])
def test_large_batches_use_the_mirrored_product(shape):
    # from B, D >= 256 the Gram matrix is computed as a row panel and a block and mirrored: same numbers
    x = torch.randn(*shape, dtype=torch.float64)
    u = F.normalize(x, dim=1)
    g = cosine_similarity_matrix(x)
    assert torch.allclose(g, u @ u.T, rtol=0, atol=1e-13)
    d = pairwise_distances(x)
    assert torch.allclose(d, torch.cdist(u, u), atol=1e-7)  # cdist's own rounding near d = 0
    assert torch.allclose(
        pairwise_distances(x, squared=True), ((u[:, None] - u[None]) ** 2).sum(-1), atol=1e-13
    )
    w = torch.randn(shape[0], shape[0], dtype=torch.float64)
    xx = x.clone().requires_grad_(True)
    (g1,) = torch.autograd.grad((pairwise_distances(xx) * w).sum(), xx)
    uu = F.normalize(xx, dim=1)
    (g2,) = torch.autograd.grad(
        (((uu[:, None] - uu[None]) ** 2).sum(-1).clamp(min=1e-30).sqrt() * w).sum(), xx
    )
    assert torch.allclose(g1, g2, rtol=1e-9, atol=1e-12)
