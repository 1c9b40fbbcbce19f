"""Argument checks of dmlbook.viz.style follow dmlbook._checks: a wrong type is a TypeError, a wrong value a
ValueError, and the message names the argument."""

from __future__ import annotations

import pytest

from dmlbook import viz


@pytest.mark.parametrize(
    "call,err,match",
    [
        (lambda: viz.method_color(3), TypeError, "name must be a method name"),
        (lambda: viz.method_color("  "), ValueError, "name must be a non-empty method name"),
        (lambda: viz.setup_notebook(font_scale="big"), TypeError, "font_scale must be a number"),
        (lambda: viz.setup_notebook(font_scale=0), ValueError, "font_scale must be a finite number > 0"),
        (lambda: viz.setup_notebook(figure_format=None), ValueError, "figure_format must be one of"),
    ],
)
def test_style_argument_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_savefig_name_must_be_a_string(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with pytest.raises(TypeError, match="name must be a file stem"):
        viz.savefig(Figure(), 7, tmp_path)
