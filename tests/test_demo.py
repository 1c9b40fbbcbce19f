from dmlbook import demo


def test_demo_trains_every_loss_above_chance(capsys):
    results = demo.run(steps=40)
    assert set(results) == {"contrastive", "triplet (batch hard)", "osm_caa"}
    for r in results.values():
        assert 0.0 <= r["trivial_start"] <= 1.0 and 0.0 <= r["trivial_end"] <= 1.0
        assert r["recall@1"] > 3 / 16  # 16 held-out classes: chance is 1/16
    assert demo.main(["--steps", "5"]) == 0
    assert "Recall@1" in capsys.readouterr().out
