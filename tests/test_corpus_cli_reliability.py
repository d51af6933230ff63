"""`stratascope corpus` under hostile input (issue 19): a bound on --sentences, progress on stderr."""

from __future__ import annotations

from pathlib import Path

import corpus
from app.cli import main
from app.commands import corpus as corpus_cmd

FILES = ("train.conllu", "val.conllu", "probe.conllu", "vocab.json", "stats.json")


def test_sentences_beyond_the_bound_fail_at_once(tmp_path: Path, monkeypatch, capsys) -> None:
    def no_work(*args, **kwargs):
        raise AssertionError("generated a treebank past the bound")

    monkeypatch.setattr(corpus, "write_treebank", no_work)
    out = tmp_path / "tb"
    assert main(["corpus", "--out", str(out), "--sentences", "1000000000000"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "--sentences must be at most 10,000,000" in err and "1000000000000" in err
    assert not out.exists()
    assert "10,000,000" in corpus_cmd.SENTENCES_HELP


def test_progress_on_stderr_unless_quiet_and_the_files_do_not_change(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(corpus_cmd, "PROGRESS_DELAY_S", 0.0)  # show the bars at once
    loud, quiet = tmp_path / "loud", tmp_path / "quiet"
    assert main(["corpus", "--out", str(loud), "--sentences", "600", "--seed", "4"]) == 0
    err = capsys.readouterr().err
    assert "generating" in err and "/600" in err and "writing" in err and "stats" in err
    assert main(["corpus", "--out", str(quiet), "--sentences", "600", "--seed", "4", "--quiet"]) == 0
    printed = capsys.readouterr()
    assert printed.err == "" and "wrote 600 sentences" in printed.out
    for name in FILES:
        assert (loud / name).read_bytes() == (quiet / name).read_bytes(), name


def test_write_treebank_reports_each_stage(tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    corpus.write_treebank(tmp_path / "a", 300, seed=1, progress=lambda stage, done, total: seen.append(
        (stage, done, total)))
    corpus.write_treebank(tmp_path / "b", 300, seed=1)
    stages = list(dict.fromkeys(stage for stage, _, _ in seen))
    assert stages == ["generating", "writing", "stats"]
    assert ("generating", 300, 300) in seen and ("writing", 300, 300) in seen
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
