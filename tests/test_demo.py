"""dmlbook.experiments.demo: the one-minute smoke demo, directly and as ``python -m dmlbook demo``."""

from dmlbook.__main__ import main as dmlbook_main
from dmlbook.experiments import demo


def test_demo_trains_every_loss_above_chance(capsys):
    results = demo.run(steps=40)
    assert set(results) == {"contrastive", "triplet (batch hard)", "osm_caa"}
    for r in results.values():
        assert 0.0 <= r["trivial_start"] <= 1.0 and 0.0 <= r["trivial_end"] <= 1.0
        assert r["recall@1"] > 3 / 16  # 16 held-out classes: chance is 1/16
    assert demo.main(["--steps", "5"]) == 0
    assert "Recall@1" in capsys.readouterr().out


def test_the_command_line_dispatches_to_the_demo(capsys):
    assert dmlbook_main(["demo", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "trivial@start" in out and "osm_caa" in out
