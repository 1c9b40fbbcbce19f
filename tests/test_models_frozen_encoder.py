"""FrozenEncoder: the normalised image, or a frozen MobileNetV2 prefix whose outputs are cached."""

import pytest
import torch

from dmlbook.models import FrozenEncoder
from dmlbook.models.mobilenet import STAGES


def test_pixel_encoder_normalises_with_imagenet_statistics():
    enc = FrozenEncoder("pixels")
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
    torch.testing.assert_close(enc(x), (x.float() / 255 - mean) / std)
    torch.testing.assert_close(enc(x.float() / 255), enc(x))  # float input in [0, 1] is the same image
    assert (enc.out_channels, enc.stride) == (3, 1)


@pytest.mark.parametrize("stage", [2, 4])
def test_mobilenet_encoder_is_a_frozen_trunk_prefix(stage, one_thread):
    torch.manual_seed(0)
    enc = FrozenEncoder("mobilenet_v2", stage=stage, pretrained=False)
    assert enc.out_channels == STAGES[stage][2] and enc.stride == STAGES[stage][3]
    assert all(not p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training  # stays in eval mode (BatchNorm statistics frozen)
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    out = torch.cat([enc(x[i : i + 1]) for i in range(2)])
    assert out.shape == (2, enc.out_channels, 64 // enc.stride, 64 // enc.stride) and not out.requires_grad
    # the same as running the first blocks of the trunk on the normalised image
    expected = enc.trunk((x.float() / 255 - enc.mean) / enc.std)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="stage must be an int in"):
        FrozenEncoder("mobilenet_v2", stage=9, pretrained=False)
    with pytest.raises(ValueError, match="backbone must be one of"):
        FrozenEncoder("resnet50")
