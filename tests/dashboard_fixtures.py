"""A tiny runs root for the dashboard tests, built once per session with the real code:

    runs/tiny/      the real trainer (gpt_model.train.train) on a small treebank: config.json,
                    model.safetensors, tokenizer/vocab.json, metrics.jsonl, results.json,
                    checkpoints/step_0000006 and step_0000012, data/ (the treebank), and
                    probes/tiny/results.json (+ csv, html, report.md) from probes.probe, with
                    hand-made erasure results for the model and its twin (erasure_fixtures: the
                    pages' rendering of them is what is tested, not the numbers' making)
    runs/broken/    a config.json that is not JSON
    runs/pending/   a valid config.json and nothing else (a run that has not written weights)
    runs/escape     a symlink to a run directory outside the root (must be refused)

Import the fixture into a test module: ``from dashboard_fixtures import runs_root``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

TINY_STEPS = 12
PROBE_SENTENCES = 120
_BUILT: dict[str, Path] = {}


def train_tiny(run: Path, steps: int = TINY_STEPS) -> Path:
    from gpt_model import GPTConfig
    from gpt_model.data import DataConfig
    from gpt_model.train import RunConfig, TrainConfig, train

    config = RunConfig(
        model=GPTConfig(n_layer=2, d_model=32, n_head=2, context_len=48, vocab_size=512),
        train=TrainConfig(max_steps=steps, batch_size=8, lr=3e-3, warmup_steps=2, eval_interval=6, eval_batches=2,
                          log_interval=2, checkpoint_interval=6, keep_checkpoints=4, progress=False, num_threads=1),
        data=DataConfig(source="treebank", tokenizer="word", n_sentences=400),
    )
    train(config, run)
    return run


def probe_tiny(run: Path) -> Path:
    import probes

    sentences, source = probes.load_data("treebank", str(run), max_sentences=PROBE_SENTENCES)
    # small grids: the real suite (controls, MDL, cumulative probes, verdict), in seconds
    config = probes.ProbeConfig(n_bootstrap=40, seed=0, lambdas=(1e-2,), ridge_lambdas=(1.0,), max_iter=30)
    results = probes.probe(str(run), sentences, config=config, data_info=source)
    add_erasure(results)
    out = run / "probes" / results.main.tag
    probes.write_outputs(results, out)
    return out


def add_erasure(results) -> None:
    """Attach hand-made erasure results (the results.json schema) to the model and its twin."""
    from erasure_fixtures import erasure_dict
    from probes.results import ErasureResult

    for m in results.models:
        data = erasure_dict(m.n_layer, twin=m.role == "random_init")
        m.erasure = ErasureResult.from_dict(data, f"{m.tag}.erasure", m.n_layer)


def build_runs_root(base: Path) -> Path:
    root = base / "runs"
    root.mkdir(parents=True)
    tiny = train_tiny(root / "tiny")
    probe_tiny(tiny)
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{ this is not json")
    (root / "pending").mkdir()
    config = json.loads((tiny / "config.json").read_text())
    (root / "pending" / "config.json").write_text(json.dumps(config))
    outside = base / "outside" / "secret-run"
    shutil.copytree(tiny, outside, ignore=shutil.ignore_patterns("data", "probes", "checkpoints"))
    os.symlink(outside, root / "escape")
    return root


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    if "root" not in _BUILT or not _BUILT["root"].exists():
        _BUILT["root"] = build_runs_root(tmp_path_factory.mktemp("dashboard"))
    return _BUILT["root"]


PAGE_TIMEOUT = 180


def use_runs_root(root: Path, monkeypatch) -> None:
    """Point the dashboard at the runs ``root``, with no GPT-2 configured."""
    from app.dashboard import ENV_GPT2, ENV_RUNS

    monkeypatch.setenv(ENV_RUNS, str(root))
    monkeypatch.delenv(ENV_GPT2, raising=False)


def open_page(name: str | None = None, run: str | None = "tiny"):
    """The dashboard (over the root ``use_runs_root`` set) at page ``name`` (None: the Run page)
    with ``?run=run``, under Streamlit's AppTest; asserts the script raised nothing."""
    from streamlit.testing.v1 import AppTest

    from app.dashboard import ENTRY

    at = AppTest.from_file(str(ENTRY), default_timeout=PAGE_TIMEOUT)
    if run is not None:
        at.query_params["run"] = run
    at.run()
    if name is not None:
        at.switch_page(f"views/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at
