"""End to end: `stratascope dashboard` in a subprocess, every page driven in headless Chromium.

Checks that each page renders its plotly charts and no Streamlit exception, that typing a
sentence updates the Attention page, that the Probes page draws the causal-erasure curve of
results that include erasure, and the two axes (lexical share, depth) and the verdict's effect
size of a run on planted data, that a path outside the root is refused, and saves one
screenshot per page to build/screenshots/ (the README's pictures in docs/screenshots/ are made by
pointing STRATASCOPE_SCREENSHOTS there while driving the real demo run).

Skipped (with the reason) only when Playwright or Chromium is missing; with
STRATASCOPE_REQUIRE_BROWSER=1 (CI) a missing browser is a failure. Knobs: STRATASCOPE_CHROMIUM
(default /usr/bin/chromium), STRATASCOPE_SCREENSHOTS (default build/screenshots), and
STRATASCOPE_BROWSER_RUNS / STRATASCOPE_BROWSER_RUN to drive a real runs root (e.g. runs / demo)
instead of the tiny fixture.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dashboard_fixtures import runs_root  # noqa: F401 - fixture
from hf_arch_fixtures import arch_dir

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("STRATASCOPE_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("STRATASCOPE_SCREENSHOTS", REPO / "build" / "screenshots"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# url path, file name, title, minimum number of plotly charts
PAGES = [
    ("", "run", "Run", 4),
    ("attention", "attention", "Attention", 8),
    ("residual", "residual", "Residual stream", 10),
    ("drift", "drift", "Activation drift", 6),
    ("probes", "probes", "Probes", 4),
    ("compare", "compare", "Compare", 11),
]


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; no browser download is needed)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set STRATASCOPE_CHROMIUM)"
    return None


REASON = _missing_browser()
if REASON and os.environ.get("STRATASCOPE_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"the browser test is required here (STRATASCOPE_REQUIRE_BROWSER=1) but {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited with status {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the dashboard did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def server_root(request) -> Path:
    given = os.environ.get("STRATASCOPE_BROWSER_RUNS")
    return Path(given) if given else request.getfixturevalue("runs_root")


@contextlib.contextmanager
def dashboard(root: Path, *extra: str, keep_gpt2: bool = False):
    """`stratascope dashboard --runs ROOT [extra]` in a subprocess; yields its URL."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if not keep_gpt2:
        env.pop("STRATASCOPE_GPT2", None)  # the fixture's pages as the AppTest tests see them
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "dashboard", "--runs", str(root), "--port", str(port),
                             *extra], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(server_root):
    with dashboard(server_root, keep_gpt2=bool(os.environ.get("STRATASCOPE_BROWSER_RUNS"))) as url:
        yield url, os.environ.get("STRATASCOPE_BROWSER_RUN") or "tiny"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def settle(page, min_plots: int = 0, timeout: float = 180) -> None:
    """Wait until the script run is over (no status widget for a while) and the charts are drawn."""
    deadline = time.time() + timeout
    quiet = 0
    while time.time() < deadline:
        running = (page.locator('[data-testid="stStatusWidget"]').count()
                   + page.locator('[data-testid="stSpinner"]').count())
        ready = page.locator("h1").count() > 0 and page.locator(".js-plotly-plot").count() >= min_plots
        quiet = quiet + 1 if (not running and ready) else 0
        if quiet >= 4:
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"the page did not settle within {timeout} s "
                         f"({page.locator('.js-plotly-plot').count()} charts, wanted {min_plots})")


def no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.all_inner_texts()


def test_every_page_in_chromium(server, browser):
    url, run = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    for path, name, title, min_plots in PAGES:
        page.goto(f"{url}/{path}?run={run}")
        settle(page, min_plots)
        no_exception(page)
        assert title in page.locator("h1").all_inner_texts()[-1]
        n = page.locator(".js-plotly-plot").count()
        assert n >= min_plots, (name, n)
        assert page.locator(".js-plotly-plot .main-svg").count() >= min_plots  # drawn, not just placeholders
        screenshot(page, SHOTS / f"{name}.png")
    page.close()


def test_the_run_page_at_its_own_address(server, browser):
    """/run is the Run page too (Streamlit serves the start page at "/" only, unless told)."""
    url, run = server
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(f"{url}/run?run={run}")
    settle(page, 4)
    no_exception(page)
    assert page.get_by_text("Page not found").count() == 0
    assert page.locator("h1").all_inner_texts()[-1].startswith("Run")
    page.close()


def screenshot(page, path: Path, max_height: int = 3200) -> None:
    """The page down to its end (up to max_height px): Streamlit scrolls inside its main
    container, so the viewport is grown to the content's height first."""
    height = page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMain"]') || document.scrollingElement;
        return main.scrollHeight; }""")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, size["height"]), max_height))})
    page.wait_for_timeout(800)  # plotly redraws on resize
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def test_typing_a_sentence(server, browser):
    url, run = server
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{url}/attention?run={run}")
    settle(page, 5)
    box = page.get_by_label("…or type one (words separated by spaces)")
    box.fill("the dogs near the old cat sleep .")
    box.press("Enter")
    page.wait_for_timeout(1000)
    settle(page, 5)
    no_exception(page)
    assert page.get_by_text("7·sleep").count() > 0  # the new tokens label the heatmaps
    page.close()


def test_erasure_curve_in_chromium(server, server_root, browser):
    url, run = server
    probes_dir = server_root / run / "probes"
    tags = sorted(p for p in probes_dir.iterdir() if (p / "results.json").is_file()) if probes_dir.is_dir() else []
    if not tags or '"erasure"' not in (tags[0] / "results.json").read_text():  # the page shows the first tag
        pytest.skip(f"the probing results of {run} include no erasure")  # the fixture's always do
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(f"{url}/probes?run={run}")
    settle(page, 5)
    no_exception(page)
    chart = page.locator(".st-key-probes_erasure .js-plotly-plot")
    chart.scroll_into_view_if_needed()
    assert chart.count() == 1
    assert chart.locator(".main-svg").count() >= 1  # drawn, not a placeholder
    assert "Causal erasure" in chart.locator(".gtitle").text_content()
    assert chart.locator(".scatterlayer .trace").count() >= 4  # erased and random curves, main model and twin
    assert page.get_by_text("Causal erasure", exact=True).count() >= 1  # the section's header
    page.close()


def test_two_axes_and_effect_sizes_in_chromium(runs_root, browser, tmp_path_factory):  # noqa: F811
    """The Probes page of a run whose verdict compares levels (planted data, served from a root of
    its own): the two-axes figure drawn with a marker per task, and the effect size in the verdict."""
    from test_probes_report_axes import planted_results, planted_run

    from probes.report import effect_text

    results = planted_results()
    run = planted_run(runs_root / "tiny", tmp_path_factory.mktemp("planted") / "runs")
    effect = effect_text(results.verdict.pairs[0])
    assert effect in results.verdict.message
    with dashboard(run.parent) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{url}/probes?run={run.name}")
        settle(page, 6)  # axes, curves, selectivity, λ curves, expected layers, MDL
        no_exception(page)
        chart = page.locator(".st-key-probes_axes .js-plotly-plot")
        chart.scroll_into_view_if_needed()
        assert chart.count() == 1 and chart.locator(".main-svg").count() >= 1  # drawn, not a placeholder
        assert "Two axes per task" in chart.locator(".gtitle").text_content()
        labels = [t.strip() for t in chart.locator(".scatterlayer .textpoint").all_text_contents()]
        assert labels == ["t1", "t2"]  # the tasks with a depth; t0 and len on the "–" row, named in a note
        assert chart.locator(".scatterlayer .point").count() >= 8  # 4 tasks × (model, twin)
        assert "–" in [t.strip() for t in chart.locator(".ytick").all_text_contents()]
        assert "depth undefined (–), planted: t0, len" in chart.locator(".annotation-text").all_text_contents()
        assert page.get_by_text("Two axes: lexical share and depth", exact=True).count() == 1  # the header
        verdict = page.get_by_text(effect, exact=False)  # in the verdict box: "late − middle = +1.00 layers [...]"
        assert verdict.count() >= 1 and "hierarchy HOLDS on the depth axis" in verdict.first.text_content()
        lam = page.locator(".st-key-probes_lambda .js-plotly-plot")
        assert lam.count() == 1 and lam.locator(".main-svg").count() >= 1
        screenshot(page, SHOTS / "probes-planted.png")
        page.close()


def test_refusal_in_the_browser(server, browser):
    url, _ = server
    page = browser.new_page()
    bad_names = ["..", "%2Fetc", "..%2F..%2Fetc"] + ([] if os.environ.get("STRATASCOPE_BROWSER_RUNS") else ["escape"])
    for bad in bad_names:
        page.goto(f"{url}/attention?run={bad}")
        settle(page)
        no_exception(page)
        assert page.get_by_text("refused").count() > 0, bad
        assert page.locator(".js-plotly-plot").count() == 0
    page.close()


def test_compare_with_a_llama_through_the_bridge(server_root, browser, tmp_path_factory):
    """The Compare page with a tiny random Llama (tests/hf_arch_fixtures.py) as the comparison model,
    loaded through TransformerLens's bridge (`--gpt2 tl:DIR`): three models in every chart, no error."""
    run = os.environ.get("STRATASCOPE_BROWSER_RUN") or "tiny"
    llama = arch_dir("llama", tmp_path_factory)
    with dashboard(server_root, "--gpt2", f"tl:{llama}") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{url}/compare?run={run}")
        settle(page, 12)  # the 11 charts of the two-model page + the Llama's CKA heatmap
        no_exception(page)
        assert page.get_by_text("failed:").count() == 0  # no section fell back to an error box
        assert page.get_by_text(f"tl:{llama}").count() >= 1  # the configured comparison model
        for key in ("compare_norm", "compare_rel", "compare_cos", "compare_prev", "compare_lens_kl"):
            chart = page.locator(f".st-key-{key} .js-plotly-plot")
            assert chart.count() == 1 and chart.locator(".main-svg").count() >= 1, key
            legend = [t.strip() for t in chart.locator(".legendtext").all_text_contents()]
            assert legend == ["our model", "random-init twin", "GPT-2"], (key, legend)
            assert chart.locator(".scatterlayer .trace").count() == 3, key
        cka = page.locator(".st-key-compare_cka_GPT-2 .js-plotly-plot")
        assert cka.count() == 1 and cka.locator(".main-svg").count() >= 1
        assert "GPT-2" in cka.locator(".gtitle").text_content()
        screenshot(page, SHOTS / "compare-llama-tl.png")
        page.close()
