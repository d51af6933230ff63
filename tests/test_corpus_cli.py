"""`stratascope corpus`: the files it writes, determinism, splits and stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from corpus import WordTokenizer, entropy_floor, read_conllu, write_treebank
from corpus.treebank import SplitConfig

FILES = ("train.conllu", "val.conllu", "probe.conllu", "vocab.json", "stats.json")


@pytest.fixture(scope="module")
def treebank(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tb") / "corpus"
    assert main(["corpus", "--out", str(out), "--sentences", "600", "--seed", "4"]) == 0
    return out


def test_cli_writes_every_file_deterministically(treebank: Path, tmp_path: Path, capsys) -> None:
    assert sorted(p.name for p in treebank.iterdir()) == sorted(FILES)
    again = tmp_path / "again"
    assert main(["corpus", "--out", str(again), "--sentences", "600", "--seed", "4"]) == 0
    for name in FILES:
        assert (again / name).read_bytes() == (treebank / name).read_bytes(), name
    other = tmp_path / "other"
    assert main(["corpus", "--out", str(other), "--sentences", "600", "--seed", "5"]) == 0
    assert (other / "train.conllu").read_bytes() != (treebank / "train.conllu").read_bytes()
    out = capsys.readouterr().out
    assert "wrote 600 sentences" in out and "entropy floor" in out


def test_splits_are_disjoint_and_complete(treebank: Path) -> None:
    splits = {name: read_conllu(treebank / f"{name}.conllu") for name in ("train", "val", "probe")}
    texts = {name: {s.text for s in sents} for name, sents in splits.items()}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["probe"]
    assert not texts["val"] & texts["probe"]
    ids = [s.metadata["sent_id"] for sents in splits.values() for s in sents]
    assert sorted(ids) == sorted(f"4-{i}" for i in range(600))
    assert 480 < len(splits["train"]) < 600 and len(splits["val"]) > 10 and len(splits["probe"]) > 10

    stats = json.loads((treebank / "stats.json").read_text())
    all_sents = [s for sents in splits.values() for s in sents]
    assert stats["n_sentences"] == 600 and stats["seed"] == 4
    assert stats["entropy_floor_nats_per_token"] == pytest.approx(entropy_floor(all_sents), rel=1e-12)
    for name, sents in splits.items():
        assert stats["splits"][name]["sentences"] == len(sents)
        assert stats["splits"][name]["entropy_floor"] == pytest.approx(entropy_floor(sents), rel=1e-12)
        assert stats["splits"][name]["tokens"] == sum(len(s.words) + 1 for s in sents)
    assert stats["unigram_entropy_nats_per_token"] > stats["entropy_floor_nats_per_token"] + 1
    assert sum(stats["length"]["histogram"].values()) == 600
    assert 4 <= stats["length"]["min"] <= stats["length"]["max"] <= 30
    assert 0.1 < stats["agreement"]["attractor_rate"] < 0.3
    assert stats["agreement"]["minimal_pairs"] == stats["agreement"]["verbs_with_attractor"]
    labels = stats["labels"]
    assert set(labels) == {"upos", "deprel", "const", "number", "depth"}
    assert sum(labels["upos"].values()) == sum(len(s.words) for s in all_sents)
    assert labels["deprel"]["root"] == 600 and labels["upos"]["PUNCT"] == 600


def test_vocab_covers_the_grammar(treebank: Path) -> None:
    tok = WordTokenizer.load(treebank / "vocab.json")
    assert len(tok) == 4 + 127
    for s in read_conllu(treebank / "probe.conllu"):
        tok.encode(s.forms, strict=True)
    assert not tok.unknown_counts


def test_check_mode_and_user_errors(treebank: Path, tmp_path: Path, capsys) -> None:
    assert main(["corpus", "--check", str(treebank / "val.conllu")]) == 0
    assert "sentences" in capsys.readouterr().out
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tx\n")
    assert main(["corpus", "--check", str(bad)]) == 1
    assert f"{bad}:1: expected 10 tab-separated columns" in capsys.readouterr().err
    assert main(["corpus", "--out", str(tmp_path / "o"), "--sentences", "0"]) == 1
    assert "--sentences must be >= 1" in capsys.readouterr().err
    assert main(["corpus", "--out", str(tmp_path / "o"), "--sentences", "3"]) == 1
    assert "empty: ask for more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["corpus", "--out", "x", "--check", "y"])  # mutually exclusive


def test_split_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SplitConfig.val"):
        SplitConfig(train=0.9, val=0.0, probe=0.1)
    with pytest.raises(ValueError, match="sum to 1"):
        SplitConfig(train=0.9, val=0.2, probe=0.1)
    stats = write_treebank(tmp_path, 300, seed=1, split=SplitConfig(0.5, 0.25, 0.25))
    assert 100 < stats["splits"]["train"]["sentences"] < 200


def test_check_rejects_head_cycles_and_bad_bytes(tmp_path: Path, capsys) -> None:
    cyclic = tmp_path / "cyclic.conllu"
    cyclic.write_text("# sent_id = s1\n1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n\n"
                      "# sent_id = s2\n1\ta\ta\tX\t_\t_\t2\tdep\t_\t_\n2\tb\tb\tX\t_\t_\t1\tdep\t_\t_\n\n")
    assert main(["corpus", "--check", str(cyclic)]) == 1
    err = capsys.readouterr().err
    assert f"{cyclic}:5: sentence s2: HEAD cycle 1 → 2 → 1" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    binary = tmp_path / "binary.conllu"
    binary.write_bytes(b"1\ta\ta\tX\t_\t_\t0\troot\t_\t_\n\n1\t\xff\xfe\tb\tX\t_\t_\t0\troot\t_\t_\n")
    assert main(["corpus", "--check", str(binary)]) == 1
    err = capsys.readouterr().err
    assert f"{binary}:3: not UTF-8" in err and len(err.strip().splitlines()) == 1


def test_treebank_files_are_durable_and_stats_json_comes_last(tmp_path: Path, monkeypatch) -> None:
    """Every file goes through corpus.durable (fsynced, renamed, directory fsynced), and the
    completeness marker stats.json is published after all the others."""
    import corpus.durable as durable

    synced: list[str] = []
    dirs: list[Path] = []
    real_fsync_file, real_fsync_dir = durable.fsync_file, durable.fsync_dir
    monkeypatch.setattr(durable, "fsync_file", lambda p: (synced.append(Path(p).name), real_fsync_file(p)))
    monkeypatch.setattr(durable, "fsync_dir", lambda p: (dirs.append(Path(p)), real_fsync_dir(p)))
    out = tmp_path / "tb"
    write_treebank(out, 200, seed=3)
    targets = [name.split(".tmp")[0].lstrip(".").rsplit(".", 1)[0] for name in synced]
    assert set(targets) == set(FILES) and targets[-1] == "stats.json" and targets.count("stats.json") == 1
    assert dirs.count(out) >= len(FILES)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temporary files left


def test_rewriting_a_treebank_is_incomplete_until_it_finishes(tmp_path: Path, monkeypatch) -> None:
    import corpus.treebank as treebank

    out = tmp_path / "tb"
    write_treebank(out, 200, seed=3)
    assert treebank.is_complete_treebank(out)

    def crash(*args, **kwargs):
        raise RuntimeError("killed while computing the stats")

    monkeypatch.setattr(treebank, "treebank_stats", crash)
    with pytest.raises(RuntimeError):
        write_treebank(out, 300, seed=4)  # the splits are already replaced by then
    assert not (out / "stats.json").exists() and not treebank.is_complete_treebank(out)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
