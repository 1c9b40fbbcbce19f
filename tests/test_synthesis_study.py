"""The chapter-5 experiment (dmlbook.experiments.synthesis_study): the variants' losses, the mining statistics a
MiningTrace records, one run against the loop it replaces, and the study's bookkeeping, on generated blobs."""

from __future__ import annotations

import math

import pytest
import torch

from dmlbook.evaluation import evaluate
from dmlbook.experiments import synthesis_study as ss
from dmlbook.losses import AngularLoss, NPairsLoss, TripletMarginLoss
from dmlbook.synthesis import SymmetricalSynthesis
from dmlbook.train import StepInfo, build_model_for, embed, fit, load_splits


def tiny_config(seed: int = 0):
    return ss.study_config("synthetic", seed, pairs_per_batch=4, epochs=2, batches_per_epoch=3, device="cpu")


def test_make_loss_variants():
    assert isinstance(ss.make_loss("triplet", "plain"), TripletMarginLoss)
    symm = ss.make_loss("angular", "symm", loss_args={"alpha": 40.0}, synthesis_args={"ratio": 1.5})
    assert isinstance(symm, SymmetricalSynthesis) and isinstance(symm.loss, AngularLoss)
    assert symm.ratio == 1.5 and symm.variant == "paper" and symm.hardness == "angular"
    official = ss.make_loss("npairs", "official")
    assert official.variant == "official" and isinstance(official.loss, NPairsLoss)
    with pytest.raises(ValueError, match="NPairsLoss only"):
        ss.make_loss("triplet", "official")
    with pytest.raises(ValueError, match="symmetrical synthesis wraps"):
        ss.make_loss("contrastive", "symm")
    with pytest.raises(ValueError, match="variant must be one of"):
        ss.make_loss("triplet", "mirror")


def test_study_config_is_p_by_2():
    config = tiny_config(3)
    assert (config.batch_p, config.batch_k, config.seed, config.epochs) == (4, 2, 3, 2)
    assert config.model == "mlp" and config.progress is False


def test_mining_statistics_of_a_batch():
    torch.manual_seed(0)
    emb = torch.randn(12, 8)  # (B, D) 6 classes x 2
    labels = torch.arange(6).repeat_interleave(2)
    loss = ss.make_loss("triplet", "symm")
    stats = ss.mining_statistics(StepInfo(0, 0, 0.0, emb, labels, torch.nn.Identity(), loss))
    m = loss.mine(emb, labels)
    gain = (m.hardest_score - m.hardest_original_score)[m.hardest >= 0]  # (B * (C - 1),)
    assert gain.numel() == 12 * 5
    assert stats["min_gain"] == pytest.approx(float(gain.min())) and stats["min_gain"] >= 0.0
    assert stats["mean_gain"] == pytest.approx(float(gain.mean()))
    assert stats["synthetic_fraction"] == pytest.approx(m.synthetic_fraction)
    assert 0.0 <= stats["synthetic_fraction"] <= 1.0
    assert stats["gain_when_synthetic"] >= stats["mean_gain"]  # the non-synthetic choices gain exactly 0
    with pytest.raises(TypeError, match="needs a SymmetricalSynthesis loss"):
        ss.mining_statistics(StepInfo(0, 0, 0.0, emb, labels, torch.nn.Identity(), TripletMarginLoss()))


def test_train_one_is_the_loop_it_replaces(one_thread):
    config = tiny_config()
    splits = load_splits(config)
    metrics, history, mining = ss.train_one(config, "triplet", "symm", splits, track=True)
    assert len(history) == 2 and metrics["epochs"] == 2 and metrics["seed"] == 0 and metrics["batch_p"] == 4
    assert len(mining) == 6 and [r["step"] for r in mining] == list(range(6))  # every step traced
    assert all(r["min_gain"] >= 0.0 for r in mining)
    # the same as seeding, building the model, fit() and evaluate() by hand
    torch.manual_seed(config.seed)
    model = build_model_for(config, splits[0][0][0])
    fit(model, ss.make_loss("triplet", "symm"), splits[0], val_set=splits[1], config=config)
    expected = evaluate(*embed(model, splits[2]), seed=config.seed)
    for key in ("recall@1", "recall@8", "map@r", "nmi"):
        assert metrics[key] == pytest.approx(expected[key], rel=0, abs=0), key
    plain, _, none = ss.train_one(config, "triplet", "plain", splits)
    assert none is None and plain["recall@1"] != metrics["recall@1"]  # the synthesis changed the training


def test_run_study_bookkeeping(one_thread):
    lines = []
    study = ss.run_study(
        ["synthetic"],
        ["triplet", "npairs"],
        {"synthetic": [0]},
        pairs_per_batch=4,
        epochs=1,
        batches_per_epoch=2,
        test_samples={"synthetic": 100},
        device="cpu",
        report=lines.append,
    )
    assert study.runs == 5 and len(lines) == 5  # 2 losses x 2 variants + the official N-pair
    assert set(study.results["synthetic"]) == {"triplet", "npairs"}
    assert all(
        len(study.results["synthetic"][loss][v]) == 1 for loss in ("triplet", "npairs") for v in ss.VARIANTS
    )
    assert len(study.official["synthetic"]) == 1 and study.batch_p == {"synthetic": 4}
    assert study.mining_run == ("synthetic", 0, "triplet") and len(study.mining) == 2
    assert 0.0 < study.raw["synthetic"]["recall@1"] <= 1.0
    run = study.results["synthetic"]["triplet"]["plain"][0]
    assert run["wall_seconds"] > 0 and 0.0 <= run["recall@1"] <= 1.0 and not math.isnan(run["map@r"])
    assert set(study.histories) == {
        ("synthetic", 0, loss, v) for loss in ("triplet", "npairs") for v in ss.VARIANTS
    } | {("synthetic", 0, "npairs", "official")}
    with pytest.raises(ValueError, match="at least one seed"):
        ss.run_study(["synthetic"], ["triplet"], {"synthetic": []})
    with pytest.raises(ValueError, match="symmetrical synthesis wraps"):
        ss.run_study(["synthetic"], ["contrastive"], {"synthetic": [0]})
