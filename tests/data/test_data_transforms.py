import pytest
import torch

from dmlbook.data import transforms as T


@pytest.fixture
def pil_image():
    from PIL import Image

    return Image.new("RGB", (40, 30), (255, 0, 0))  # width 40, height 30


def test_to_tensor_and_normalize(pil_image):
    x = T.ToTensor()(pil_image)
    assert x.shape == (3, 30, 40) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.ones(30, 40)) and float(x[1:].abs().max()) == 0
    y = T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(x)
    assert torch.allclose(y[0], torch.ones(30, 40)) and torch.allclose(y[1], -torch.ones(30, 40))
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize()(pil_image)
    with pytest.raises(ValueError, match="channels"):
        T.Normalize()(torch.zeros(1, 4, 4))
    assert T.ToTensor()(torch.full((1, 2, 2), 255, dtype=torch.uint8)).max() == 1


@pytest.mark.parametrize("as_tensor", [False, True])
def test_resize_and_crops(pil_image, as_tensor):
    img = T.ToTensor()(pil_image) if as_tensor else pil_image
    assert T.image_size(T.ResizeShorter(15)(img)) == (15, 20)
    assert T.image_size(T.Resize((7, 9))(img)) == (7, 9)
    assert T.image_size(T.CenterCrop(20)(img)) == (20, 20)
    assert T.image_size(T.CenterCrop(50)(img)) == (50, 50)  # zero-padded
    torch.manual_seed(0)
    assert T.image_size(T.RandomCrop(16, padding=2)(img)) == (16, 16)
    assert T.image_size(T.RandomResizedCrop(12)(img)) == (12, 12)
    assert T.image_size(T.RandomHorizontalFlip(1.0)(img)) == (30, 40)


def test_flip_and_center_crop_values():
    x = torch.arange(12.0).reshape(1, 3, 4)
    assert torch.equal(T.RandomHorizontalFlip(1.0)(x), x.flip(-1))
    assert torch.equal(T.RandomHorizontalFlip(0.0)(x), x)
    assert torch.equal(T.CenterCrop((1, 2))(x), torch.tensor([[[5.0, 6.0]]]))


def test_random_transforms_follow_torch_seed(pil_image):
    t = T.train_transform(16)
    torch.manual_seed(1)
    a = t(pil_image)
    torch.manual_seed(1)
    assert torch.equal(a, t(pil_image)) and a.shape == (3, 16, 16)


def test_pipelines(pil_image):
    x = T.eval_transform(24)(pil_image)
    assert x.shape == (3, 24, 24)
    assert "ResizeShorter(27)" in repr(T.eval_transform(24))


def test_transform_errors():
    with pytest.raises(ValueError, match="size"):
        T.CenterCrop(0)
    with pytest.raises(ValueError, match="scale"):
        T.RandomResizedCrop(8, scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="p must"):
        T.RandomHorizontalFlip(2)
    with pytest.raises(TypeError, match="PIL image or a torch.Tensor"):
        T.CenterCrop(4)([[1, 2]])
