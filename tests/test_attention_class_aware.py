import pytest
import torch
import torch.nn.functional as F

from dmlbook.attention import ClassAwareAttention, class_aware_attention, pair_attention


def test_kinds():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [3.0, -1.0]])
    y = torch.tensor([0, 0, 0])
    p = F.softmax(logits, 1)[:, 0]
    assert torch.allclose(class_aware_attention(logits, y, "prob"), p)
    assert torch.allclose(
        class_aware_attention(logits, y, "gaussian"), torch.exp(-((1 - p) ** 2) / (2 * 0.68**2))
    )
    assert torch.equal(class_aware_attention(logits, y, "none"), torch.ones(3))
    assert torch.equal(pair_attention(torch.tensor([0.2, 0.9])), torch.tensor([[0.2, 0.2], [0.2, 0.9]]))


def test_errors():
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="attention must be one of 'prob', 'gaussian', 'none'"):
        class_aware_attention(torch.zeros(2, 2), y, "softmax")
    with pytest.raises(ValueError, match="needs class logits"):
        class_aware_attention(None, y, "prob")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        class_aware_attention(torch.zeros(2, 2), torch.tensor([0, 2]))


@pytest.mark.parametrize(
    "args,err,match",
    [
        ((4.0, 3), TypeError, "embedding_dim must be an int"),
        ((0, 3), ValueError, "embedding_dim must be >= 1"),
        ((4, True), TypeError, "num_classes must be an int"),
        ((4, 1), ValueError, "num_classes must be >= 2"),
    ],
)
def test_module_arguments(args, err, match):
    """Wrong type: TypeError; wrong value: ValueError (dmlbook._checks)."""
    with pytest.raises(err, match=match):
        ClassAwareAttention(*args)


def test_module_learns_to_attend_less_to_a_mislabelled_sample():
    torch.manual_seed(0)
    centres = torch.eye(3) * 4
    y = torch.arange(3).repeat_interleave(10)
    x = centres[y] + 0.3 * torch.randn(30, 3)
    y_noisy = y.clone()
    y_noisy[0] = 1  # a sample of class 0 labelled as class 1
    module = ClassAwareAttention(3, 3)
    opt = torch.optim.Adam(module.parameters(), lr=0.1)
    for _ in range(100):
        attention, logits = module(x, y_noisy)
        opt.zero_grad()
        F.cross_entropy(logits, y_noisy).backward()
        opt.step()
    attention, _ = module(x, y_noisy)
    assert attention.argmin() == 0
    assert torch.equal(module.last_attention, attention.detach())
