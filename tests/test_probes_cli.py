"""`stratascope probe` end to end on a tiny run directory; results.json schema; outputs; example."""

import csv
import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import torch

import probes
from probes_fixtures import build_treebank_run, forbid_work, probe_with_task_file, quick_probe_args
from app.cli import main
from corpus import SplitConfig, read_conllu, write_conllu


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """runs/tiny: a 2-block GPT, its word tokenizer and a small built-in treebank in data/."""
    return build_treebank_run(tmp_path_factory.mktemp("runs") / "tiny", model_seed=5, n_sentences=300,
                              treebank_seed=2, split=SplitConfig(0.5, 0.1, 0.4))


@pytest.fixture(scope="module")
def cli_out(run_dir):
    code = main(["probe", "--model", str(run_dir), "--data", "treebank", "--tasks", "upos,depth",
                 "subject_number", "--bootstrap", "100", "--quiet"])
    assert code == 0
    return run_dir / "probes" / "tiny"


def test_cli_writes_every_output(cli_out, capsys):
    for name in ("results.json", "results.csv", "figures.html", "report.md"):
        assert (cli_out / name).is_file(), name
    results = probes.load_results(cli_out).to_dict()
    probes.validate(results)
    assert results["main"] == "tiny"
    assert [m["role"] for m in results["models"]] == ["model", "random_init"]
    assert results["data"]["kind"] == "treebank" and results["data"]["path"].endswith("data/probe.conllu")
    assert [t["name"] for t in results["tasks"]] == ["upos", "depth", "subject_number"]
    upos = results["models"][0]["tasks"]["upos"]
    assert len(upos["layers"]) == 3 and "mdl" in upos["layers"][0] and "selectivity" in upos["layers"][2]
    assert results["verdict"]["holds"] is None  # no early task asked for: incomplete
    # CSV: one row per model × task × layer
    rows = list(csv.DictReader(open(cli_out / "results.csv")))
    assert len(rows) == 2 * 3 * 3
    assert set(rows[0]) >= {"model", "task", "layer", "score", "ci_low", "selectivity", "mdl_compression"}
    # standalone HTML: plotly.js embedded, no network needed
    page = (cli_out / "figures.html").read_text()
    assert "plotly" in page.lower() and "<script" in page and 'src="https://cdn' not in page
    assert len(page) > 1_000_000
    report = (cli_out / "report.md").read_text()
    assert report.startswith("# Probing report: tiny") and "## Verdict" in report and "| upos |" in report


def test_cli_on_a_conllu_file_with_default_out(run_dir, tmp_path, monkeypatch, capsys):
    sentences = read_conllu(run_dir / "data" / "probe.conllu")[:60]
    path = tmp_path / "mini.conllu"
    write_conllu(sentences, path)
    out = tmp_path / "out"
    code = main(["probe", "--model", str(run_dir), "--data", str(path), "--tasks", "position", "word", "next_upos",
                 "--no-twin", "--no-mdl", "--bootstrap", "50", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "hierarchy" in printed and "wrote" in printed
    results = json.loads((out / "results.json").read_text())
    probes.validate(results)
    assert len(results["models"]) == 1 and results["data"]["n_sentences"] == 60
    from app.commands.probe import default_out

    assert default_out(str(run_dir), str(path), "tiny") == run_dir / "probes" / "tiny@mini"
    assert default_out("gpt2:/models/gpt2", "treebank", "gpt2-gpt2") == Path("runs/gpt2-gpt2/probes/gpt2-gpt2")


def test_cli_warns_about_words_outside_the_vocabulary(run_dir, tmp_path, capsys):
    """A word-level model reads unknown words as <unk>: the CLI says how many, and so do
    results.json and report.md."""
    sentences = read_conllu(run_dir / "data" / "probe.conllu")[:40]
    path = tmp_path / "unk.conllu"
    write_conllu(sentences, path)
    lines = path.read_text().splitlines()
    changed = 0
    for i, line in enumerate(lines):
        cols = line.split("\t")
        if len(cols) == 10 and cols[0] == "2":  # the second word of every sentence
            cols[1] = "zyzzyva"
            lines[i] = "\t".join(cols)
            changed += 1
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["probe", "--model", str(run_dir), "--data", str(path), "--tasks", "position", "--no-twin",
                 "--no-mdl", "--bootstrap", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    n_words = sum(len(s.words) for s in sentences)
    assert f"{changed} of {n_words} words" in printed.out + printed.err and "<unk>" in printed.out + printed.err
    unk = json.loads((out / "results.json").read_text())["data"]["unknown_words"]["tiny"]
    assert unk["tokens"] == changed == 40 and unk["types"] == 1 and unk["top"] == [["zyzzyva", 40]]
    assert unk["rate"] == pytest.approx(40 / n_words)
    assert "**Warning:** 40 of" in (out / "report.md").read_text()


def test_cli_user_errors_are_one_line(run_dir, capsys):
    assert main(["probe", "--model", str(run_dir), "--tasks", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown task 'nope'" in err and "Traceback" not in err
    assert main(["probe", "--model", str(run_dir), "--data", "missing.conllu"]) == 1
    assert "no CoNLL-U file" in capsys.readouterr().err
    assert main(["probe", "--model", "runs/does-not-exist", "--data", str(run_dir / "data" / "probe.conllu")]) == 1
    assert "no run or checkpoint directory" in capsys.readouterr().err
    assert main(["probe"]) == 1
    assert "--model is required" in capsys.readouterr().err


def test_cli_lists_tasks(capsys):
    assert main(["probe", "--list-tasks"]) == 0
    out = capsys.readouterr().out
    assert "* subject_number" in out and "  deprel" in out


def test_schema_validation_catches_damage(cli_out):
    results = probes.load_results(cli_out).to_dict()
    broken = json.loads(json.dumps(results))
    del broken["models"][0]["tasks"]["upos"]["layers"][1]["ci"]
    with pytest.raises(ValueError, match="ci"):
        probes.validate(broken)
    broken = json.loads(json.dumps(results))
    broken["main"] = "other"
    with pytest.raises(ValueError, match="main"):
        probes.validate(broken)


def test_example_custom_probe_runs(run_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["custom_probe.py", str(run_dir)])
    try:
        runpy.run_path(str(ROOT / "examples" / "custom_probe.py"), run_name="__main__")
    finally:
        probes.TASKS.pop("noun_number", None)
    out = capsys.readouterr().out
    assert "noun_number" in out and "upos" in out
    code = [ln for ln in (ROOT / "examples" / "custom_probe.py").read_text().splitlines()
            if ln.strip() and not ln.strip().startswith(("#", '"""'))]
    assert len(code) < 20


def test_cli_keeps_activations_in_a_store(run_dir, tmp_path, capsys):
    store = tmp_path / "acts"
    args = ["probe", "--model", str(run_dir), "--tasks", "upos", "--no-twin", "--no-mdl", "--no-cumulative",
            "--bootstrap", "20", "--max-sentences", "30", "--store", str(store), "--out", str(tmp_path / "o"), "--quiet"]
    assert main(args) == 0
    index = json.loads((store / "tiny" / "index.json").read_text())
    assert index["done_sentences"] == index["n_sentences"] == 30
    first = json.loads((tmp_path / "o" / "results.json").read_text())["models"][0]["tasks"]["upos"]["layers"]
    assert main(args) == 0  # reuses the finished store
    again = json.loads((tmp_path / "o" / "results.json").read_text())["models"][0]["tasks"]["upos"]["layers"]
    assert [x["score"] for x in first] == [x["score"] for x in again]


# ----------------------------------------------------------------------------- reliability
def test_cuda_device_without_cuda_is_one_line(run_dir, monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    forbid_work(monkeypatch)
    assert main(quick_probe_args(run_dir, "--device", "cuda")) == 1
    err = capsys.readouterr().err
    assert "no CUDA device available" in err and "--device cpu" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_out_or_store_naming_a_file_fails_before_any_work(run_dir, tmp_path, monkeypatch, capsys):
    forbid_work(monkeypatch)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me\n")
    assert main(quick_probe_args(run_dir, "--out", str(a_file))) == 1
    assert f"--out {a_file} is a file, not a directory" in capsys.readouterr().err
    assert main(quick_probe_args(run_dir, "--out", str(a_file / "sub"))) == 1
    assert f"is under the file {a_file}" in capsys.readouterr().err
    assert main(quick_probe_args(run_dir, "--store", str(a_file), "--out", str(tmp_path / "o"))) == 1
    assert f"--store {a_file} is a file" in capsys.readouterr().err
    assert a_file.read_text() == "keep me\n" and not (tmp_path / "o").exists()


def test_task_file_errors_name_the_file_line_and_task(run_dir, tmp_path, capsys):
    broken = tmp_path / "broken_tasks.py"
    broken.write_text("import probes\n\ndef f(:\n    pass\n")
    assert main(["probe", "--task-file", str(broken), "--list-tasks"]) == 1
    err = capsys.readouterr().err
    assert f"{broken}:3: syntax error" in err and "Traceback" not in err
    raising = tmp_path / "raising_tasks.py"
    raising.write_text("import probes\nraise RuntimeError('no tasks today')\n")
    assert main(["probe", "--task-file", str(raising), "--list-tasks"]) == 1
    assert f"{raising}:2: the task file raised RuntimeError: no tasks today" in capsys.readouterr().err
    code, boom = probe_with_task_file(run_dir, tmp_path, "boom", "[1 / 0 for w in sentence.words]")
    assert code == 1
    err = capsys.readouterr().err
    assert f"task 'boom' raised ZeroDivisionError at {boom}:6 on sentence 1" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_quick_run_does_not_replace_results_made_with_other_settings(run_dir, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(quick_probe_args(run_dir, "--tasks", "upos,depth", "--out", str(out))) == 0
    full = (out / "results.json").read_bytes()
    # fewer tasks, fewer sentences, fewer resamples: refused, and nothing is written
    assert main(quick_probe_args(run_dir, "--max-sentences", "20", "--out", str(out))) == 1
    err = capsys.readouterr().err
    assert "holds results made with other settings" in err and "--force" in err
    assert "tasks upos,depth → upos" in err and "data.max_sentences 30 → 20" in err
    assert (out / "results.json").read_bytes() == full
    # the same settings again: a rerun replaces them; --force replaces any
    assert main(quick_probe_args(run_dir, "--tasks", "upos,depth", "--out", str(out))) == 0
    assert main(quick_probe_args(run_dir, "--max-sentences", "20", "--out", str(out), "--force")) == 0
    results = probes.load_results(out)
    assert [t.name for t in results.tasks] == ["upos"] and results.data.max_sentences == 20


def test_missing_treebank_is_an_error_not_a_fallback(run_dir, tmp_path, capsys):
    args = ["probe", "--model", str(run_dir), "--data", "treebank", "--tasks", "upos", "--no-twin", "--quiet",
            "--out", str(tmp_path / "o")]
    assert main([*args, "--treebank", str(tmp_path / "nope")]) == 1
    assert f"no treebank directory {tmp_path / 'nope'}" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([*args, "--treebank", str(tmp_path / "empty")]) == 1
    assert "no probe.conllu in the treebank directory" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_model_fails_before_generating_a_treebank(tmp_path, monkeypatch, capsys):
    import corpus

    def no_treebank(*args, **kwargs):
        raise AssertionError("generated a treebank for a model that does not exist")

    monkeypatch.setattr(corpus, "write_treebank", no_treebank)
    monkeypatch.chdir(tmp_path)
    assert main(["probe", "--model", "runs/nope", "--data", "treebank"]) == 1
    assert "no run or checkpoint directory" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


@pytest.fixture(scope="module")
def poisoned_run(run_dir, tmp_path_factory):
    """The tiny run with NaN in block 1's MLP output bias: layers 0-1 are finite, layer 2 is not."""
    from safetensors.torch import load_file, save_file

    run = tmp_path_factory.mktemp("runs") / "poisoned"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("probes"))
    weights = load_file(run / "model.safetensors")
    weights["blocks.1.mlp.fc_out.bias"][0] = float("nan")
    save_file(weights, run / "model.safetensors")
    return run


def test_nonfinite_activations_fail_the_run_naming_model_and_layer(poisoned_run, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(quick_probe_args(poisoned_run, "--out", str(out))) == 1  # refused at load (hooks)
    assert "blocks.1.mlp.fc_out.bias" in capsys.readouterr().err
    assert main(quick_probe_args(poisoned_run, "--out", str(out), "--allow-nonfinite")) == 1
    err = capsys.readouterr().err
    assert "model 'poisoned': the activations at layer 2 (blocks.1.hook_resid_post) hold" in err
    assert "Traceback" not in err and not (out / "results.json").exists()


def test_suite_refuses_nonfinite_features():
    from corpus import generate_sentences

    sentences = generate_sentences(30, seed=1)
    n = sum(len(s.words) for s in sentences)
    X = torch.randn(3, n, 8)
    X[1, 5, 2] = float("inf")
    with pytest.raises(ValueError, match=r"layer 1 \(blocks.0.hook_resid_post\) hold 1 "):
        probes.ProbeSuite(["upos"], probes.ProbeConfig(n_bootstrap=5)).fit(X, sentences)



def test_cli_seeds_give_the_verdict_across_seeds(run_dir, tmp_path, capsys):
    other = build_treebank_run(tmp_path / "tiny-s1", model_seed=6, n_sentences=300, treebank_seed=2,
                               split=SplitConfig(0.5, 0.1, 0.4))
    args = quick_probe_args(run_dir, "--seeds", str(other), "--refits", "2", "--out", str(tmp_path / "o"))
    assert main(args) == 0
    results = probes.load_results(tmp_path / "o")
    assert [m.role for m in results.models] == ["model", "seed"] and results.config.refits == 2
    assert results.seeds is not None and results.seeds.n_seeds == 2
    assert results.seeds.message.startswith(f"across 2 seeds ({results.models[0].tag}, {results.models[1].tag}): ")
    assert main(quick_probe_args(run_dir, "--refits", "0", "--out", str(tmp_path / "p"))) == 1
    assert "--refits must be in [1, 100]" in capsys.readouterr().err


def test_cli_control_lambda_and_expected_reach_the_config(run_dir, tmp_path):
    args = quick_probe_args(run_dir, "--control-lambda", "own", "--expected", "anchored", "--refits", "1",
                            "--out", str(tmp_path / "o"))
    assert main(args) == 0
    results = probes.load_results(tmp_path / "o")
    cfg = results.config
    assert (cfg.control_lambda, cfg.expected, cfg.refits) == ("own", "anchored", 1)
    assert results.verdict.expected == "anchored" and results.main.tasks["upos"].refits == 1
