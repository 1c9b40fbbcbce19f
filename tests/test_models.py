"""Models: heads, SmallCNN (with and without mixed attention), torchvision backbones, build_model."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmlbook.attention import MixedAttention, record_attention
from dmlbook.models import (
    Backbone,
    EmbeddingHead,
    LinearClassifier,
    SmallCNN,
    available_models,
    build_model,
    register_model,
    registry,
)

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------------- heads
@pytest.mark.parametrize(
    "kwargs,n_linear",
    [({}, 1), ({"hidden_dims": (32, 16)}, 3), ({"hidden_dims": (32,), "batchnorm": True, "dropout": 0.2}, 2)],
)
def test_embedding_head_shapes(kwargs: dict, n_linear: int, device: torch.device) -> None:
    head = EmbeddingHead(10, 8, **kwargs).to(device)
    z = head(torch.randn(5, 10, device=device))
    assert z.shape == (5, 8) and z.device.type == device.type
    assert sum(isinstance(m, nn.Linear) for m in head.modules()) == n_linear
    assert not torch.allclose(z.norm(dim=1), torch.ones(5, device=device))  # not normalised by default


def test_embedding_head_normalize_and_dtype() -> None:
    head = EmbeddingHead(6, 4, normalize=True).double()
    z = head(torch.randn(3, 6, dtype=torch.float64))
    assert z.dtype == torch.float64
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3, dtype=torch.float64))


def test_heads_validation() -> None:
    head = EmbeddingHead(6, 4)
    with pytest.raises(ValueError, match=r"\(batch, 6\)"):
        head(torch.randn(3, 5))
    with pytest.raises(TypeError, match="floating-point"):
        head(torch.ones(3, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="dropout"):
        EmbeddingHead(6, 4, dropout=1.5)
    with pytest.raises(ValueError, match=r"hidden_dims\[1\]"):
        EmbeddingHead(6, 4, hidden_dims=(8, 0))
    with pytest.raises(TypeError, match="hidden_dims"):
        EmbeddingHead(6, 4, hidden_dims=8)
    with pytest.raises(TypeError, match="in_dim"):
        EmbeddingHead(6.0, 4)
    clf = LinearClassifier(4, 3)
    assert clf(torch.randn(2, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="embeddings"):
        clf(torch.randn(2, 5))


# -------------------------------------------------------------------------------------------- SmallCNN
@pytest.mark.parametrize("in_channels,size,stages", [(1, 28, 3), (3, 32, 3), (3, 64, 4)])
def test_small_cnn_shapes(in_channels: int, size: int, stages: int) -> None:
    net = SmallCNN(in_channels, 24, width=8, image_size=size)
    assert net.num_stages == stages and net.feature_dim == 8 * 2 ** (stages - 1)
    x = torch.randn(4, in_channels, size, size)
    assert net.features(x).shape == (4, net.feature_dim)
    assert net(x).shape == (4, 24)


def test_small_cnn_attention_keeps_shapes_and_records_maps(device: torch.device) -> None:
    torch.manual_seed(0)
    net = SmallCNN(1, 16, width=8, attention=True).to(device)
    plain = SmallCNN(1, 16, width=8).to(device)
    assert sum(isinstance(m, MixedAttention) for m in net.modules()) == 3
    assert not any(isinstance(m, MixedAttention) for m in plain.modules())
    x = torch.randn(2, 1, 28, 28, device=device)
    with record_attention(net) as maps:
        z = net(x)
    assert z.shape == plain(x).shape == (2, 16)
    assert [tuple(m.shape) for m in maps] == [(2, 1, 28, 28), (2, 1, 14, 14), (2, 1, 7, 7)]
    z.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_small_cnn_attention_stages() -> None:
    net = SmallCNN(3, 8, width=4, attention=True, attention_stages=(1,), image_size=32)
    with record_attention(net) as maps:
        net(torch.randn(2, 3, 32, 32))
    assert [tuple(m.shape) for m in maps] == [(2, 1, 16, 16)]
    assert net.attention_stages == (1,)


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"attention_stages": (0,)}, ValueError, "attention=True"),
        ({"attention": True, "attention_stages": (3,)}, ValueError, "attention_stages"),
        ({"attention": True, "attention_stages": (0, 0)}, ValueError, "repeated"),
        ({"num_stages": 5}, ValueError, "num_stages"),
        ({"width": 0}, ValueError, "width"),
        ({"attention": "yes"}, TypeError, "attention"),
    ],
)
def test_small_cnn_constructor_validation(kwargs: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        SmallCNN(1, 8, **kwargs)


def test_small_cnn_input_validation() -> None:
    net = SmallCNN(1, 8, width=4)
    with pytest.raises(ValueError, match="in_channels=1"):
        net(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\(batch, 1, height, width\)"):
        net(torch.randn(2, 28, 28))
    with pytest.raises(ValueError, match="at least 8x8"):
        net(torch.randn(2, 1, 4, 28))
    with pytest.raises(TypeError, match="float"):
        net(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def _bright_dark(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 2  # (n,)
    noise = 0.25 * torch.randn(n, 1, 28, 28, generator=generator)  # (n, 1, 28, 28)
    return 0.35 + 0.3 * labels[:, None, None, None] + noise, labels  # dark 0.35, bright 0.65 on average


@pytest.mark.parametrize("attention", [False, True])
def test_small_cnn_learns_bright_vs_dark(attention: bool) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x, y = _bright_dark(32, gen)
    net = SmallCNN(1, 8, width=8, attention=attention, attention_reduction=4)
    clf = LinearClassifier(8, 2)
    opt = torch.optim.Adam([*net.parameters(), *clf.parameters()], lr=1e-2)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(clf(net(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    # fresh images, eval mode: the classes are separated in the embedding space, and the class centres of the
    # training embeddings classify them (after 20 steps BN's running statistics are still off, which moves
    # the embeddings relative to the classifier's boundary but keeps the two clusters apart)
    net.eval()
    x_test, y_test = _bright_dark(64, gen)
    with torch.no_grad():
        z_train = F.normalize(net(x), dim=1)  # (32, 8)
        z = F.normalize(net(x_test), dim=1)  # (64, 8)
    d = torch.cdist(z, z)  # (64, 64)
    same = y_test[:, None] == y_test[None, :]  # (64, 64)
    assert d[~same].mean() > 2 * d[same].mean()
    centres = torch.stack([z_train[y == 0].mean(0), z_train[y == 1].mean(0)])  # (2, 8)
    assert (torch.cdist(z, centres).argmin(1) == y_test).float().mean() > 0.8


# ------------------------------------------------------------------------------------------- backbones
def test_import_does_not_load_torchvision() -> None:
    code = "import sys, dmlbook.models, dmlbook.attention; assert 'torchvision' not in sys.modules, 'loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backbone_without_torchvision_raises_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    with pytest.raises(ImportError, match="pip install torchvision"):
        Backbone("resnet50", pretrained=False)
    with pytest.raises(ImportError, match="needs torchvision"):
        build_model("googlenet", pretrained=False)


def test_backbone_name_and_stage_validation() -> None:
    with pytest.raises(ValueError, match=r"not in torchvision.*googlenet"):
        Backbone("bn_inception")
    with pytest.raises(ValueError, match="'resnet50', 'googlenet'"):
        Backbone("vgg16")
    with pytest.raises(ValueError, match="attention_stages"):
        Backbone("googlenet", attention_stages=(3,))  # googlenet has 3 stages


@pytest.mark.skipif(not HAS_TORCHVISION, reason="torchvision is not installed")
@pytest.mark.parametrize("name,stages", [("resnet50", (3,)), ("googlenet", (0, 2))])
def test_backbone_shapes(name: str, stages: tuple[int, ...]) -> None:
    net = Backbone(name, 32, pretrained=False, attention_stages=stages).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), record_attention(net) as maps:
        assert net(x).shape == (2, 32)
        assert net.features(x).shape == (2, net.feature_dim)
    assert len(maps) == 2 * len(stages)


# ---------------------------------------------------------------------------------------- build_model
@pytest.mark.parametrize(
    "name,kwargs,x,dim",
    [
        ("mlp", {"in_dim": 12, "hidden_dims": (16,)}, torch.randn(3, 12), 128),
        ("linear", {"in_dim": 12, "embedding_dim": 5}, torch.randn(3, 12), 5),
        ("small_cnn", {}, torch.randn(3, 1, 28, 28), 64),
        (
            "small_cnn",
            {"in_channels": 3, "embedding_dim": 7, "attention": True},
            torch.randn(3, 3, 28, 28),
            7,
        ),
    ],
)
def test_build_model_shapes(name: str, kwargs: dict, x: torch.Tensor, dim: int) -> None:
    assert build_model(name, **kwargs)(x).shape == (3, dim)


@pytest.mark.parametrize(
    "name,kwargs,err,match",
    [
        ("nope", {}, ValueError, "'mlp', 'linear', 'small_cnn', 'resnet50', 'googlenet'"),
        (3, {}, ValueError, "name must be one of"),
        ("bn_inception", {}, ValueError, "googlenet"),
        ("mlp", {}, ValueError, "needs in_dim"),
        ("mlp", {"in_dim": 4, "in_channels": 3}, ValueError, "feature vectors"),
        ("small_cnn", {"in_dim": 4}, ValueError, "takes images"),
        ("linear", {"in_dim": 4, "hidden_dims": (8,)}, TypeError, "use 'mlp'"),
        ("resnet50", {"in_channels": 1}, ValueError, "in_channels must be 3"),
        ("small_cnn", {"bogus": 1}, TypeError, "bogus"),
    ],
)
def test_build_model_errors(name: object, kwargs: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        build_model(name, **kwargs)


def test_register_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_model(
        "tiny",
        lambda *, in_dim, embedding_dim=2: nn.Linear(in_dim, embedding_dim),
        input="features",
        description="a test model",
    )
    assert available_models()["tiny"] == "a test model"
    assert build_model("tiny", in_dim=3)(torch.randn(4, 3)).shape == (4, 2)
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny", nn.Identity, input="features")
    with pytest.raises(ValueError, match="input"):
        register_model("other", nn.Identity, input="audio")


def _fake_torchvision(calls: list) -> types.SimpleNamespace:
    """A stand-in with torchvision's child names and stage widths (tiny convs) to test Backbone's assembly."""

    def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
        return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)

    def resnet50(*, weights: object = None) -> nn.Module:
        calls.append(("resnet50", weights))
        net = nn.Module()
        for name, mod in [
            ("conv1", conv(3, 8, 2)),
            ("bn1", nn.BatchNorm2d(8)),
            ("relu", nn.ReLU()),
            ("maxpool", nn.MaxPool2d(2)),
            ("layer1", conv(8, 256)),
            ("layer2", conv(256, 512, 2)),
            ("layer3", conv(512, 1024, 2)),
            ("layer4", conv(1024, 2048, 2)),
            ("avgpool", nn.AdaptiveAvgPool2d(1)),
            ("fc", nn.Linear(2048, 1000)),
        ]:
            net.add_module(name, mod)
        return net

    def googlenet(*, weights: object = None, **kwargs: object) -> nn.Module:
        calls.append(("googlenet", weights, kwargs))
        net = nn.Module()
        widths = {"inception3b": (8, 480), "inception4e": (480, 832), "inception5b": (832, 1024)}
        for name in (
            "conv1",
            "maxpool1",
            "conv2",
            "conv3",
            "maxpool2",
            "inception3a",
            "inception3b",
            "maxpool3",
            "inception4a",
            "inception4b",
            "inception4c",
            "inception4d",
            "inception4e",
            "maxpool4",
            "inception5a",
            "inception5b",
        ):
            mod = (
                conv(*widths[name])
                if name in widths
                else nn.MaxPool2d(2)
                if "pool" in name
                else nn.Identity()
            )
            net.add_module(name, conv(3, 8, 2) if name == "conv1" else mod)
        net.transform_input = weights is not None
        return net

    return types.SimpleNamespace(models=types.SimpleNamespace(resnet50=resnet50, googlenet=googlenet))


def test_backbone_assembly_with_stand_in_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    monkeypatch.setitem(sys.modules, "torchvision", _fake_torchvision(calls))
    net = Backbone("resnet50", 16, attention_stages=(1, 3))
    assert calls[-1] == ("resnet50", "DEFAULT")
    assert [n for n, m in net.named_modules() if isinstance(m, MixedAttention)] == [
        "trunk.stage1.1",
        "trunk.stage3.1",
    ]
    assert not any(n.startswith(("fc", "avgpool")) for n, _ in net.named_children())
    x = torch.randn(2, 3, 64, 64)
    with record_attention(net) as maps:
        assert net(x).shape == (2, 16)
    assert [m.shape[1] for m in maps] == [1, 1] and net.feature_dim == 2048
    assert not net.input_affine

    g = build_model("googlenet", embedding_dim=8, pretrained=False, attention_stages=(2,))
    assert calls[-1] == ("googlenet", None, {"aux_logits": False, "init_weights": True})
    assert g(x).shape == (2, 8) and g.feature_dim == 1024 and not g.input_affine
    g = Backbone("googlenet", 8)  # "pretrained": googlenet's own input re-normalisation is applied
    assert g.input_affine
    ones = torch.ones(1, 3, 1, 1)
    expected = (
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) / 0.5
        + (torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) - 0.5) / 0.5
    )
    torch.testing.assert_close(ones * g.input_scale + g.input_shift, expected)


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        (
            "small_cnn",
            {"pretrained": True},
            (
                r"model 'small_cnn' does not take 'pretrained'; it accepts: "
                r"attention, attention_reduction, attention_stages, embedding_dim, "
                r"image_size, normalize, num_stages, width$"
            ),
        ),
        (
            "mlp",
            {"in_dim": 4, "foo": 1, "bar": 2},
            (
                r"model 'mlp' does not take 'bar', 'foo'; it accepts: "
                r"batchnorm, dropout, embedding_dim, hidden_dims, normalize$"
            ),
        ),
        (
            "resnet50",
            {"foo": 1},
            (
                r"model 'resnet50' does not take 'foo'; it accepts: attention_reduction, "
                r"attention_stages, embedding_dim, normalize, pretrained$"
            ),
        ),
    ],
)
def test_an_argument_a_model_does_not_take_lists_those_it_does(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        build_model(name, **kwargs)


def test_model_arguments_come_from_the_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    from dmlbook.models.registry import model_arguments

    assert model_arguments("linear") == ["batchnorm", "dropout", "embedding_dim", "hidden_dims", "normalize"]
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Tiny(nn.Linear):
        def __init__(self, in_dim: int, *, width: int = 2) -> None:
            super().__init__(in_dim, width)

    register_model("tiny", lambda *, in_dim, **kw: Tiny(in_dim, **kw), input="features", accepts=Tiny)
    assert model_arguments("tiny") == ["width"]
    assert build_model("tiny", in_dim=3, width=5).out_features == 5
    with pytest.raises(TypeError, match="model 'tiny' does not take 'depth'; it accepts: width$"):
        build_model("tiny", in_dim=3, depth=2)
    # without accepts= the names are unknown: the constructor's own error, prefixed with the model's name
    register_model("vague", lambda *, in_dim, **kw: Tiny(in_dim, **kw), input="features")
    assert model_arguments("vague") is None
    with pytest.raises(TypeError, match="model 'vague': .*unexpected keyword argument 'depth'"):
        build_model("vague", in_dim=3, depth=2)
