"""The chapter-9 helpers (dmlbook.experiments.spoken_words) on a tiny generated FSDD tree: losses, training, accuracy,
adaptation, nearest-centroid and log-mel 1-NN against loop references."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmlbook.data import fsdd, load_dataset
from dmlbook.experiments import spoken_words as sw
from dmlbook.losses import HybridLoss, OSMCAALoss, TripletMarginLoss
from dmlbook.train import build_model_for, fit


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    root = fsdd.synthesize_fsdd(tmp_path_factory.mktemp("gen") / "fsdd", num_speakers=3, num_words=4, takes=5)
    ds = load_dataset("fsdd", root=root, split="all", n_mels=16, hop_length=160)
    return fsdd.speaker_split(ds, "spk1", adapt_takes=2, seen_test_takes=1)


@pytest.fixture(scope="module")
def config():
    return sw.word_config(
        epochs=2, batch_k=4, lr=3e-3, embedding_dim=8, model_args={"n_mels": 16, "width": 4, "num_stages": 2}
    )


def test_make_word_loss():
    ce = sw.make_word_loss("ce", num_classes=4, embedding_dim=8)
    tri = sw.make_word_loss("ce+triplet", num_classes=4, embedding_dim=8, triplet_margin=0.3)
    osm = sw.make_word_loss("ce+osm_caa", num_classes=4, embedding_dim=8, osm_args={"lam": 0.7})
    assert all(isinstance(x, HybridLoss) for x in (ce, tri, osm))
    assert ce.metric is None
    assert isinstance(tri.metric, TripletMarginLoss) and tri.metric.margin == 0.3 and not tri.pass_logits
    assert (
        isinstance(osm.metric, OSMCAALoss) and osm.metric.lam == 0.7 and osm.pass_logits
    )  # shared classifier
    with pytest.raises(ValueError, match="variant must be one of"):
        sw.make_word_loss("triplet", num_classes=4, embedding_dim=8)


def test_word_config(config):
    assert config.model == "speech_cnn" and config.epochs == 2 and config.val_fraction == 0.0
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        sw.word_config(epochs=0)


def test_train_predict_accuracy(fold, config):
    run = sw.train_word_model("ce+triplet", fold.train, config)
    assert run.variant == "ce+triplet" and len(run.history) == 2 and run.config.batch_p == 4
    pred = sw.predict_words(run, fold.unseen_test)
    assert pred.shape == (len(fold.unseen_test),) and set(pred.tolist()) <= {0, 1, 2, 3}
    assert sw.word_accuracy(run, fold.unseen_test) == pytest.approx(
        float((pred == fold.unseen_test.labels).mean())
    )
    again = sw.train_word_model("ce+triplet", fold.train, config)  # seeded: the same run
    np.testing.assert_array_equal(sw.predict_words(again, fold.unseen_test), pred)
    # one run() trains exactly what seeding, building the model and the loss, and fit() did
    capped = dataclasses.replace(config, batch_p=4)
    torch.manual_seed(capped.seed)
    model = build_model_for(capped, fold.train[0][0])
    loss = sw.make_word_loss(
        "ce+triplet", num_classes=fold.train.num_classes, embedding_dim=capped.embedding_dim
    )
    fit(model, loss, fold.train, config=capped)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(run.model.state_dict()[name], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="dataset is empty"):
        sw.word_accuracy(run, fold.unseen_test.subset([]))


def test_adapt_leaves_the_original_untouched(fold, config):
    run = sw.train_word_model("ce+osm_caa", fold.train, config)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    adapted = sw.adapt_word_model(run, fold.adapt, epochs=3)
    for k, v in run.model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert any(not torch.equal(v, before[k]) for k, v in adapted.model.state_dict().items())
    assert adapted.config.batch_p == 4 and adapted.config.batch_k == 2 and len(adapted.history) == 3
    assert adapted.config.lr == pytest.approx(config.lr / 3)
    with pytest.raises(ValueError, match="at least 2 recordings of each"):
        sw.adapt_word_model(run, fold.adapt.subset(np.arange(len(fold.adapt))[::2]), epochs=1)


def test_prototype_accuracy_matches_loop(fold, config):
    run = sw.train_word_model("ce", fold.train, config)
    got = sw.prototype_accuracy(run, fold.adapt, fold.unseen_test)
    from dmlbook.train import embed

    enrol, y_enrol = embed(run.model, fold.adapt)
    test, y_test = embed(run.model, fold.unseen_test)
    centroids = {}
    for w in sorted(set(y_enrol.tolist())):
        members = [F.normalize(enrol[i], dim=0) for i in range(len(y_enrol)) if y_enrol[i] == w]
        centroids[w] = F.normalize(torch.stack(members).mean(dim=0), dim=0)
    hits = 0
    for i in range(len(y_test)):
        q = F.normalize(test[i], dim=0)
        best = max(centroids, key=lambda w: float(q @ centroids[w]))
        hits += best == int(y_test[i])
    assert got == pytest.approx(hits / len(y_test))


def test_logmel_nearest_neighbour_matches_loop(fold):
    got = sw.logmel_nearest_neighbour_accuracy(fold.train, fold.unseen_test)

    def norm(x):  # per-band mean over time removed, unit std per utterance, flattened
        x = x - x.mean(axis=-1, keepdims=True)
        return (x / x.std(axis=(-2, -1), ddof=1, keepdims=True)).reshape(len(x), -1)

    g, q = norm(fold.train.data.numpy()[:, 0]), norm(fold.unseen_test.data.numpy()[:, 0])
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    pred = fold.train.labels[(q @ g.T).argmax(axis=1)]
    assert got == pytest.approx(float((pred == fold.unseen_test.labels).mean()))


def test_run_fold_keys(fold, config):
    acc, extras = sw.run_fold(fold, config, variants=("ce", "ce+triplet"), adapt_epochs=2, keep=True)
    assert list(acc) == [
        "logmel_1nn",
        "ce",
        "ce:seen",
        "ce:adapted",
        "ce:enrolled",
        "ce+triplet",
        "ce+triplet:seen",
        "ce+triplet:adapted",
        "ce+triplet:enrolled",
    ]
    assert all(0.0 <= v <= 1.0 for v in acc.values())
    assert set(extras["runs"]) == set(extras["adapted"]) == {"ce", "ce+triplet"}
    assert acc["ce"] == pytest.approx(sw.word_accuracy(extras["runs"]["ce"], fold.unseen_test))
    with pytest.raises(ValueError, match="variants must be one of"):
        sw.run_fold(fold, config, variants=("ce+lifted",))


def test_word_spread_matches_loop(fold, config):
    run = sw.train_word_model("ce", fold.train, config)
    got = sw.word_spread(run, fold.train, fold.unseen_test)
    from dmlbook.train import embed

    ref, y_ref = embed(run.model, fold.train)
    emb, y = embed(run.model, fold.unseen_test)
    words = sorted(set(y_ref.tolist()))
    c = {
        w: F.normalize(
            torch.stack([F.normalize(ref[i], dim=0) for i in range(len(y_ref)) if y_ref[i] == w]).mean(dim=0),
            dim=0,
        )
        for w in words
    }
    within = np.mean([1 - float(F.normalize(emb[i], dim=0) @ c[int(y[i])]) for i in range(len(y))])
    between = np.mean([1 - float(c[a] @ c[b]) for a in words for b in words if a != b])
    assert got["within"] == pytest.approx(within, rel=1e-4, abs=1e-6)
    assert got["between"] == pytest.approx(between, rel=1e-4, abs=1e-6)
    assert got["ratio"] == pytest.approx(within / between, rel=1e-3)
    with pytest.raises(ValueError, match="words that reference does not"):
        sw.word_spread(run, fold.train.subset(fold.train.labels < 2), fold.unseen_test)
