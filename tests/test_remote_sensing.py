"""The chapter-7 experiment (dmlbook.experiments.remote_sensing): variants and their weights, the class-mean
centre start, and one trained variant against the loop it replaces, on generated blobs split per class."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dmlbook.data import load_dataset, stratified_split
from dmlbook.diagnostics import inter_class_distance, intra_class_spread
from dmlbook.evaluation import evaluate
from dmlbook.experiments import remote_sensing as rs
from dmlbook.losses import CentreStructuredLoss
from dmlbook.train import RunContext, TrainConfig, build_model_for, embed, fit

CONFIG = TrainConfig(
    dataset="synthetic",
    loss="centre",
    epochs=2,
    batches_per_epoch=3,
    val_fraction=0.0,
    device="cpu",
    progress=False,
)


@pytest.fixture(scope="module")
def split():
    return stratified_split(load_dataset("synthetic", split="all"), test_fraction=0.2, seed=0)


def test_variants_and_weights():
    assert rs.canonical_variant(" centre + ce ") == "ce+centre"
    assert rs.canonical_variant("lifted+ce+centre") == "ce+lifted+centre"
    for bad in ("lifted", "ce+proxy", "+"):
        with pytest.raises(ValueError, match="must combine"):
            rs.canonical_variant(bad)
    with pytest.raises(TypeError, match="variant must be a str"):
        rs.canonical_variant(3)
    assert rs.term_weights("ce") == {
        "ce_weight": 1.0,
        "lifted_weight": 0.0,
        "intra_weight": 0.0,
        "inter_weight": 0.0,
    }
    assert rs.term_weights(
        "ce+lifted+centre", lifted_weight=0.5, centre_weight=0.2, separation_weight=0.3
    ) == {"ce_weight": 1.0, "lifted_weight": 0.5, "intra_weight": 0.2, "inter_weight": 0.3}
    loss = rs.make_loss("ce+centre", num_classes=4, embedding_dim=8, centre_weight=0.1, inter_margin=1.5)
    assert isinstance(loss, CentreStructuredLoss) and loss.inter_margin == 1.5
    assert loss.term_weights == {"ce": 1.0, "lifted": 0.0, "intra": 0.1, "inter": 1.0}


def test_class_mean_centres(split):
    train_set, _ = split
    config = CONFIG.resolved()
    torch.manual_seed(0)
    model = build_model_for(config, train_set[0][0])
    loss = rs.make_loss("ce+centre", num_classes=train_set.num_classes, embedding_dim=config.embedding_dim)
    rs.ClassMeanCentres().on_run_start(
        RunContext(config, model, loss, train_set, None, None, torch.device("cpu"))
    )
    emb, labels = embed(model, train_set)
    unit = F.normalize(emb, dim=1)
    for c in range(train_set.num_classes):
        torch.testing.assert_close(loss.centres[c].detach(), unit[labels == c].mean(0))
    with pytest.raises(TypeError, match="reset_centres"):
        rs.ClassMeanCentres().on_run_start(
            RunContext(config, model, torch.nn.Identity(), train_set, None, None, torch.device("cpu"))
        )


def test_train_variant_is_the_loop_it_replaces(split, one_thread):
    train_set, test_set = split
    got = rs.train_variant("centre+lifted+ce", CONFIG, train_set, test_set, track=True)
    assert got.variant == "ce+lifted+centre" and got.centre_accuracy is not None
    assert len(got.trace) == 6 and {"ce", "lifted", "intra", "inter"} <= set(got.trace[0])
    assert got.embeddings.shape[0] == len(test_set) and got.train_means.shape == got.centres.shape
    # by hand: seed, model, loss, centres at the class means, fit(), embed the test split
    config = CONFIG.resolved()
    torch.manual_seed(config.seed)
    model = build_model_for(config, train_set[0][0])
    loss = rs.make_loss(
        "ce+lifted+centre", num_classes=train_set.num_classes, embedding_dim=config.embedding_dim
    )
    loss.reset_centres(*embed(model, train_set))
    fit(model, loss, train_set, config=config)
    emb, labels = embed(model, test_set)
    torch.testing.assert_close(got.embeddings, emb, rtol=0, atol=0)
    assert got.accuracy == float((loss.predict(emb) == labels).float().mean())
    assert got.recall_at_1 == evaluate(emb, labels, ks=(1,), nmi=False)["recall@1"]
    assert got.intra == intra_class_spread(emb, labels) and got.inter == inter_class_distance(emb, labels)
    torch.testing.assert_close(got.centres, loss.centres.detach(), rtol=0, atol=0)
    plain = rs.train_variant(
        "ce", dataclasses.replace(CONFIG, seed=1), train_set, test_set, init_centres=False
    )
    assert plain.centre_accuracy is None and plain.trace == []
