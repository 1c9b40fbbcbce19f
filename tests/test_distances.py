import pytest
import torch

from dmlbook.distances import cosine_similarity_matrix, label_masks, pairwise_distances


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


@pytest.mark.parametrize("fn", [pairwise_distances, cosine_similarity_matrix, lambda x: pairwise_distances(x, squared=True)])
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
