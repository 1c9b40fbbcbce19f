"""dmlbook.analysis: class spread, trivial tuples, gradient share, tracking and weight summaries."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmlbook import analysis
from dmlbook.losses import ContrastiveLoss, MultiSimilarityLoss, OSMCAALoss, TripletMarginLoss, build_loss
from dmlbook.train import TrainConfig, train


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _batch(p: int = 4, k: int = 4, dim: int = 8, spread: float = 0.3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(p, dim, generator=g)
    labels = torch.arange(p).repeat_interleave(k)
    return centres[labels] + spread * torch.randn(p * k, dim, generator=g), labels


# ---------------------------------------------------------------------------------------------- class spread
def test_intra_class_spread_known_values():
    # one class of two orthogonal unit vectors: mean (0.5, 0.5), spread 1 - |mean|^2 = 0.5
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1])  # class 1 is one direction: spread 0
    assert analysis.intra_class_spread(emb, labels) == pytest.approx(0.25)  # mean of 0.5 and 0
    # without normalisation both classes have spread 0.5 (each sample sqrt(0.5) from its class mean)
    assert analysis.intra_class_spread(emb, labels, normalize=False) == pytest.approx(0.5)


def test_intra_class_spread_collapsed_and_numpy_input():
    emb = np.repeat(np.eye(3), 4, axis=0) * 5.0
    labels = np.repeat(np.arange(3), 4)
    assert analysis.intra_class_spread(emb, labels) == pytest.approx(0.0, abs=1e-12)
    assert analysis.inter_class_distance(emb, labels) == pytest.approx(2.0)  # orthonormal means: |e_i - e_j|^2


def test_intra_class_spread_ignores_singletons_and_rejects_all_singletons():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert analysis.intra_class_spread(emb, torch.tensor([0, 0, 1])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="two or more"):
        analysis.intra_class_spread(emb, torch.tensor([0, 1, 2]))


def test_centroid_distances_and_inter_class_distance():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-1.0, 0.0]])
    d = analysis.centroid_distances(emb, torch.tensor([0, 0, 1, 1]))
    assert d.shape == (4,)
    assert torch.allclose(d, torch.tensor([math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0], dtype=d.dtype))
    assert analysis.inter_class_distance(emb, torch.tensor([0, 0, 1, 1])) == pytest.approx(1.5**2 + 0.5**2)
    with pytest.raises(ValueError, match="two classes"):
        analysis.inter_class_distance(emb, torch.zeros(4, dtype=torch.long))


def test_relative_spread_is_scale_free():
    emb, labels = _batch(p=3, k=5, dim=4, spread=0.3)
    wide = analysis.relative_spread(emb, labels)
    assert wide == pytest.approx(analysis.intra_class_spread(emb, labels) / analysis.inter_class_distance(emb, labels))
    # squeeze everything into a small cap of the sphere: absolute spread shrinks, the relative one much less so
    cap = torch.cat([torch.full((len(emb), 1), 50.0), emb], dim=1)
    assert analysis.intra_class_spread(cap, labels) < 0.01 * analysis.intra_class_spread(emb, labels)
    assert 0.2 * wide < analysis.relative_spread(cap, labels) < 5 * wide
    # without normalisation it is exactly invariant to scale
    assert analysis.relative_spread(7 * emb, labels, normalize=False) == pytest.approx(
        analysis.relative_spread(emb, labels, normalize=False))


# ------------------------------------------------------------------------------------ trivial tuples, gradient
def test_gradient_share():
    g = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    assert analysis.gradient_share(g, torch.tensor([[False, True], [False, False]])) == pytest.approx(0.25)
    assert math.isnan(analysis.gradient_share(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool)))
    with pytest.raises(ValueError, match="must match"):
        analysis.gradient_share(g, torch.ones(3, 3, dtype=torch.bool))


def test_trivial_fractions_extremes():
    labels = torch.arange(4).repeat_interleave(3)
    tight = torch.eye(4)[labels] * 3  # every class one point, classes orthogonal: distance sqrt(2)
    out = analysis.trivial_fractions(tight, labels, triplet_margin=0.1, pos_margin=0.5, neg_margin=1.0)
    assert out["pairs"] == 1.0 and out["triplets"] == 1.0
    assert not out["nontrivial_pairs"].any()
    collapsed = torch.ones(12, 4)  # everything at one point: every triplet has a positive hinge
    out = analysis.trivial_fractions(collapsed, labels, triplet_margin=0.1, pos_margin=0.5, neg_margin=1.0)
    assert out["triplets"] == 0.0
    positives, candidates = 4 * 3 * 2, 12 * 11
    assert out["pairs"] == pytest.approx(positives / candidates)  # positives at d=0 are trivial, negatives not


def test_trivial_fractions_match_the_probe_losses():
    emb, labels = _batch()
    out = analysis.trivial_fractions(emb, labels, triplet_margin=0.2, pos_margin=0.4, neg_margin=1.1)
    pair = ContrastiveLoss(pos_margin=0.4, neg_margin=1.1).details(emb, labels).weights
    triplet = TripletMarginLoss(margin=0.2).details(emb, labels).weights
    assert out["pairs"] == pair.trivial_fraction and out["triplets"] == triplet.trivial_fraction
    assert 0.0 < out["pairs"] < 1.0 and 0.0 < out["triplets"] < 1.0


def test_nontrivial_gradient_share():
    emb, labels = _batch(spread=0.6)
    # a contrastive loss with the probe's own margins spends its whole gradient on the non-trivial pairs
    same = ContrastiveLoss(pos_margin=0.5, neg_margin=1.0)
    assert analysis.nontrivial_gradient_share(same, emb, labels, pos_margin=0.5, neg_margin=1.0) == pytest.approx(1.0)
    # OSM keeps pulling positives that are already closer than the probe's m+: part of its gradient goes there
    osm = OSMCAALoss(attention="none")
    share = analysis.nontrivial_gradient_share(osm, emb, labels, pos_margin=0.5, neg_margin=1.0)
    assert 0.0 < share < 1.0
    details = osm.details(emb, labels)
    assert analysis.nontrivial_gradient_share(osm, emb, labels, details=details) == pytest.approx(share)


# ------------------------------------------------------------------------------------------------- tracking
def _tiny_config(**kw) -> TrainConfig:
    base = {"dataset": "synthetic", "loss": "triplet", "loss_args": {"mining": "batch_hard"}, "epochs": 2,
            "device": "cpu", "progress": False, "embedding_dim": 8, "batch_p": 4, "batch_k": 5,
            "data_args": {"n_classes": 8, "n_per_class": 20, "dim": 8, "spread": 0.4}}
    return TrainConfig(**{**base, **kw})


def test_tracked_run_trains_exactly_like_train():
    tracker = analysis.TrainingTracker(every=3, eval_samples=50)
    snapshot = analysis.BatchSnapshot(step=2)
    run = analysis.train_tracked(_tiny_config(), name="bh", tracker=tracker, on_step=snapshot, embed_train=True)
    reference = train(_tiny_config())
    assert run.metrics["recall@1"] == pytest.approx(reference.metrics["recall@1"])
    assert run.name == "bh" and len(run.history) == 2
    steps = [r["step"] for r in run.records]
    assert steps[0] == 0 and all(s % 3 == 0 for s in steps) and steps == sorted(steps)
    for record in run.records:
        assert set(analysis.TRACKED_KEYS) <= set(record)
        for key in ("trivial_pairs", "trivial_triplets", "own_trivial", "recall_at_1"):
            assert 0.0 <= record[key] <= 1.0
    assert len(tracker.eval_set) == 50  # the test split, cut to eval_samples
    assert snapshot.embeddings is not None and snapshot.embeddings.shape == (20, 8)
    assert snapshot.labels.shape == (20,)
    assert run.train_embeddings.shape[0] == run.train_labels.shape[0] == 80
    assert run.test_embeddings.shape[0] == 80
    steps, values = tracker.series("trivial_triplets")
    assert steps.shape == values.shape == (len(run.records),)
    with pytest.raises(KeyError, match="no key"):
        tracker.series("nope")


def test_subsample_and_test_samples():
    config = _tiny_config(epochs=1)
    run = analysis.train_tracked(config, test_samples=30)
    assert run.test_embeddings.shape[0] == 30
    full = analysis.train_tracked(config)
    assert full.test_embeddings.shape[0] == 80
    from dmlbook.data import load_dataset

    digits = load_dataset("digits", split="test")
    part = analysis.subsample(digits, 100, seed=1)
    assert len(part) == 100 and analysis.subsample(digits, 100, seed=1).labels.tolist() == part.labels.tolist()
    assert analysis.subsample(digits, None) is digits and analysis.subsample(digits, 10**6) is digits
    with pytest.raises(ValueError, match="size"):
        analysis.subsample(digits, 1)


def test_tracker_rejects_bad_every():
    with pytest.raises(ValueError, match="every"):
        analysis.TrainingTracker(every=0)


def test_an_explicit_model_gets_only_its_own_model_args():
    from dmlbook.train import build_model_for, load_splits

    config = _tiny_config(model="small_cnn", model_args={"width": 4, "image_size": 8},
                          data_args={"kind": "patterns", "n_classes": 6, "n_per_class": 10, "size": 8})
    resolved = config.resolved()  # the synthetic dataset's MLP hidden_dims are not merged into small_cnn's
    assert resolved.model_args == {"width": 4, "image_size": 8}
    build_model_for(resolved, load_splits(resolved)[0][0][0])
    assert _tiny_config().resolved().model_args == {"hidden_dims": (64,)}  # the default model keeps them
    run = analysis.train_tracked(dict_replace(config, epochs=1))
    assert 0.0 <= run.metrics["recall@1"] <= 1.0


def dict_replace(config: TrainConfig, **kw) -> TrainConfig:
    import dataclasses

    return dataclasses.replace(config, **kw)


def test_start_end_and_first_step_reaching():
    assert analysis.start_end([0.2, 0.5, 0.6, 0.9, float("nan")], window=2) == (0.2, 0.9)
    assert analysis.start_end([0.4], window=3) == (0.4, 0.4)
    with pytest.raises(ValueError):
        analysis.start_end([])
    with pytest.raises(ValueError, match="window"):
        analysis.start_end([1.0], window=0)
    assert analysis.first_step_reaching([0, 10, 20], [0.1, 0.5, 0.7], 0.5) == 10.0
    assert math.isnan(analysis.first_step_reaching([0, 10], [0.1, 0.2], 0.5))
    with pytest.raises(ValueError, match="shape"):
        analysis.first_step_reaching([0, 1], [0.1], 0.5)


# ------------------------------------------------------------------------------------------ weights of a batch
def test_normalized_weights_sum_to_one_or_stay_zero():
    emb, labels = _batch()
    for loss in (TripletMarginLoss(), TripletMarginLoss(mining="batch_hard"), OSMCAALoss(attention="none"),
                 MultiSimilarityLoss(mining_epsilon=0.1)):
        pos, neg = analysis.normalized_weights(loss.details(emb, labels).weights)
        assert pos.sum() == pytest.approx(1.0) and neg.sum() == pytest.approx(1.0)
    tight = torch.eye(4)[labels] * 3
    pos, neg = analysis.normalized_weights(TripletMarginLoss().details(tight, labels).weights)
    assert float(pos.sum()) == 0.0 and float(neg.sum()) == 0.0


def test_pair_distances_of_a_similarity_loss():
    emb, labels = _batch()
    ms = MultiSimilarityLoss().details(emb, labels)
    contrastive = ContrastiveLoss().details(emb, labels)
    assert torch.allclose(analysis.pair_distances(ms), contrastive.matrix, atol=1e-3)
    assert analysis.pair_distances(contrastive) is contrastive.matrix


def test_weight_profile_hard_versus_soft():
    emb, labels = _batch(p=4, k=6, spread=0.8)
    hard = analysis.weight_profile(TripletMarginLoss(mining="batch_hard").details(emb, labels), labels)
    soft = analysis.weight_profile(build_loss("osm").details(emb, labels), labels)
    # batch-hard: one positive and one negative per anchor, the far positives and the near negatives
    assert hard["kept_positive"] <= 1 / 5 + 1e-9 and hard["kept_negative"] < 0.2
    assert hard["weighted_d_positive"] > hard["mean_d_positive"]
    assert hard["weighted_d_negative"] < hard["mean_d_negative"]
    # OSM: every positive counts, the near ones most
    assert soft["kept_positive"] == 1.0
    assert soft["weighted_d_positive"] < soft["mean_d_positive"]
    assert soft["weighted_d_negative"] < soft["mean_d_negative"]
    assert hard["mean_d_positive"] == pytest.approx(soft["mean_d_positive"])


def test_summarize_runs():
    class Run:
        def __init__(self, value):
            self.metrics = {"recall@1": value}

    assert analysis.summarize_runs({"a": Run(0.5), "b": Run(np.float64(0.25))}, "recall@1") == {"a": 0.5, "b": 0.25}


def test_neighbour_agreement_matches_a_loop():
    gen = torch.Generator().manual_seed(3)
    emb, labels = torch.randn(30, 4, generator=gen, dtype=torch.float64), torch.arange(30) % 4
    k = 3
    unit = emb / emb.norm(dim=1, keepdim=True)
    shares = []
    for i in range(30):
        d = [(float((unit[i] - unit[j]).norm()), j) for j in range(30) if j != i]
        nearest = [j for _, j in sorted(d)[:k]]
        shares.append(sum(int(labels[j] == labels[i]) for j in nearest) / k)
    assert analysis.neighbour_agreement(emb, labels, k=k) == pytest.approx(sum(shares) / 30)


def test_neighbour_agreement_of_separated_classes_is_one_and_k_is_checked():
    labels = torch.arange(20) % 2
    emb = torch.stack([torch.ones(20), torch.zeros(20)], 1) * (labels == 0)[:, None] \
        + torch.stack([torch.zeros(20), torch.ones(20)], 1) * (labels == 1)[:, None] + 0.01 * torch.randn(20, 2)
    assert analysis.neighbour_agreement(emb, labels, k=5) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        analysis.neighbour_agreement(emb, labels, k=20)
