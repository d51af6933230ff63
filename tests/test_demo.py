"""`stratascope demo` end to end at the tiny size: every stage, skipping, resuming, GPT-2, serving."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from app.commands import demo
from hooks_fixtures import gpt2_dir  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "runs" / "demo"
    return out


def run_demo(capsys, *argv: str) -> tuple[int, str]:
    status = main(["demo", "--tiny", "--no-serve", *argv])
    return status, capsys.readouterr().out


def test_demo_stages_then_skips(tiny_demo, capsys, monkeypatch):
    monkeypatch.delenv("STRATASCOPE_GPT2", raising=False)
    status, out = run_demo(capsys, "--out", str(tiny_demo))
    assert status == 0, out
    for k, name in enumerate(demo.STAGES, start=1):
        assert f"== demo {k}/5: {name}" in out
    assert "GPT-2: not configured" in out
    assert "not serving" in out
    for rel in ("data/stats.json", "data/probe.conllu", "model.safetensors", "results.json", "metrics.jsonl",
                "checkpoints/step_0000020", "probes/demo/results.json", "probes/demo/report.md", "report.md"):
        assert (tiny_demo / rel).exists(), rel
    config = json.loads((tiny_demo / "config.json").read_text())
    assert config["train"]["max_steps"] == 20 and config["train"]["keep_checkpoints"] == 10
    assert len(list((tiny_demo / "checkpoints").iterdir())) == 2  # step 10 and step 20 kept
    results = json.loads((tiny_demo / "probes" / "demo" / "results.json").read_text())
    assert [m["role"] for m in results["models"]] == ["model", "random_init"]
    report = (tiny_demo / "report.md").read_text()
    assert "entropy floor" in report and results["verdict"]["message"] in report

    stamp = {p: p.stat().st_mtime_ns for p in (tiny_demo / "model.safetensors", tiny_demo / "probes/demo/results.json")}
    status, out = run_demo(capsys, "--out", str(tiny_demo))
    assert status == 0
    assert out.count("skipped:") == 3  # treebank, train, probe
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())


def test_demo_resumes_an_interrupted_training(tiny_demo, capsys):
    (tiny_demo / "model.safetensors").unlink()
    (tiny_demo / "results.json").unlink()
    status, out = run_demo(capsys, "--out", str(tiny_demo))
    assert status == 0, out
    assert "resuming from the latest checkpoint" in out and "--resume" in out
    assert (tiny_demo / "model.safetensors").is_file() and (tiny_demo / "results.json").is_file()


def test_demo_adds_gpt2_when_configured(tiny_demo, capsys, gpt2_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv("STRATASCOPE_GPT2", str(gpt2_dir))
    status, out = run_demo(capsys, "--out", str(tiny_demo))
    assert status == 0, out
    assert f"--compare gpt2:{gpt2_dir}" in out and "replacing the results without GPT-2" in out and "--force" in out
    results = json.loads((tiny_demo / "probes" / "demo" / "results.json").read_text())
    assert [m["role"] for m in results["models"]] == ["model", "random_init", "compare"]
    status, out = run_demo(capsys, "--out", str(tiny_demo))
    assert out.count("skipped:") == 3


def test_demo_serves_the_dashboard_last(tiny_demo, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("app.commands.dashboard.serve", lambda *a: calls.append(a))
    monkeypatch.delenv("DEMO_SERVE", raising=False)
    monkeypatch.delenv("STRATASCOPE_GPT2", raising=False)
    assert main(["demo", "--tiny", "--out", str(tiny_demo), "--port", "8642"]) == 0
    assert calls == [(tiny_demo.parent, 8642, None)]
    monkeypatch.setenv("DEMO_SERVE", "0")
    calls.clear()
    assert main(["demo", "--tiny", "--out", str(tiny_demo)]) == 0
    assert calls == []
    capsys.readouterr()


def test_force_cleans_only_the_stage_outputs(tmp_path):
    out = tmp_path / "demo"
    for rel in ("data/stats.json", "checkpoints/step_1/x", "probes/demo/results.json", "tokenizer/vocab.json"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("x")
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "results.json", "report.md", "notes.txt"):
        (out / name).write_text("x")
    demo.clean(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_gpt2_source(tmp_path, monkeypatch):
    monkeypatch.delenv("STRATASCOPE_GPT2", raising=False)
    assert demo.gpt2_source(None)[0] is None
    assert demo.gpt2_source(str(tmp_path))[0] == str(tmp_path.resolve())
    assert demo.gpt2_source(str(tmp_path / "missing"))[0] is None
    monkeypatch.setenv("STRATASCOPE_GPT2", "gpt2")
    assert demo.gpt2_source(None)[0] == "gpt2"


def test_demo_plan_defaults_fit_the_time_budget():
    plan = demo.DemoPlan.make(False, 0, None, None)
    assert plan.preset == "demo" and "--max-sentences" in plan.probe_args
    plan = demo.DemoPlan.make(True, 3, 100, 50)
    assert plan.probe_args[plan.probe_args.index("--max-sentences") + 1] == "100"
    assert plan.probe_args[plan.probe_args.index("--bootstrap") + 1] == "50"
    assert plan.train_args[plan.train_args.index("--seed") + 1] == "3"
