"""End to end: the EmbeddingExplorer in a real JupyterLab, driven in Debian's Chromium with Playwright.

Starts JupyterLab on 127.0.0.1 (a free port; temporary root, settings, workspaces, config and runtime folders;
galata's test configuration from ``jupyter_server_test_config.py``), opens the fixture notebook
``tests/fixtures/explorer/explorer_demo.ipynb``, runs it, moves the snapshot slider, hovers over and clicks a
point, and checks that the panel shows that sample and its true nearest neighbours (recomputed here from the
same data). A screenshot goes to ``build/ui/explorer_browser.png``.

Needs ``playwright`` (pip; no browser download) and a Chromium binary: ``$DMLBOOK_CHROMIUM``,
``/usr/lib/chromium/chromium`` or ``chromium`` on PATH (``apt-get install chromium``; ``.ci/run`` does it).
Skipped with the reason when either is missing. Run it alone with ``python -m pytest -m browser``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "explorer" / "explorer_demo.ipynb"
CONFIG = Path(__file__).resolve().parent / "jupyter_server_test_config.py"
SCREENSHOT_DIR = ROOT / "build" / "ui"
SERVER_START_S = 60.0
UI_TIMEOUT_MS = 45_000

# JupyterLab settings: keep every cell in the DOM, no news pop-up
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def find_chromium() -> str | None:
    """The Chromium binary to drive: $DMLBOOK_CHROMIUM, Debian's real binary, or one on PATH."""
    candidates = [
        os.environ.get("DMLBOOK_CHROMIUM"),
        "/usr/lib/chromium/chromium",  # Debian's binary (/usr/bin/chromium is a shell wrapper)
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _require_tools() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; no browser download is needed)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        pytest.skip("jupyterlab is not installed (pip install 'dmlbook[book]')")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "no Chromium binary: apt-get install chromium (or set DMLBOOK_CHROMIUM to a Chromium executable)"
        )
    return chromium


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


class LabServer:
    def __init__(self, url: str, log: Path, root: Path) -> None:
        self.url, self.log, self.root = url, log, root


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabServer, str]]:
    """A JupyterLab server with the fixture notebook in its root, and the Chromium path."""
    chromium = _require_tools()
    base = tmp_path_factory.mktemp("lab")
    dirs = {
        name: base / name for name in ("root", "settings", "workspaces", "config", "runtime", "data", "tmp")
    }
    for folder in dirs.values():
        folder.mkdir()
    shutil.copy(FIXTURE, dirs["root"] / FIXTURE.name)
    for rel, value in LAB_SETTINGS.items():
        target = dirs["settings"] / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))
    port = _free_port()
    env = dict(
        os.environ,
        DMLBOOK_UI_PORT=str(port),
        DMLBOOK_UI_ROOT=str(dirs["root"]),
        DMLBOOK_UI_SETTINGS=str(dirs["settings"]),
        DMLBOOK_UI_WORKSPACES=str(dirs["workspaces"]),
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_GALATA_ROOT_DIR=str(dirs["root"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        IPYTHONDIR=str(dirs["data"] / "ipython"),
        TMPDIR=str(dirs["tmp"]),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        MPLBACKEND="Agg",
    )
    env.pop("DMLBOOK_EXPLORER_STATIC", None)
    log = base / "jupyterlab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", f"--config={CONFIG}"],
            cwd=dirs["root"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_S:.0f} s:\n{_tail(log)}")
            time.sleep(0.25)
        yield LabServer(url, log, dirs["root"]), chromium
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _expected_explorer():
    """The fixture's explorer, rebuilt here from the notebook's own code cells (without showing it)."""
    import nbformat

    nb = nbformat.read(FIXTURE, as_version=4)
    namespace: dict = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(cell.source.replace("explorer.show()", ""), namespace)  # noqa: S102 (our own fixture)
    return namespace["explorer"]


POINTS = ".dmlbook-explorer .js-plotly-plot .scatterlayer .trace:first-of-type .point"


def _point_centres(page) -> list[list[float]]:
    return page.locator(POINTS).evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); "
        "return [r.x + r.width / 2, r.y + r.height / 2]; })"
    )


def test_explorer_in_jupyterlab(lab: tuple[LabServer, str]) -> None:
    from playwright.sync_api import sync_playwright

    server, chromium = lab
    started = time.monotonic()
    expected = _expected_explorer()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "explorer_browser.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        page.set_default_timeout(UI_TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{server.url}/lab/tree/{FIXTURE.name}")
            page.wait_for_function("window.galata !== undefined && window.jupyterapp !== undefined")
            page.evaluate("() => { void window.galata.app; }")  # the getter binds window.jupyterapp
            page.locator("#jp-main-statusbar >> text=Idle").first.wait_for()
            page.evaluate("async () => { await window.galata.runActiveNotebookCellByCell(); }")
            page.wait_for_function("window.galata.haveBeenExecuted()")

            # the widget is there, with every sample drawn (SVG scatter below 2,000 points)
            page.locator(".dmlbook-explorer").wait_for()
            page.wait_for_function(
                f"document.querySelectorAll({json.dumps(POINTS)}).length === {expected.n_samples}"
            )
            page.locator(".dmlbook-explorer").first.scroll_into_view_if_needed()
            page.locator(".dmlbook-explorer .js-plotly-plot").first.scroll_into_view_if_needed()
            before = _point_centres(page)
            details = page.locator(".dmlbook-explorer-details")
            assert details.get_attribute("data-index") == ""

            # slider: from the last snapshot ("epoch 2") back to the first
            slider = page.locator(".dmlbook-explorer .widget-slider .noUi-handle").first
            readout = page.locator(".dmlbook-explorer .widget-slider .widget-readout").first
            assert readout.inner_text().strip() == "epoch 2"
            slider.focus()
            page.keyboard.press("Home")
            page.wait_for_function(
                "sel => document.querySelector(sel).textContent.trim() === 'epoch 0'",
                arg=".dmlbook-explorer .widget-slider .widget-readout",
            )
            # the kernel answered with the epoch-0 map: the points moved
            page.wait_for_function(
                """([sel, before]) => {
                    const els = [...document.querySelectorAll(sel)];
                    return els.length === before.length && els.some((e, i) => {
                        const r = e.getBoundingClientRect();
                        const dx = r.x + r.width / 2 - before[i][0], dy = r.y + r.height / 2 - before[i][1];
                        return Math.hypot(dx, dy) > 3;
                    });
                }""",
                arg=[POINTS, before],
            )
            time.sleep(0.3)  # let the restyle settle before measuring the new positions
            page.locator(".dmlbook-explorer .js-plotly-plot").first.scroll_into_view_if_needed()
            after = _point_centres(page)

            # click the most isolated point (its DOM order is its sample index: the filter shows every class)
            def gap(i: int) -> float:
                return min(
                    ((after[i][0] - p[0]) ** 2 + (after[i][1] - p[1]) ** 2) ** 0.5
                    for j, p in enumerate(after)
                    if j != i
                )

            index = max(range(len(after)), key=gap)
            x, y = after[index]
            page.mouse.move(x - 30, y - 30)
            page.mouse.move(x, y, steps=5)
            page.mouse.click(x, y)
            page.locator(f'.dmlbook-explorer-details[data-index="{index}"]').wait_for()
            page.wait_for_function(
                "document.querySelector('.dmlbook-explorer-details').textContent.includes('(click)')"
            )

            # the panel: that sample, its label, and its k nearest neighbours in the epoch-0 embedding space
            nbrs = expected.neighbors(index, snapshot=0)
            label = int(expected.labels[index])
            assert details.get_attribute("data-label") == str(label)
            assert details.get_attribute("data-snapshot") == "0"
            text = details.inner_text()
            assert f"sample #{index}" in text and expected.class_names[label] in text and "epoch 0" in text
            assert details.locator("img.dmlbook-sample-image").count() == 1
            rows = details.locator("tr.dmlbook-nbr")
            assert rows.count() == expected.k
            shown = [int(rows.nth(r).get_attribute("data-index")) for r in range(rows.count())]
            assert shown == nbrs.indices.tolist()
            other = [int(i) for i in nbrs.other_class]
            assert [
                int(i) for i in shown if "other-class" in rows.nth(shown.index(i)).get_attribute("class")
            ] == other
            summary = details.locator(".dmlbook-nbr-summary").inner_text()
            assert re.search(rf"\b{len(other)} of {expected.k} of another class", summary), summary
            # the inspected sample and its neighbours are drawn on the map
            page.wait_for_function(
                "document.querySelectorAll('.dmlbook-explorer .scatterlayer .trace:nth-of-type(3) .point')"
                f".length === {expected.k}"
            )
            page.locator(".dmlbook-explorer").first.screenshot(path=str(shot))
        except Exception as exc:
            page.screenshot(path=str(SCREENSHOT_DIR / "explorer_browser_failure.png"), full_page=True)
            raise AssertionError(
                f"browser test failed ({type(exc).__name__}: {exc}); screenshot in {SCREENSHOT_DIR}; "
                f"page errors: {errors[:5]}\nserver log:\n{_tail(server.log)}"
            ) from exc
        finally:
            browser.close()
    assert shot.exists()
    assert time.monotonic() - started < 120, "the browser test should take well under a minute"
