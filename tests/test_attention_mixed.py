"""MixedAttention (CBAM-style channel then spatial attention) and record_attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmlbook.attention import MixedAttention, record_attention
from dmlbook.attention.mixed import channel_descriptors, spatial_descriptors

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_cbam(block: MixedAttention, x: torch.Tensor) -> torch.Tensor:
    """The equations of the module docstring, written out with different torch primitives."""
    if block.channel_mlp is not None:
        lin1, lin2 = block.channel_mlp[0], block.channel_mlp[2]

        def mlp(v: torch.Tensor) -> torch.Tensor:
            return F.linear(F.relu(F.linear(v, lin1.weight, lin1.bias)), lin2.weight, lin2.bias)

        avg = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, C)
        mx = F.adaptive_max_pool2d(x, 1).flatten(1)  # (B, C)
        x = torch.sigmoid(mlp(avg) + mlp(mx)).view(x.shape[0], -1, 1, 1) * x
    if block.spatial_conv is not None:
        pooled = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True).values], 1)  # (B, 2, H, W)
        conv = block.spatial_conv
        x = torch.sigmoid(F.conv2d(pooled, conv.weight, conv.bias, padding=conv.padding)) * x
    return x


@pytest.mark.parametrize("channel,spatial", [(True, True), (True, False), (False, True)])
def test_shapes_ranges_and_reference(device: torch.device, channel: bool, spatial: bool) -> None:
    torch.manual_seed(0)
    block = MixedAttention(16, reduction=4, channel=channel, spatial=spatial).to(device)
    assert block.channel_weights is None and block.spatial_map is None
    x = torch.randn(3, 16, 9, 7, device=device)
    out = block(x)
    assert out.shape == x.shape and out.device == x.device
    torch.testing.assert_close(out, reference_cbam(block, x))
    if channel:
        w = block.channel_weights
        assert w.shape == (3, 16) and not w.requires_grad
        assert bool(((w > 0) & (w < 1)).all())
    else:
        assert block.channel_weights is None and block.channel_gate is None
    if spatial:
        m = block.spatial_map
        assert m.shape == (3, 1, 9, 7) and not m.requires_grad
        assert bool(((m > 0) & (m < 1)).all())
    else:
        assert block.spatial_map is None and block.spatial_gate is None


def test_descriptors() -> None:
    x = torch.arange(24.0).view(1, 2, 3, 4)
    torch.testing.assert_close(channel_descriptors(x), torch.tensor([[[5.5, 17.5]], [[11.0, 23.0]]]))
    sd = spatial_descriptors(x)  # (1, 2, 3, 4)
    torch.testing.assert_close(sd[0, 0], x[0].mean(0))
    torch.testing.assert_close(sd[0, 1], x[0, 1])


def test_zero_conv_gives_half_map_exactly() -> None:
    block = MixedAttention(4, kernel_size=3, channel=False)
    with torch.no_grad():
        block.spatial_conv.weight.zero_()
        block.spatial_conv.bias.zero_()
    x = torch.randn(2, 4, 5, 5)
    out = block(x)
    assert torch.equal(block.spatial_map, torch.full((2, 1, 5, 5), 0.5))  # sigmoid(0) = 1/2
    assert torch.equal(out, 0.5 * x)


def test_channel_weights_hand_checked() -> None:
    # last MLP layer zeroed with bias b: MLP(avg) + MLP(max) = 2b for every sample, so M_c = sigmoid(2b)
    block = MixedAttention(3, reduction=1, spatial=False)
    bias = torch.tensor([-1.0, 0.0, 2.0])
    with torch.no_grad():
        block.channel_mlp[2].weight.zero_()
        block.channel_mlp[2].bias.copy_(bias)
    x = torch.randn(4, 3, 2, 2)
    out = block(x)
    torch.testing.assert_close(block.channel_weights, torch.sigmoid(2 * bias).expand(4, 3))
    torch.testing.assert_close(out, x * torch.sigmoid(2 * bias)[None, :, None, None])


def test_constant_input_gives_constant_map_in_the_interior() -> None:
    # a constant feature map has equal channel descriptors everywhere, so away from the zero padding the
    # spatial map is constant
    block = MixedAttention(8, reduction=2, kernel_size=3)
    block(torch.full((1, 8, 6, 6), 0.7))
    interior = block.spatial_map[0, 0, 1:-1, 1:-1]
    torch.testing.assert_close(interior, interior[0, 0].expand_as(interior))


def test_gradients_flow_and_gradcheck() -> None:
    torch.manual_seed(1)
    block = MixedAttention(3, reduction=1, kernel_size=3).double()
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-5)
    block(x).square().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_hooks_see_maps_with_graph() -> None:
    block = MixedAttention(6, reduction=2)
    seen = {}
    block.channel_gate.register_forward_hook(lambda m, i, o: seen.setdefault("channel", o))
    block.spatial_gate.register_forward_hook(lambda m, i, o: seen.setdefault("spatial", o))
    block(torch.randn(2, 6, 4, 4))
    assert seen["channel"].shape == (2, 6) and seen["spatial"].shape == (2, 1, 4, 4)
    assert seen["spatial"].requires_grad
    torch.testing.assert_close(seen["spatial"].detach(), block.spatial_map)


def _net() -> nn.Sequential:
    return nn.Sequential(
        MixedAttention(4, reduction=2),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),
        MixedAttention(8, reduction=2),
    )


def test_record_attention_collects_in_order_and_removes_hooks() -> None:
    net = _net()
    x = torch.randn(2, 4, 8, 8)
    with record_attention(net) as maps:
        net(x)
    assert [tuple(m.shape) for m in maps] == [(2, 1, 8, 8), (2, 1, 4, 4)]
    torch.testing.assert_close(maps[1], net[2].spatial_map)
    assert all(not m.requires_grad for m in maps)
    assert all(not b.spatial_gate._forward_hooks for b in (net[0], net[2]))
    net(x)
    assert len(maps) == 2  # nothing recorded after exit

    with record_attention(net, kind="channel", detach=False) as weights:
        net(x)
        net(x)
    assert [tuple(w.shape) for w in weights] == [(2, 4), (2, 8)] * 2
    assert weights[0].requires_grad


def test_record_attention_removes_hooks_on_error() -> None:
    net = _net()
    with pytest.raises(RuntimeError, match="boom"), record_attention(net):
        raise RuntimeError("boom")
    assert not net[0].spatial_gate._forward_hooks


def test_record_attention_errors() -> None:
    with pytest.raises(ValueError, match="no MixedAttention"), record_attention(nn.Linear(2, 2)):
        pass
    with (
        pytest.raises(ValueError, match="channel gate"),
        record_attention(MixedAttention(4, channel=False), kind="channel"),
    ):
        pass
    with pytest.raises(ValueError, match="kind"), record_attention(_net(), kind="both"):
        pass
    with pytest.raises(TypeError, match="model"), record_attention("net"):
        pass


def test_input_validation() -> None:
    block = MixedAttention(4)
    with pytest.raises(ValueError, match=r"shape \(batch, 4, height, width\)"):
        block(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="channels=4"):
        block(torch.randn(2, 3, 5, 5))
    with pytest.raises(TypeError, match="floating-point"):
        block(torch.ones(2, 4, 5, 5, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        block([[1.0]])


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"channels": 0}, ValueError, "channels"),
        ({"channels": 4.0}, TypeError, "channels"),
        ({"channels": 4, "reduction": True}, TypeError, "reduction"),
        ({"channels": 4, "kernel_size": 6}, ValueError, "odd"),
        ({"channels": 4, "channel": False, "spatial": False}, ValueError, "at least one"),
        ({"channels": 4, "spatial": 1}, TypeError, "spatial"),
    ],
)
def test_constructor_validation(kwargs: dict, err: type, match: str) -> None:
    channels = kwargs.pop("channels")
    with pytest.raises(err, match=match):
        MixedAttention(channels, **kwargs)


def test_reduction_keeps_at_least_one_hidden_unit() -> None:
    block = MixedAttention(4, reduction=16)
    assert block.channel_mlp[0].out_features == 1
    assert block(torch.randn(1, 4, 3, 3)).shape == (1, 4, 3, 3)
