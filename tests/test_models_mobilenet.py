"""MobileNetV2 (Sandler et al. 2018): shapes, TF "SAME" vs symmetric padding, both weight formats, clear errors
for bad weight files, residual attention at initialisation, and (marked ``realdata``) Google's ImageNet weights
from ``$DMLBOOK_DATA/weights`` against the stored Cars196-half features and ImageNet classes."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmlbook.attention import MixedAttention, record_attention
from dmlbook.data.transforms import ResizeShorter, resize
from dmlbook.models import MobileNetV2, available_models, build_model, mobilenet_v2_transform
from dmlbook.models.mobilenet import (
    STAGES,
    WEIGHTS_FILENAME,
    PaddedConv2d,
    ResidualAttention,
    detect_weights_format,
    tf_same_padding,
)

# One intra-op thread: these are small batches, and on a shared 2-core machine OpenMP threads that wait for each
# other cost far more than they save (the real-data fixture sets its own thread count).
pytestmark = pytest.mark.usefixtures("one_thread")

# ImageNet-1k indices (standard synset-sorted order) of road vehicles and car parts; the TF head adds 1.
CAR_LIKE = {
    407: "ambulance",
    408: "amphibian",
    436: "beach wagon",
    468: "cab",
    475: "car mirror",
    479: "car wheel",
    511: "convertible",
    573: "go-kart",
    575: "golfcart",
    581: "grille",
    609: "jeep",
    627: "limousine",
    654: "minibus",
    656: "minivan",
    661: "Model T",
    675: "moving van",
    717: "pickup",
    734: "police van",
    751: "racer",
    757: "recreational vehicle",
    817: "sports car",
    864: "tow truck",
    867: "trailer truck",
}


@pytest.fixture
def tf_state() -> OrderedDict:
    """A random TF-format state_dict (biases everywhere, no BatchNorm, 1001 classes)."""
    torch.manual_seed(0)
    return MobileNetV2(weights_format="tf").imagenet_state_dict()


def _randomise_batchnorm(net: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=g)
            m.bias.data = 0.2 * torch.randn(c, generator=g)
            m.running_mean = 0.2 * torch.randn(c, generator=g)
            m.running_var = 0.5 + torch.rand(c, generator=g)


def _fold_into_tf(tv: MobileNetV2) -> MobileNetV2:
    """A TF-format model whose conv biases hold ``tv``'s BatchNorm (eval mode), as the TFLite export does."""
    tf = MobileNetV2(weights_format="tf", dropout=0.0)
    tv_convs = [m for m in tv.trunk.modules() if isinstance(m, nn.Conv2d)]
    tv_bns = [m for m in tv.trunk.modules() if isinstance(m, nn.BatchNorm2d)]
    tf_convs = [m for m in tf.trunk.modules() if isinstance(m, nn.Conv2d)]
    assert len(tv_convs) == len(tv_bns) == len(tf_convs) == 52
    with torch.no_grad():
        for conv, bn, target in zip(tv_convs, tv_bns, tf_convs):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
            target.weight.copy_(conv.weight * scale[:, None, None, None])
            target.bias.copy_(bn.bias - bn.running_mean * scale)
        tf.classifier[1].weight.copy_(torch.cat([torch.zeros(1, 1280), tv.classifier[1].weight]))
        tf.classifier[1].bias.copy_(torch.cat([torch.zeros(1), tv.classifier[1].bias]))
    return tf.eval()


# -------------------------------------------------------------------------------------------- padding
@pytest.mark.parametrize(
    "size,k,s,expected",
    [
        (224, 3, 2, (0, 1)),
        (225, 3, 2, (1, 1)),
        (7, 3, 2, (1, 1)),
        (112, 3, 1, (1, 1)),
        (8, 1, 2, (0, 0)),
        (4, 7, 1, (3, 3)),
        (6, 2, 2, (0, 0)),
        (5, 4, 1, (1, 2)),
    ],
)
def test_tf_same_padding_rule(size: int, k: int, s: int, expected: tuple[int, int]) -> None:
    assert tf_same_padding(size, k, s) == expected


def test_tf_same_padding_validation() -> None:
    with pytest.raises(ValueError, match="stride"):
        tf_same_padding(8, 3, 0)


def test_padded_conv_same_vs_symmetric_by_hand() -> None:
    """4x4 ones, 3x3 ones kernel, stride 2: "SAME" pads bottom/right only, torch pads all four sides."""
    x = torch.ones(1, 1, 4, 4)
    same = PaddedConv2d(1, 1, 3, stride=2, bias=False, tf_same=True)
    sym = PaddedConv2d(1, 1, 3, stride=2, bias=False, tf_same=False)
    for conv in (same, sym):
        nn.init.ones_(conv.weight)
    torch.testing.assert_close(same(x)[0, 0], torch.tensor([[9.0, 6.0], [6.0, 4.0]]))
    torch.testing.assert_close(sym(x)[0, 0], torch.tensor([[4.0, 6.0], [6.0, 9.0]]))
    assert "tf_same" in repr(same) and "tf_same" not in repr(sym)


@pytest.mark.parametrize("size", [224, 225, 15, 16])
def test_padded_conv_matches_explicit_pad(size: int) -> None:
    torch.manual_seed(0)
    conv = PaddedConv2d(3, 4, 3, stride=2, tf_same=True)
    x = torch.randn(2, 3, size, size)
    pad = (0, 1, 0, 1) if size % 2 == 0 else (1, 1, 1, 1)
    ref = F.conv2d(F.pad(x, pad), conv.weight, conv.bias, stride=2)  # (2, 4, ceil(size/2), ceil(size/2))
    torch.testing.assert_close(conv(x), ref)
    assert conv(x).shape[-1] == -(-size // 2)


def test_same_padding_in_the_network_folded_batchnorm() -> None:
    """A torchvision-format model and its BN-folded TF-format copy agree where "SAME" is symmetric (33 px: the
    stride-2 convs see 33, 17, 9, 5, 3, all odd) and differ at 32 px (even sizes: "SAME" pads bottom/right only,
    as at 224 px)."""
    torch.manual_seed(0)
    tv = MobileNetV2(weights_format="torchvision", dropout=0.0)
    _randomise_batchnorm(tv)
    tv.eval()
    tf = _fold_into_tf(tv)
    with torch.no_grad():
        x = torch.randn(2, 3, 33, 33)
        torch.testing.assert_close(tf.features(x), tv.features(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(tf.classify(x, imagenet1k=True), tv.classify(x), rtol=1e-4, atol=1e-4)
        x = torch.randn(2, 3, 32, 32)
        a, b = tf.trunk[:5](x), tv.trunk[:5](x)  # (2, 32, 4, 4): after 3 stride-2 convs
        # (not the pooled features: random deep layers wash the difference out of them)
        assert (a - b).abs().max() > 0.1 * b.abs().max()
        # "SAME" on x == symmetric on x shifted up-left by one pixel, except the first output row and column
        a, b = tf.trunk[0](x), tv.trunk[0](x[:, :, 1:, 1:])  # (2, 32, 16, 16) each
        torch.testing.assert_close(a[:, :, 1:, 1:], b[:, :, 1:, 1:], rtol=1e-4, atol=1e-4)
        assert not torch.allclose(a[:, :, 0], b[:, :, 0], rtol=1e-2, atol=1e-2)


# --------------------------------------------------------------------------------------- shapes / API
@pytest.mark.parametrize("fmt,classes", [("tf", 1001), ("torchvision", 1000)])
def test_shapes(fmt: str, classes: int) -> None:
    torch.manual_seed(0)
    net = MobileNetV2(24, weights_format=fmt).eval()
    assert net.weights_format == fmt and net.num_classes == classes and net.weights_source is None
    for size in (64, 97):
        x = torch.randn(2, 3, size, size)
        side = -(-size // 32)
        assert net.feature_maps(x).shape == (2, 1280, side, side)
        feats = net.features(x)
        assert feats.shape == (2, 1280) and bool((feats >= 0).all())  # after ReLU6
        assert net(x).shape == (2, 24)
        assert net.classify(x).shape == (2, classes)
        assert net.classify(x, imagenet1k=True).shape == (2, 1000)
    z = MobileNetV2(8, normalize=True)(torch.randn(3, 3, 32, 40))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    n_tf = sum(p.numel() for n, p in MobileNetV2(weights_format="tf").named_parameters() if n[:5] != "embed")
    assert n_tf == 3_489_097  # the parameter count of the weights file (README)


def test_input_validation() -> None:
    net = MobileNetV2(8)
    with pytest.raises(ValueError, match=r"\(batch, 3, height, width\)"):
        net(torch.randn(2, 1, 64, 64))
    with pytest.raises(ValueError, match="at least 32x32"):
        net(torch.randn(2, 3, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        net(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"weights_format": "keras"}, ValueError, "weights_format"),
        ({"pretrained": 3}, TypeError, "pretrained"),
        ({"attention_after": (9,)}, ValueError, "attention_after"),
        ({"attention_after": 3}, TypeError, "attention_after"),
        ({"embedding_dim": 0}, ValueError, "embedding_dim"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"attention_after": (1,), "attention_init_scale": "0"}, TypeError, "attention_init_scale"),
    ],
)
def test_argument_errors(kwargs: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        MobileNetV2(**kwargs)


def test_registry() -> None:
    assert "mobilenet_v2" in available_models()
    net = build_model("mobilenet_v2", embedding_dim=16, attention_after=(2,))
    assert isinstance(net, MobileNetV2) and net.embedding_dim == 16 and net.attention_after == (2,)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    with pytest.raises(ValueError, match="in_channels must be 3"):
        build_model("mobilenet_v2", in_channels=1)
    with pytest.raises(ValueError, match="takes images"):
        build_model("mobilenet_v2", in_dim=4)


# -------------------------------------------------------------------------------------------- weights
def test_tf_weights_round_trip(tf_state: OrderedDict, tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(tf_state, path)
    for source in (path, str(path), tf_state):
        net = MobileNetV2(8, pretrained=source)
        assert net.weights_format == "tf" and net.num_classes == 1001
        for key, value in net.imagenet_state_dict().items():
            assert torch.equal(value, tf_state[key]), key
    assert MobileNetV2(pretrained=path).weights_source == str(path)
    assert all(m.tf_same for m in net.modules() if isinstance(m, PaddedConv2d))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_torchvision_weights_detected_and_loaded(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = MobileNetV2(weights_format="torchvision")
    _randomise_batchnorm(src)
    state = src.imagenet_state_dict()
    assert len(state) == 314 and "features.17.conv.3.running_var" in state  # torchvision's key set
    assert detect_weights_format(state) == "torchvision"
    state = OrderedDict((k, v) for k, v in state.items() if not k.endswith("num_batches_tracked"))  # optional
    torch.save(state, tmp_path / "tv.pt")
    net = MobileNetV2(pretrained=tmp_path / "tv.pt", weights_format="torchvision").eval()
    assert net.weights_format == "torchvision" and net.num_classes == 1000
    assert not any(m.tf_same for m in net.modules() if isinstance(m, PaddedConv2d))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.features(x), src.eval().features(x))


def test_missing_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere" / "weights.pt"
    with pytest.raises(FileNotFoundError, match=r"(?s)nowhere.*weights\.pt.*'features\.0\.0\.weight'"):
        MobileNetV2(pretrained=missing)
    monkeypatch.setenv("DMLBOOK_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"weights.{WEIGHTS_FILENAME}"):
        build_model("mobilenet_v2", pretrained=True)


def test_wrong_keys_error(tf_state: OrderedDict, tmp_path: Path) -> None:
    bad = OrderedDict(tf_state)
    del bad["features.5.conv.1.0.bias"]
    bad["extra.weight"] = torch.zeros(3)
    bad["features.0.0.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt") as info:
        MobileNetV2(pretrained=tmp_path / "bad.pt")
    msg = str(info.value)
    assert "1 missing keys ('features.5.conv.1.0.bias')" in msg
    assert "1 unexpected keys ('extra.weight')" in msg
    assert "features.0.0.weight: weights [16, 3, 3, 3], model [32, 3, 3, 3]" in msg
    assert "weights_format='tf'" in msg


def test_many_missing_keys_listed_briefly(tf_state: OrderedDict) -> None:
    half = OrderedDict(
        (k, v) for k, v in tf_state.items() if not k.endswith(".bias") or k.startswith("features.0.")
    )
    with pytest.raises(ValueError, match=r"52 missing keys \(.*\.\.\. \(47 more\)\)"):
        MobileNetV2(pretrained=half)


@pytest.mark.parametrize(
    "content,err,match",
    [
        ({"foo.weight": torch.zeros(2)}, ValueError, "cannot tell the weights format"),
        ([1, 2, 3], TypeError, "does not hold a state_dict"),
        (b"not a torch file", ValueError, "could not read"),
    ],
)
def test_bad_file_errors(content: object, err: type, match: str, tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(err, match=match) as info:
        MobileNetV2(pretrained=path)
    assert "odd.pt" in str(info.value)


def test_format_conflict(tf_state: OrderedDict) -> None:
    with pytest.raises(ValueError, match="weights_format='torchvision'.*'tf'-format"):
        MobileNetV2(pretrained=tf_state, weights_format="torchvision")


# ------------------------------------------------------------------------------------------- attention
def test_attention_is_identity_at_init(tf_state: OrderedDict) -> None:
    torch.manual_seed(0)
    plain = MobileNetV2(8, pretrained=tf_state).eval()
    att = MobileNetV2(8, pretrained=tf_state, attention_after=(3, 8)).eval()
    att.embedding.load_state_dict(plain.embedding.state_dict())
    assert [n for n, m in att.named_modules() if isinstance(m, MixedAttention)] == [
        "attention.3.attention",
        "attention.8.attention",
    ]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), record_attention(att) as maps:
        assert torch.equal(att.features(x), plain.features(x))
        assert torch.equal(att(x), plain(x))
        assert torch.equal(att.classify(x), plain.classify(x))
    assert [tuple(m.shape) for m in maps[:2]] == [(2, 1, 8, 8), (2, 1, 2, 2)]  # stage 3: /8, stage 8: /32
    block = att.attention["3"].attention
    assert block.spatial_map.shape == (2, 1, 8, 8) and block.channel_weights.shape == (2, STAGES[3][2])
    # a bare CBAM block (scale 1) would change the pretrained features
    bare = MobileNetV2(8, pretrained=tf_state, attention_after=(3,), attention_init_scale=1.0).eval()
    with torch.no_grad():
        assert not torch.allclose(bare.features(x), plain.features(x), rtol=0.1, atol=0.0)


def test_attention_trains() -> None:
    torch.manual_seed(0)
    net = MobileNetV2(8, attention_after=(4,))
    x = torch.randn(2, 3, 32, 32)
    net(x).square().sum().backward()
    res = net.attention["4"]
    assert isinstance(res, ResidualAttention)
    assert res.scale.grad is not None and res.scale.grad.abs() > 0  # the scale learns first...
    with torch.no_grad():
        res.scale.fill_(0.5)
    net.zero_grad()
    net(x).square().sum().backward()
    grads = [p.grad for p in res.attention.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)  # ...then the gates


def test_return_features() -> None:
    torch.manual_seed(0)
    net = MobileNetV2(8, normalize=True).eval()
    x = torch.randn(2, 3, 40, 40)
    z, pooled = net(x, return_features=True)
    assert z.shape == (2, 8) and pooled.shape == (2, 1280)
    torch.testing.assert_close(z, net(x))
    torch.testing.assert_close(pooled, net.features(x))
    with pytest.raises(TypeError, match="return_features"):
        net(x, return_features=1)


@pytest.mark.parametrize("fmt", ["tf", "torchvision"])
def test_frozen_stages(fmt: str) -> None:
    torch.manual_seed(0)
    net = MobileNetV2(8, weights_format=fmt, attention_after=(2,), frozen_stages=4)
    reference = MobileNetV2(8, weights_format=fmt, attention_after=(2,))
    frozen_before = {k: v.clone() for k, v in net.trunk[:7].state_dict().items()}
    boundary = STAGES[3][1] + 1  # stages 0-3 are blocks trunk[0 .. 6]
    assert boundary == 7 and net.frozen_stages == 4
    for i, block in enumerate(net.trunk):
        assert all(p.requires_grad == (i >= boundary) for p in block.parameters()), i
    assert all(p.requires_grad for p in net.attention.parameters())  # attention is never frozen
    net.train()
    assert all(
        not m.training for b in list(net.trunk)[:boundary] for m in b.modules()
    )  # frozen BN keeps its stats
    assert all(m.training for b in list(net.trunk)[boundary:] for m in b.modules())
    x = torch.randn(2, 3, 48, 48)
    net(x).square().sum().backward()
    assert all(p.grad is None for p in net.trunk[:boundary].parameters())
    assert all(p.grad is not None for p in net.trunk[boundary:].parameters())
    assert net.attention["2"].scale.grad is not None  # inside the frozen region, but trained
    for k, v in net.trunk[:7].state_dict().items():
        assert torch.equal(v, frozen_before[k]), k  # frozen BatchNorm statistics did not move
    reference.load_state_dict(net.state_dict())  # the training pass moved the unfrozen BatchNorm statistics
    net.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x))  # freezing changes training, not the function
    net.freeze_stages(0)
    assert all(p.requires_grad for p in net.parameters()) and net.frozen_stages == 0
    net.freeze_stages(len(STAGES))
    assert not any(p.requires_grad for p in net.trunk.parameters())
    with pytest.raises(ValueError, match="frozen_stages"):
        MobileNetV2(8, frozen_stages=10)
    with pytest.raises(TypeError, match="frozen_stages"):  # a bool is the wrong type (dmlbook._checks)
        MobileNetV2(8, frozen_stages=True)


# ------------------------------------------------------------------------------------------ transforms
def test_transform_tf_range_and_shape() -> None:
    from PIL import Image

    arr = np.zeros((100, 160, 3), dtype=np.uint8)
    arr[:, 80:] = 255
    x = mobilenet_v2_transform()(Image.fromarray(arr))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert float(x.min()) == pytest.approx(-1.0, abs=0.02) and float(x.max()) == pytest.approx(1.0, abs=0.02)
    assert float(x[0, 112, 0]) == pytest.approx(-1.0) and float(x[0, 112, -1]) == pytest.approx(1.0)
    tv = mobilenet_v2_transform(112, weights_format="torchvision")(Image.fromarray(arr))
    assert tv.shape == (3, 112, 112) and float(tv[0, 56, 0]) == pytest.approx(-0.485 / 0.229, abs=1e-4)
    with pytest.raises(ValueError, match="weights_format"):
        mobilenet_v2_transform(weights_format="keras")


def test_resize_interpolation_option() -> None:
    x = torch.rand(3, 20, 30)
    assert resize(x, (40, 60), interpolation="bicubic").shape == (3, 40, 60)
    assert not torch.allclose(resize(x, (40, 60), interpolation="bicubic"), resize(x, (40, 60)))
    assert repr(ResizeShorter(8, interpolation="bicubic")) == "ResizeShorter(8, interpolation='bicubic')"
    assert repr(ResizeShorter(8)) == "ResizeShorter(8)"
    with pytest.raises(ValueError, match="interpolation"):
        ResizeShorter(8, interpolation="nearest")


# ------------------------------------------------------------------------------------------- real data
N_REAL = 24


@pytest.fixture(scope="module")
def real_batch() -> dict:
    """Google's weights (``pretrained=True``, i.e. ``$DMLBOOK_DATA/weights``) on Cars196-half images.

    The stored features were computed from each original photo resized to a 224-px shorter side; the
    ``images/`` here were resized to a 128-px shorter side, *except* those already smaller, which were kept at
    their size. Only for those are the pixels the same as the originals', so the sample is the first
    ``N_REAL`` images (by file name) whose shorter side is below 128 px; their 224-px version is the same
    bicubic upscale as the stored one. (Downscaled images, upscaled again, give a mean cosine of only ~0.91.)
    """
    env = os.environ.get("DMLBOOK_DATA")
    if not env:
        pytest.skip("DMLBOOK_DATA is not set (needs weights/ and cars196_half/)")
    root = Path(env)
    weights = root / "weights" / WEIGHTS_FILENAME
    cars = root / "cars196_half"
    needed = [weights, cars / "features_mobilenet.npz", cars / "images"]
    absent = [str(p) for p in needed if not p.exists()]
    if absent:
        pytest.skip(f"real data absent under DMLBOOK_DATA: {', '.join(absent)}")
    from PIL import Image

    names = []
    for name in sorted(os.listdir(cars / "images")):
        with Image.open(cars / "images" / name) as im:
            if min(im.size) < 128:
                names.append(name)
        if len(names) == N_REAL:
            break
    transform = mobilenet_v2_transform(224)
    images = [Image.open(cars / "images" / n).convert("RGB") for n in names]
    x = torch.stack([transform(im) for im in images])  # (N, 3, 224, 224)
    net = build_model("mobilenet_v2", pretrained=True).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~2.7 s for the 24 images; faster than 2 threads on a busy 2-core machine
    try:
        with torch.no_grad():
            feats = net.features(x)  # (N, 1280)
            logits = net.classifier(feats)  # (N, 1001)
            two = net.classify(x[:2])  # (2, 1001)
    finally:
        torch.set_num_threads(threads)
    stored = np.load(cars / "features_mobilenet.npz")
    row = {str(f): i for i, f in enumerate(stored["fnames"])}
    ref = torch.from_numpy(stored["mobilenet_v2_1.0_224_quant"][[row[n] for n in names]])  # (N, 1280)
    return {"net": net, "names": names, "feats": feats, "ref": ref, "logits": logits, "two": two}


@pytest.mark.realdata
def test_real_weights_reproduce_stored_features(real_batch: dict) -> None:
    net = real_batch["net"]
    assert net.weights_format == "tf" and net.num_classes == 1001
    assert net.weights_source.endswith(WEIGHTS_FILENAME)
    cos = F.cosine_similarity(real_batch["feats"], real_batch["ref"], dim=1)  # (N,)
    assert len(cos) == N_REAL
    assert float(cos.mean()) >= 0.99, f"mean cosine {float(cos.mean()):.4f} (min {float(cos.min()):.4f})"
    assert float(cos.min()) >= 0.97


@pytest.mark.realdata
def test_real_weights_classify_cars(real_batch: dict) -> None:
    logits = real_batch["logits"]
    # classify() == the head on features()
    torch.testing.assert_close(real_batch["two"], logits[:2], rtol=1e-4, atol=1e-4)
    top5 = (logits.topk(5, dim=1).indices - 1).tolist()  # TF index i + 1 = ImageNet class i
    assert all(set(t) & CAR_LIKE.keys() for t in top5), [[CAR_LIKE.get(c, c) for c in t] for t in top5]
    top1_car = sum(t[0] in CAR_LIKE for t in top5) / len(top5)
    assert top1_car >= 0.75, f"top-1 car-like for only {top1_car:.0%}"
    assert int(logits.argmax(dim=1).eq(0).sum()) == 0  # never "background"
