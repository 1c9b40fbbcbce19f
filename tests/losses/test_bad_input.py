"""Bad input gets a clear error naming the argument, never a NaN or an error from inside torch."""

import pytest
import torch

from dmlbook.losses import LOSSES, build_loss


def _make(name):
    if LOSSES[
        name
    ].needs_classes:  # owns a classifier, centres or proxies: needs the label space and embedding size
        return build_loss(name, num_classes=8, embedding_dim=4)
    return build_loss(name, attention="none") if name.startswith("osm") else build_loss(name)


NAMES = sorted(LOSSES)
GOOD_X = torch.randn(8, 4)
GOOD_Y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "x, y, error, match",
    [
        (torch.randn(8), GOOD_Y, ValueError, "embeddings must be 2-D"),
        (torch.randn(0, 4), torch.zeros(0, dtype=torch.long), ValueError, "embeddings is empty"),
        (torch.randn(1, 4), torch.zeros(1, dtype=torch.long), ValueError, "at least 2 samples"),
        (torch.randn(8, 4), GOOD_Y[:7], ValueError, "labels has 7 entries but embeddings has 8 rows"),
        (torch.randn(8, 4), GOOD_Y.float(), TypeError, "labels must have an integer dtype"),
        (torch.randn(8, 4), GOOD_Y.view(4, 2), ValueError, "labels must be 1-D"),
        (torch.randint(0, 3, (8, 4)), GOOD_Y, TypeError, "embeddings must be a floating-point"),
        ([[0.0] * 4] * 8, GOOD_Y, TypeError, "embeddings must be a torch.Tensor"),
    ],
)
def test_shape_and_dtype_errors(name, x, y, error, match):
    with pytest.raises(error, match=match):
        _make(name)(x, y)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_embeddings(name, bad):
    x = GOOD_X.clone()
    x[3, 1] = bad
    with pytest.raises(ValueError, match="embeddings contains NaN or infinite values"):
        _make(name)(x, GOOD_Y)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "labels", [torch.arange(8), torch.zeros(8, dtype=torch.long)], ids=["no-pos", "no-neg"]
)
def test_batches_without_positives_or_negatives_are_finite(name, labels):
    x = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    out = _make(name)(x, labels)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


def test_lists_and_numpy_labels_are_accepted():
    np = pytest.importorskip("numpy")
    loss = build_loss("contrastive")
    ref = loss(GOOD_X, GOOD_Y)
    assert torch.equal(loss(GOOD_X, GOOD_Y.tolist()), ref)
    assert torch.equal(loss(GOOD_X, np.asarray(GOOD_Y)), ref)


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: build_loss("triplet", mining="hardest"),
            "mining must be one of 'all', 'batch_hard', 'semi_hard'",
        ),
        (
            lambda: build_loss("osm_caa", attention="soft"),
            "attention must be one of 'prob', 'gaussian', 'none'",
        ),
        (lambda: build_loss("circle"), "loss must be one of"),
        (lambda: build_loss("contrastive", margin=1.0), "bad hyper-parameter for loss 'contrastive'"),
        (lambda: build_loss("multi_similarity", alpha=-1.0), "alpha must be a finite number > 0"),
        (lambda: build_loss("ranked_list", imbalance=2.0), r"imbalance must be in \[0, 1\]"),
        (lambda: build_loss("osm_caa", variant="caffe"), "variant must be one of 'paper', 'official'"),
    ],
)
def test_bad_hyper_parameters(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_logits_classes_must_cover_labels():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        build_loss("osm_caa")(GOOD_X, GOOD_Y, logits=torch.zeros(8, 3))


def _seeded(name):
    torch.manual_seed(0)  # the same classifier (or centres) for every call
    return _make(name)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8], ids=str)
def test_any_integer_label_dtype_gives_the_int64_result(name, dtype):
    x = torch.randn(8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = _seeded(name).double()(x, GOOD_Y)
    got = _seeded(name).double()(x, GOOD_Y.to(dtype))
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name", NAMES)
def test_constructor_takes_keywords_only(name):
    # ContrastiveLoss(pos, neg) and LiftedStructureLoss(neg, pos) took their margins in opposite orders
    loss = LOSSES[name]
    with pytest.raises(TypeError, match="positional argument"):
        loss(0.5)


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: build_loss("contrastive", pos_margin=-0.1),
            r"pos_margin must be >= 0 \(it is a margin on distances",
        ),
        (lambda: build_loss("contrastive", neg_margin=-1.0), "neg_margin must be >= 0"),
        (
            lambda: build_loss("contrastive", pos_margin=1.2, neg_margin=1.0),
            r"pos_margin \(1.2\) must not exceed neg_margin \(1.0\): positives would be allowed",
        ),
        (
            lambda: build_loss("triplet", margin=-0.05),
            "margin must be >= 0 .*closer to the anchor than the positive",
        ),
        (lambda: build_loss("demal", margin=-0.2), "margin must be >= 0"),
        (lambda: build_loss("lifted", neg_margin=-1.0), "neg_margin must be >= 0"),
        (lambda: build_loss("lifted", pos_margin=-0.1), "pos_margin must be >= 0"),
        (
            lambda: build_loss("centre", num_classes=3, embedding_dim=4, neg_margin=-1.0),
            "neg_margin must be >= 0",
        ),
        (lambda: build_loss("multi_similarity", beta=0.0), "beta must be a finite number > 0"),
        (lambda: build_loss("osm", sigma_osm=0.0), "sigma_osm must be a finite number > 0"),
    ],
)
def test_margins_and_scales_that_make_no_sense_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("contrastive", {"pos_margin": 0.5, "neg_margin": 0.5}),
        ("contrastive", {"pos_margin": 0.0, "neg_margin": 0.0}),
        ("triplet", {"margin": 0.0}),
        ("lifted", {"neg_margin": 0.0, "pos_margin": 0.0}),
    ],
)
def test_boundary_margins_are_allowed(name, kwargs):
    x = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    out = build_loss(name, **kwargs)(x, GOOD_Y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
