"""Per-image spatial attention maps and the in-mask measures (mass share, pointing game)."""

import pytest
import torch
import torch.nn.functional as F

from dmlbook.attention import (
    MixedAttention,
    centre_maps,
    mask_fraction,
    mass_in_mask,
    pointing_hits,
    record_attention,
    spatial_attention_maps,
    uniform_maps,
)
from dmlbook.attention.maps import normalize_maps
from dmlbook.models import SmallCNN


@pytest.fixture
def net():
    torch.manual_seed(0)
    return SmallCNN(3, 8, width=4, attention=True, image_size=32, num_stages=3)


def test_maps_shape_sum_and_block_selection(net, one_thread):
    x = torch.rand(5, 3, 32, 32)
    net.train()
    maps = spatial_attention_maps(net, x)  # default: mean of the blocks, input size, sums to 1
    assert maps.shape == (5, 32, 32) and maps.dtype == torch.float32
    torch.testing.assert_close(maps.sum(dim=(1, 2)), torch.ones(5))
    assert net.training  # mode restored
    # block k = the k-th recorded gate, resized bilinearly to the image and normalised to sum 1
    net.eval()
    with record_attention(net) as raw:
        net(x)
    assert [tuple(m.shape) for m in raw] == [(5, 1, 32, 32), (5, 1, 16, 16), (5, 1, 8, 8)]
    for k in (0, 1, -1):
        expected = F.interpolate(raw[k], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
        torch.testing.assert_close(spatial_attention_maps(net, x, block=k, normalize="none"), expected)
        got = spatial_attention_maps(net, x, block=k)
        torch.testing.assert_close(got, expected / expected.sum(dim=(1, 2), keepdim=True))
    # the raw gate lies in (0, 1); "mean" averages the resized gates before normalising
    none = spatial_attention_maps(net, x, normalize="none", size=(20, 24))
    assert none.shape == (5, 20, 24) and none.min() > 0 and none.max() < 1
    mean = torch.stack(
        [F.interpolate(m, size=(20, 24), mode="bilinear", align_corners=False)[:, 0] for m in raw]
    ).mean(0)
    torch.testing.assert_close(none, mean)
    # batching does not change the result
    torch.testing.assert_close(spatial_attention_maps(net, x, batch_size=2), spatial_attention_maps(net, x))


def test_shifted_sum_normalisation():
    maps = torch.tensor([[[0.2, 0.4], [0.6, 0.8]], [[0.5, 0.5], [0.5, 0.5]]])
    shifted = normalize_maps(maps, "shifted_sum")
    torch.testing.assert_close(shifted[0], torch.tensor([[0.0, 0.2], [0.4, 0.6]]) / 1.2)
    torch.testing.assert_close(shifted[1], torch.full((2, 2), 0.25))  # a constant map becomes uniform
    torch.testing.assert_close(normalize_maps(maps, "sum")[0], maps[0] / 2.0)
    assert normalize_maps(torch.zeros(1, 2, 2)).sum().item() == pytest.approx(1.0)


def test_mass_in_mask_against_a_loop():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(4, 6, 7, generator=g)
    masks = torch.rand(4, 6, 7, generator=g) > 0.6
    share = mass_in_mask(maps, masks)
    for i in range(4):
        inside = sum(maps[i, r, c] for r in range(6) for c in range(7) if masks[i, r, c])
        assert share[i].item() == pytest.approx((inside / maps[i].sum()).item(), rel=1e-6)
    # scale-free, and a uniform map scores the mask's area fraction
    torch.testing.assert_close(mass_in_mask(3.0 * maps, masks), share)
    torch.testing.assert_close(mass_in_mask(uniform_maps(4, (6, 7)), masks), mask_fraction(masks))
    # all mass inside / outside
    torch.testing.assert_close(mass_in_mask(masks.float() + 0.0, masks), torch.ones(4))
    torch.testing.assert_close(mass_in_mask((~masks).float(), masks), torch.zeros(4))


def test_pointing_game():
    maps = torch.zeros(3, 5, 5)
    maps[0, 1, 1] = 1.0  # inside
    maps[1, 4, 4] = 1.0  # outside, two pixels from the mask
    maps[2, 0, 3] = 1.0  # outside, one pixel from the mask
    masks = torch.zeros(3, 5, 5, dtype=torch.bool)
    masks[:, 1:3, 1:3] = True
    assert pointing_hits(maps, masks).tolist() == [True, False, False]
    assert pointing_hits(maps, masks, tolerance=1).tolist() == [True, False, True]
    assert pointing_hits(maps, masks, tolerance=2).tolist() == [True, True, True]
    assert pointing_hits(maps, masks.long()).tolist() == [True, False, False]  # 0/1 integers are accepted


def test_centre_maps():
    c = centre_maps(2, (9, 11), sigma=0.2)
    assert c.shape == (2, 9, 11)
    torch.testing.assert_close(c.sum(dim=(1, 2)), torch.ones(2))
    assert divmod(int(c[0].argmax()), 11) == (4, 5)  # the peak is the centre pixel
    torch.testing.assert_close(c[0], c[0].flip(0))
    torch.testing.assert_close(c[0], c[0].flip(1))


def test_errors(net):
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="block must be in"):
        spatial_attention_maps(net, x, block=3)
    with pytest.raises(ValueError, match="block must be one of 'mean'"):
        spatial_attention_maps(net, x, block="last")
    with pytest.raises(ValueError, match="normalize must be one of"):
        spatial_attention_maps(net, x, normalize="softmax")
    with pytest.raises(ValueError, match="x must be a floating-point tensor of shape"):
        spatial_attention_maps(net, x[0])
    with pytest.raises(ValueError, match="no MixedAttention block"):
        spatial_attention_maps(SmallCNN(3, 8, width=4, image_size=32), x)
    with pytest.raises(ValueError, match="size must be"):
        spatial_attention_maps(net, x, size=0)
    maps = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="masks must have the maps' shape"):
        mass_in_mask(maps, torch.ones(2, 4, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="masks must be boolean"):
        mass_in_mask(maps, torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="must be non-negative"):
        mass_in_mask(maps - 1, torch.ones(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="tolerance must be"):
        pointing_hits(maps, torch.ones(2, 4, 4, dtype=torch.bool), tolerance=-1)
    # the unified rule of dmlbook._checks: wrong type -> TypeError, wrong value -> ValueError
    with pytest.raises(TypeError, match="tolerance must be an int"):
        pointing_hits(maps, torch.ones(2, 4, 4, dtype=torch.bool), tolerance=1.0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        spatial_attention_maps(net, x, batch_size=2.0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        spatial_attention_maps(net, x, batch_size=0)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        spatial_attention_maps(net, x.to(torch.uint8))
    with pytest.raises(TypeError, match="size must be"):
        spatial_attention_maps(net, x, size=8.5)
    with pytest.raises(TypeError, match="maps must be a floating-point tensor"):
        mass_in_mask(maps.tolist(), torch.ones(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"masks must be a tensor of shape \(N, H, W\)"):
        mask_fraction(torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="masks must be a tensor"):
        mask_fraction([[True]])
    with pytest.raises(ValueError, match="n must be >= 0"):
        uniform_maps(-1, 4)
    # a block without a spatial gate is not recorded
    channel_only = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), MixedAttention(4, spatial=False))
    with pytest.raises(ValueError, match="no MixedAttention block with a spatial gate"):
        spatial_attention_maps(channel_only, x)
