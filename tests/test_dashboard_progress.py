"""Progress indicators of the dashboard (issue #14): every computation that can take more than a
few seconds at GPT-2-small size shows one while it runs — a spinner (model loading, one
sentence) or a progress bar that advances (the sample, batch by batch; checkpoint drift).

The pages run under AppTest with empty caches (a cache hit computes nothing and shows nothing);
the indicators are recorded as the page opens them, the real ones still drawn: the bars as
``data.progress_bar`` opens them and their Streamlit elements are updated, the spinners through
``DeltaGenerator.spinner`` (which Streamlit's cache decorators call for ``show_spinner="…"``)."""

from __future__ import annotations

import contextlib
import math
import re

import pytest
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.testing.v1 import AppTest

from app.dashboard import ENTRY, ENV_GPT2, ENV_RUNS, data
from dashboard_fixtures import runs_root  # noqa: F401 - fixture

TIMEOUT = 180
BATCH = 16  # data.sample_analysis's default batch size


@pytest.fixture
def app(runs_root, monkeypatch):  # noqa: F811
    monkeypatch.setenv(ENV_RUNS, str(runs_root))
    monkeypatch.delenv(ENV_GPT2, raising=False)
    st.cache_data.clear()  # computed afresh: a cache hit shows no indicator
    st.cache_resource.clear()

    def make(page: str) -> AppTest:
        at = AppTest.from_file(str(ENTRY), default_timeout=TIMEOUT)
        at.query_params["run"] = "tiny"
        at.run()
        at.switch_page(f"views/{page}.py").run()
        ok(at)
        return at

    yield make
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def bars(monkeypatch) -> list[tuple[str, list[tuple[float, str]]]]:
    """The progress bars opened while a page runs, as (first text, [(fraction, text) drawn]): a
    bar is opened by ``data.progress_bar`` and its updates are Streamlit's progress element's."""
    real_open, real_update = data.progress_bar, DeltaGenerator.progress
    seen: list[tuple[str, list[tuple[float, str]]]] = []
    open_bars: list[list[tuple[float, str]]] = []  # a stack: drift's bar holds the sample's

    @contextlib.contextmanager
    def opening(text):
        seen.append((text, []))
        open_bars.append(seen[-1][1])
        try:
            with real_open(text) as report:
                yield report
        finally:
            open_bars.pop()

    def update(self, value, text=None, **kwargs):
        if open_bars:
            open_bars[-1].append((value, text))
        return real_update(self, value, text=text, **kwargs)

    monkeypatch.setattr(data, "progress_bar", opening)
    monkeypatch.setattr(DeltaGenerator, "progress", update)
    return seen


@pytest.fixture
def spinners(monkeypatch) -> list[str]:
    """The texts of the spinners opened while a page runs."""
    real = DeltaGenerator.spinner
    seen: list[str] = []

    def recording(self, text="", *args, **kwargs):
        seen.append(text)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "spinner", recording)
    return seen


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert not at.progress, "a progress bar was left on the page"


def sample_bars(bars) -> list[list[tuple[float, str]]]:
    return [reports for _text, reports in bars if any("on the sample" in m for _f, m in reports)]


def check_sample_bar(reports: list[tuple[float, str]], batch: int = BATCH) -> int:
    """One bar of data.sample_analysis: a step per batch of sentences, then one for the statistics
    and CKA, with fractions rising from 0 and below 1; returns the number of sentences."""
    fractions = [f for f, _ in reports]
    assert fractions[0] == 0 and all(0 <= f < 1 for f in fractions), fractions
    assert all(a < b for a, b in zip(fractions, fractions[1:])), fractions
    n = int(re.search(r"of (\d+)…", reports[0][1]).group(1))
    assert len(reports) == math.ceil(n / batch) + 1, reports
    assert "sentences 1–" in reports[0][1]
    assert "CKA" in reports[-1][1]
    return n


def test_the_sample_shows_a_progress_bar(app, bars):
    at = app("residual")
    (reports,) = sample_bars(bars)
    n = check_sample_bar(reports)
    assert any(f"{n} sentences" in str(c.value) for c in at.caption)
    # a cache hit replays what the cached function drew (the bar, then its removal): nothing
    # is left on the page and nothing runs again
    at.run()
    ok(at)
    assert len(bars) == 1


def test_the_sample_bar_advances_batch_by_batch(runs_root, bars):  # noqa: F811
    st.cache_data.clear()
    run = runs_root / "tiny"
    sample = data.corpus_sample(str(runs_root), "tiny", data.signature(run), data.DEFAULT_SAMPLE)
    key = data.ModelRef.run(run, data.FINAL).key
    data.sample_analysis(key, tuple(sample["sentences"]), tuple(sample["pairs"]), batch_size=4)
    (reports,) = sample_bars(bars)
    assert check_sample_bar(reports, batch=4) > 8  # three batches or more, then the statistics
    st.cache_data.clear()


def test_model_loading_and_the_sentence_show_spinners(app, bars, spinners):
    app("attention")
    assert "Loading the model…" in spinners
    assert "Running the model on the sentence…" in spinners
    assert spinners.index("Loading the model…") < spinners.index("Running the model on the sentence…")
    (reports,) = sample_bars(bars)  # the sample's head summary
    check_sample_bar(reports)


def test_checkpoint_drift_shows_its_steps(app, bars):
    at = app("drift")
    drift = [reports for text, reports in bars if text.startswith("Comparing the checkpoints")]
    assert len(drift) == 1
    fractions = [f for f, _ in drift[0]]
    assert fractions == pytest.approx([0, 1 / 3, 2 / 3])
    assert [m.split(": ")[1].split(" (")[0] for _, m in drift[0]] == [
        "the sample through A", "the sample through B", "change, cosine and CKA per layer"]
    samples = sample_bars(bars)
    assert len(samples) == 2  # A's and B's
    for reports in samples:
        check_sample_bar(reports)
    at.run()  # cache hit: the nested bars replay and are removed again
    ok(at)
    assert len(bars) == 3


def test_compare_names_the_model_each_bar_runs(app, bars):
    app("compare")
    samples = sample_bars(bars)
    assert len(samples) == 2  # our model and its random-init twin
    names = [reports[0][1].split(" on the sample")[0] for reports in samples]
    assert names[0].startswith("Running ") and "random-init" in names[1] and names[0] != names[1]
    for reports in samples:
        check_sample_bar(reports)
