"""EmbeddingExplorer without a browser: projections, alignment, neighbours, panels and the widget callbacks.

ipywidgets work without a kernel (their comm is a no-op), so the tests set slider / dropdown values, send the
plotly FigureWidget the same point messages the browser sends, and read the panels back.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from dmlbook.evaluation import knn
from dmlbook.viz import EmbeddingExplorer
from dmlbook.viz import explorer as ex_mod
from dmlbook.viz._images import check_images, png_bytes, to_uint8_image
from dmlbook.viz.explorer import Neighbors, is_interactive, pca_2d, procrustes_align
from dmlbook.viz.explorer import projection as projection_mod

ROOT = Path(__file__).resolve().parents[2]
N_CLASSES, PER_CLASS, DIM, SNAPS = 4, 10, 8, 3
N = N_CLASSES * PER_CLASS


@pytest.fixture
def data() -> dict:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    centres = rng.normal(size=(N_CLASSES, DIM))
    noise = rng.normal(size=(N, DIM))
    snaps = [((s + 1) * 1.5 * centres[labels] + noise).astype(np.float32) for s in range(SNAPS)]
    return {
        "snapshots": snaps,
        "labels": labels,
        "images": (rng.random((N, 6, 6)) * 255).astype(np.uint8),
        "attention": [rng.random(N) for _ in range(SNAPS)],
        "outlier": np.arange(N) % 9 == 0,
        "split": np.where(np.arange(N) % 4 == 0, "test", "train"),
        "names": ["ant", "bee", "cat", "dog"],
    }


def explorer_args(data: dict) -> dict:
    """The keyword arguments of the explorer of ``data`` (everything but the snapshots and labels)."""
    return {
        "images": data["images"],
        "attention": data["attention"],
        "outlier": data["outlier"],
        "split": data["split"],
        "names": data["names"],
        "projection": "pca",
        "k": 3,
        "snapshot_names": ["epoch 0", "epoch 1", "epoch 2"],
    }


def make(data: dict, **kwargs) -> EmbeddingExplorer:
    return EmbeddingExplorer(data["snapshots"], data["labels"], **{**explorer_args(data), **kwargs})


def points_message(event: str, positions: list[int], trace: int = 0) -> dict:
    """What plotly's front end sends to the FigureWidget for a hover / click / selection."""
    return {
        "event_type": event,
        "points": {
            "trace_indexes": [trace] * len(positions),
            "point_indexes": positions,
            "xs": [0.0] * len(positions),
            "ys": [0.0] * len(positions),
        },
        "device_state": None,
        "selector": None,
    }


def panel_index(html: str) -> str:
    return html.split('data-index="', 1)[1].split('"', 1)[0]


# ------------------------------------------------------------------------------------------ core logic
def test_import_does_not_load_viz_extras_and_logic_works_without_them() -> None:
    code = textwrap.dedent(
        """
        import sys, importlib.abc
        BLOCKED = ("plotly", "ipywidgets", "umap", "matplotlib", "anywidget")
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked {name}")
        sys.meta_path.insert(0, Block())
        import numpy as np
        import dmlbook.viz
        from dmlbook.viz import EmbeddingExplorer
        x = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
        e = EmbeddingExplorer(x, np.arange(20) % 2, projection="pca", k=2)
        assert e.coords().shape == (20, 2)
        assert "data-index=\\"3\\"" in e.details_html(3)
        try:
            e.ui
        except ImportError as err:
            assert "dmlbook[viz]" in str(err), err
        else:
            raise SystemExit("the widget should need plotly / ipywidgets")
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_procrustes_recovers_rotation_reflection_scale_and_shift() -> None:
    rng = np.random.default_rng(1)
    target = rng.normal(size=(50, 2))
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.diag([1.0, -1.0])
    moving = 3.7 * target @ rot + np.array([5.0, -2.0])
    np.testing.assert_allclose(procrustes_align(moving, target), target, atol=1e-10)
    with pytest.raises(ValueError, match="moving and target"):
        procrustes_align(moving[:, :1], target)


def test_snapshot_maps_are_aligned_so_points_do_not_jump(data: dict) -> None:
    # snapshot 1 is snapshot 0 rotated in the embedding space: PCA gives the same map up to a rotation or
    # reflection, which the alignment removes
    x0 = data["snapshots"][0]
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(DIM, DIM)))
    snaps = [x0, (x0 @ q).astype(np.float32)]
    aligned = EmbeddingExplorer(snaps, data["labels"], projection="pca")
    np.testing.assert_allclose(aligned.coords(1), aligned.coords(0), atol=1e-4)
    raw = EmbeddingExplorer(snaps, data["labels"], projection="pca", align="none")
    np.testing.assert_allclose(
        np.abs(raw.coords(0)), np.abs(pca_2d(aligned._snapshots[0].numpy())), atol=1e-5
    )
    # frames of a training run move less after alignment
    run = make(data)
    unaligned = make(data, align="none")
    moved = np.linalg.norm(run.coords(2) - run.coords(1), axis=1).mean()
    assert moved <= np.linalg.norm(unaligned.coords(2) - unaligned.coords(1), axis=1).mean() + 1e-9


def test_given_coordinates_are_used_as_given(data: dict) -> None:
    coords = np.random.default_rng(3).normal(size=(SNAPS, N, 2))
    e = make(data, projection=coords)
    for s in range(SNAPS):
        np.testing.assert_array_equal(e.coords(s), coords[s])
    single = EmbeddingExplorer(data["snapshots"][0], data["labels"], projection=torch.tensor(coords[0]))
    np.testing.assert_array_equal(single.coords(), coords[0])


def test_projections_are_cached_per_snapshot(data: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = ex_mod.pca_2d
    # the cache lives next to the projections (dmlbook.viz.explorer.projection)
    monkeypatch.setattr(projection_mod, "pca_2d", lambda x: calls.append(1) or real(x))
    ex_mod._PROJECTION_CACHE.clear()
    assert ex_mod._PROJECTION_CACHE is projection_mod._PROJECTION_CACHE
    e = make(data)
    e.precompute()
    e.coords(1)
    assert len(calls) == SNAPS
    make(data).precompute()  # same data: the module cache answers
    assert len(calls) == SNAPS


def test_neighbours_are_the_exact_knn_in_embedding_space(data: dict) -> None:
    e = make(data, k=4)
    for s in range(SNAPS):
        emb = torch.nn.functional.normalize(torch.from_numpy(data["snapshots"][s]), dim=1)
        dists, idx = knn(emb, emb, 4, exclude_self=True, backend="torch")
        for i in range(N):
            nb = e.neighbors(i, snapshot=s)
            assert isinstance(nb, Neighbors) and nb.index == i and nb.snapshot == s
            assert nb.indices.tolist() == idx[i].tolist()
            np.testing.assert_allclose(nb.distances, dists[i].numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(nb.same_class, data["labels"][nb.indices] == data["labels"][i])
            assert set(nb.other_class.tolist()) == set(nb.indices[~nb.same_class].tolist())
    # without normalisation the raw Euclidean geometry is used
    raw = make(data, normalize=False, k=2)
    emb = torch.from_numpy(data["snapshots"][2])
    _, idx = knn(emb, emb, 2, exclude_self=True, backend="torch")
    assert raw.neighbors(5).indices.tolist() == idx[5].tolist()


def test_details_panel_shows_sample_label_image_and_marked_neighbours(data: dict) -> None:
    e = make(data)
    assert panel_index(e.details_html()) == ""  # nothing inspected yet
    # a sample with a neighbour of another class in the first snapshot (the classes overlap most there)
    i = next(i for i in range(N) if (~e.neighbors(i, 0).same_class).any())
    html = e.details_html(i, snapshot=0)
    nb = e.neighbors(i, 0)
    assert f'data-index="{i}"' in html and f"sample #{i}" in html and "epoch 0" in html
    assert f"class <b>{data['names'][data['labels'][i]]}</b>" in html
    assert 'class="dmlbook-sample-image" src="data:image/png;base64,' in html
    for j, same in zip(nb.indices, nb.same_class):
        row = f'class="dmlbook-nbr {"same-class" if same else "other-class"}" data-index="{j}"'
        assert row in html
    assert f"{int((~nb.same_class).sum())} of 3 of another class" in html
    assert "split <b>" in html and "attention <b>" in html
    # without images: a summary of the feature vector
    plain = EmbeddingExplorer(data["snapshots"], data["labels"], projection="pca", k=2)
    html = plain.details_html(0)
    assert "dmlbook-feature-summary" in html and "<svg" in html and f"D = {DIM}" in html


def test_selection_panel_lists_the_chosen_samples(data: dict) -> None:
    e = make(data)
    assert 'data-count="0"' in e.selection_html()
    e.select([3, 1, 1, 25])
    assert e.selected.tolist() == [1, 3, 25]
    html = e.selection_html()
    assert 'data-count="3"' in html and "3 selected" in html
    for i in (1, 3, 25):
        assert f'<tr data-index="{i}">' in html
    assert "ant: 2" in html and "cat: 1" in html and "injected outliers" in html
    many = make(data)
    many.select(np.arange(N))
    assert f"… and {N - 25} more" in many.selection_html()
    with pytest.raises(ValueError, match="indices must lie in"):
        e.select([N])
    with pytest.raises(TypeError, match="indices"):
        e.select([0.5])


# --------------------------------------------------------------------------------------------- widget
def test_widget_slider_moves_points_and_updates_the_panel(data: dict) -> None:
    e = make(data)
    ui = e.ui
    points = ui.figure.data[0]
    assert ui.snapshot.value == SNAPS - 1 and e.snapshot == SNAPS - 1
    np.testing.assert_allclose(points.x, e.coords(SNAPS - 1)[:, 0], rtol=1e-6)
    e.inspect(7)
    ui.snapshot.value = 0
    assert e.snapshot == 0
    np.testing.assert_allclose(points.x, e.coords(0)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(points.y, e.coords(0)[:, 1], rtol=1e-6)
    assert 'data-snapshot="0"' in ui.details.value and "epoch 0" in ui.details.value
    # neighbours of the inspected sample are recomputed in the new snapshot's space and drawn there
    nb = e.neighbors(7, 0)
    assert list(ui.figure.data[2].x) == pytest.approx(e.coords(0)[nb.indices, 0].tolist())
    assert list(ui.figure.data[3].x) == pytest.approx([e.coords(0)[7, 0]])
    # attention colours follow the snapshot
    ui.color_by.value = "attention"
    ui.snapshot.value = 1
    np.testing.assert_allclose(points.marker.color, data["attention"][1], rtol=1e-6)
    # the programmatic setter moves the slider without echoing back
    e.set_snapshot(2)
    assert ui.snapshot.value == 2


def test_widget_hover_and_click_fill_the_panel(data: dict) -> None:
    e = make(data)
    ui = e.ui
    fig = ui.figure
    fig._js2py_pointsCallback = points_message("plotly_hover", [5])
    assert e.current == 5 and panel_index(ui.details.value) == "5" and "(hover)" in ui.details.value
    fig._js2py_pointsCallback = points_message("plotly_click", [11])
    assert e.current == 11 and panel_index(ui.details.value) == "11" and "(click)" in ui.details.value
    nb = e.neighbors(11)
    for j in nb.indices:
        assert f'data-index="{j}"' in ui.details.value
    links, nbr_trace, current = fig.data[1:]
    assert len(nbr_trace.x) == 3 and len(current.x) == 1 and len(links.x) == 3 * 3
    assert list(nbr_trace.marker.symbol) == ["circle-open" if s else "x-open" for s in nb.same_class]
    # clicking a neighbour marker inspects that neighbour
    fig._js2py_pointsCallback = points_message("plotly_click", [1], trace=2)
    assert e.current == int(nb.indices[1])
    e.inspect(None)
    assert panel_index(ui.details.value) == "" and len(fig.data[3].x) == 0


def test_widget_colour_modes_and_bad_mode(data: dict) -> None:
    e = make(data)
    ui = e.ui
    assert list(ui.color_by.options) == ["class", "attention", "outlier", "split"]
    marker = ui.figure.data[0].marker
    np.testing.assert_array_equal(marker.color, np.searchsorted(np.arange(4), data["labels"]))
    assert list(marker.colorbar.ticktext) == data["names"]
    ui.color_by.value = "outlier"
    np.testing.assert_array_equal(marker.color, data["outlier"].astype(float))
    assert list(marker.colorbar.ticktext) == ["inlier", "outlier"]
    ui.color_by.value = "split"
    assert list(marker.colorbar.ticktext) == ["test", "train"]
    ui.color_by.value = "attention"
    assert marker.cmin == pytest.approx(min(a.min() for a in data["attention"]))
    with pytest.raises(ValueError, match="color_by must be one of"):
        e.set_color_by("loss")
    bare = EmbeddingExplorer(data["snapshots"], data["labels"], projection="pca")
    assert list(bare.ui.color_by.options) == ["class"]
    with pytest.raises(ValueError, match="color_by='attention' needs"):
        bare.set_color_by("attention")


def test_widget_class_filter_and_click_mapping(data: dict) -> None:
    e = make(data)
    ui = e.ui
    ui.class_filter.value = (2,)
    visible = np.flatnonzero(data["labels"] == 2)
    assert e.visible.tolist() == visible.tolist()
    points = ui.figure.data[0]
    assert len(points.x) == visible.size
    np.testing.assert_allclose(points.x, e.coords()[visible, 0], rtol=1e-6)
    assert points.hovertext[0].startswith(f"#{visible[0]} ")
    # position 3 in the filtered trace is the 4th sample of class 2
    ui.figure._js2py_pointsCallback = points_message("plotly_click", [3])
    assert e.current == int(visible[3])
    ui.class_filter.value = ()
    assert len(points.x) == N
    with pytest.raises(ValueError, match="classes contains labels"):
        e.set_class_filter([9])


def test_widget_lasso_selection_lists_samples_and_clears(data: dict) -> None:
    e = make(data)
    ui = e.ui
    ui.class_filter.value = (1, 3)
    visible = e.visible
    ui.figure._js2py_pointsCallback = points_message("plotly_selected", [0, 2, 15])
    chosen = sorted(int(visible[p]) for p in (0, 2, 15))
    assert e.selected.tolist() == chosen
    assert f'data-count="{len(chosen)}"' in ui.selection.value
    for i in chosen:
        assert f'<tr data-index="{i}">' in ui.selection.value
    assert list(ui.figure.data[0].selectedpoints) == [0, 2, 15]
    ui.clear.click()
    assert e.selected.size == 0 and 'data-count="0"' in ui.selection.value
    e.select([chosen[0]])
    ui.figure._js2py_pointsCallback = {
        "event_type": "plotly_deselect",
        "points": {"trace_indexes": [], "point_indexes": [], "xs": [], "ys": []},
        "device_state": None,
        "selector": None,
    }
    assert e.selected.size == 0


def test_single_snapshot_hides_the_slider(data: dict) -> None:
    e = EmbeddingExplorer(
        torch.from_numpy(data["snapshots"][0]), torch.from_numpy(data["labels"]), projection="pca"
    )
    assert e.n_snapshots == 1 and e.ui.snapshot.layout.display == "none"


def test_large_maps_use_webgl(data: dict) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2500, 4)).astype(np.float32)
    e = EmbeddingExplorer(x, np.arange(2500) % 7, projection="pca")
    assert e.ui.figure.data[0].type == "scattergl"
    assert make(data).ui.figure.data[0].type == "scatter"


# --------------------------------------------------------------------------------------------- static
def test_static_figure_and_mimebundle(data: dict) -> None:
    from matplotlib.figure import Figure

    e = make(data)
    e.inspect(4)
    e.select([1, 2])
    fig = e.static_figure()
    assert isinstance(fig, Figure) and len([a for a in fig.axes if a.get_title()]) == SNAPS
    assert [a.get_title() for a in fig.axes[:SNAPS]] == ["epoch 0", "epoch 1", "epoch 2"]
    one = e.static_figure(snapshots=1, color_by="attention")
    assert len(one.axes) == 2  # the panel and its colour bar
    with pytest.raises(ValueError, match="snapshot must be in"):
        e.static_figure(snapshots=[5])
    static = make(data, static=True)._repr_mimebundle_()
    assert set(static) == {"image/png", "text/plain"}
    live = make(data, static=False)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in live
    many = EmbeddingExplorer([data["snapshots"][0]] * 7, data["labels"], projection="pca")
    assert len(many.static_figure().axes) == 4  # first, last and two between


def test_interactive_detection(monkeypatch: pytest.MonkeyPatch, data: dict) -> None:
    import IPython

    monkeypatch.delenv(ex_mod.STATIC_ENV, raising=False)
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert is_interactive() is False  # a script

    class Kernel:
        _allow_stdin = True

    class Shell:
        kernel = Kernel()

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    assert is_interactive() is True  # JupyterLab sends allow_stdin=True
    Kernel._allow_stdin = False
    assert is_interactive() is False  # nbclient (papermill) sends allow_stdin=False
    monkeypatch.setenv(ex_mod.STATIC_ENV, "0")
    assert is_interactive() is True
    monkeypatch.setenv(ex_mod.STATIC_ENV, "1")
    assert make(data)._is_static() and not make(data, static=False)._is_static()


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"labels": np.arange(N - 1)}, ValueError, "labels has"),
        ({"labels": np.linspace(0, 1, N)}, TypeError, "labels must have an integer dtype"),
        ({"images": np.zeros((N - 1, 4, 4))}, ValueError, "images has"),
        ({"images": np.zeros((N, 4, 4, 2))}, ValueError, "images must have shape"),
        ({"images": "pictures"}, TypeError, "images must be"),
        ({"attention": np.ones(N + 1)}, ValueError, "attention has"),
        ({"attention": np.full(N, np.nan)}, ValueError, "attention contains NaN"),
        ({"attention": np.ones((2, N))}, ValueError, "attention has 2 snapshots"),
        ({"outlier": np.ones(N - 2, bool)}, ValueError, "outlier has"),
        ({"outlier": np.full(N, 3)}, ValueError, "outlier must be a boolean mask"),
        ({"split": ["train"] * (N + 1)}, ValueError, "split has"),
        ({"names": ["a", "b"]}, ValueError, "names has 2 entries"),
        ({"names": {0: "a"}}, ValueError, "names has no entry"),
        ({"names": "abcd"}, TypeError, "names must be"),
        ({"names": {"a": "x"}}, TypeError, "names must map int labels"),
        ({"snapshot_names": ["a"]}, ValueError, "snapshot_names has 1"),
        ({"color_by": "colour"}, ValueError, "color_by must be one of"),
        ({"projection": "tsne"}, ValueError, "projection must be one of"),
        ({"projection": np.zeros((SNAPS, N, 3))}, ValueError, r"projection coordinates must have shape"),
        ({"projection": np.full((N, 2), np.nan)}, ValueError, "projection gives coordinates for 1"),
        ({"projection": np.full((SNAPS, N, 2), np.inf)}, ValueError, "contain NaN"),
        ({"k": 0}, ValueError, "k must be"),
        ({"k": N}, ValueError, "k must be"),
        ({"k": 2.0}, TypeError, "k must be an int"),
        ({"align": "rigid"}, ValueError, "align must be one of"),
        ({"align": "umap_init"}, ValueError, "align='umap_init' needs projection='umap'"),
        ({"static": "yes"}, TypeError, "static must be"),
        ({"umap_kwargs": [1]}, TypeError, "umap_kwargs"),
        ({"height": 10}, ValueError, "height must be"),
    ],
)
def test_bad_arguments_name_the_argument(data: dict, change: dict, error: type, match: str) -> None:
    labels = change.pop("labels", data["labels"])
    with pytest.raises(error, match=match):
        EmbeddingExplorer(data["snapshots"], labels, **{**explorer_args(data), **change})


def test_flexible_inputs(data: dict) -> None:
    # tensors, (S, N, D) arrays, per-snapshot attention as a tensor, names as an array or a dict
    e = EmbeddingExplorer(
        np.stack(data["snapshots"]),
        torch.from_numpy(data["labels"]).int(),
        attention=torch.from_numpy(np.stack(data["attention"])),
        outlier=data["outlier"].tolist(),
        names=np.array(data["names"]),
        projection="pca",
    )
    assert e.n_snapshots == SNAPS and e.class_names == dict(enumerate(data["names"]))
    shifted = EmbeddingExplorer(
        data["snapshots"][0],
        data["labels"] + 100,
        names={100: "a", 101: "b", 102: "c", 103: "d"},
        projection="pca",
    )
    assert "class <b>c</b> (label 102)" in shifted.details_html(25)
    assert make(data).snapshot == SNAPS - 1  # opens on the trained embedding


def test_bad_embeddings_name_the_argument(data: dict) -> None:
    labels = data["labels"]
    x = data["snapshots"][0]
    with pytest.raises(ValueError, match=r"embeddings must be 2-D"):
        EmbeddingExplorer(x[:, 0], labels)
    with pytest.raises(ValueError, match=r"embeddings\[1\] has 39 rows"):
        EmbeddingExplorer([x, x[:-1]], labels)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"embeddings\[1\] contains NaN"):
        EmbeddingExplorer([x, bad], labels)
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        EmbeddingExplorer(torch.from_numpy(bad), labels)
    with pytest.raises(TypeError, match="embeddings must be"):
        EmbeddingExplorer("x", labels)
    with pytest.raises(ValueError, match="embeddings is an empty list"):
        EmbeddingExplorer([], labels)
    e = EmbeddingExplorer(x, labels, projection="pca")
    with pytest.raises(ValueError, match="index must be in"):
        e.neighbors(N)
    with pytest.raises(ValueError, match="snapshot must be in"):
        e.set_snapshot(1)


def test_images_are_rendered_for_common_layouts() -> None:
    rng = np.random.default_rng(0)
    for img in (
        rng.random((5, 7)),
        rng.random((3, 5, 7)),
        rng.random((5, 7, 3)),
        rng.normal(size=(1, 5, 7)),
        (rng.random((5, 7, 4)) * 255).astype(np.uint8),
        torch.rand(3, 5, 7),
    ):
        out = to_uint8_image(img)
        assert out.dtype == np.uint8 and out.shape[:2] == (5, 7)
        assert png_bytes(img).startswith(b"\x89PNG\r\n\x1a\n")
    assert check_images([np.zeros((4, 4)), np.zeros((6, 6, 3))], 2) is not None
    with pytest.raises(ValueError, match=r"images\[1\] must have shape"):
        check_images([np.zeros((4, 4)), np.zeros(4)], 2)


@pytest.mark.slow
def test_umap_projection_with_alignment_and_init(data: dict) -> None:
    pytest.importorskip("umap")
    e = make(data, projection="umap", align="umap_init", umap_kwargs={"n_epochs": 50, "n_neighbors": 8})
    e.precompute()
    for s in range(SNAPS):
        xy = e.coords(s)
        assert xy.shape == (N, 2) and np.isfinite(xy).all()
    # the slider swaps cached maps: no new fit
    before = len(ex_mod._PROJECTION_CACHE)
    e.ui.snapshot.value = 0
    assert len(ex_mod._PROJECTION_CACHE) == before
