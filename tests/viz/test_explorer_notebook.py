"""Under papermill the explorer renders a static figure (no widget): the book's notebooks run this way."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "explorer" / "explorer_demo.ipynb"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.mark.notebook
def test_papermill_run_shows_a_static_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    papermill = pytest.importorskip("papermill")
    import nbformat

    from dmlbook import book

    monkeypatch.delenv("DMLBOOK_EXPLORER_STATIC", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / FIXTURE.name
    papermill.execute_notebook(
        str(FIXTURE),
        str(out),
        cwd=str(tmp_path),
        progress_bar=False,
        execution_timeout=300,
        kernel_manager_class=book.current_python_kernel_manager(),
    )
    cell = nbformat.read(out, as_version=4).cells[-1]
    assert "explorer.show()" in cell.source
    bundles = [o.get("data", {}) for o in cell.outputs if o.get("output_type") == "display_data"]
    assert len(bundles) == 1, cell.outputs
    assert "image/png" in bundles[0] and WIDGET_MIME not in bundles[0]
    assert bundles[0]["text/plain"].startswith("EmbeddingExplorer(n_samples=48, n_snapshots=3")
