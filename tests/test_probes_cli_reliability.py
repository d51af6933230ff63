"""`stratascope probe` under hostile input (issue 19): task files, unhashable labels, read-only
directories, bounds and progress of erasure, decode errors in --data, erasure flags."""

import os
import tempfile
from pathlib import Path

import pytest

import probes
from app.cli import main
from corpus import SplitConfig, read_conllu, write_conllu
from probes_fixtures import build_treebank_run, forbid_work, probe_with_task_file, quick_probe_args


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_treebank_run(tmp_path_factory.mktemp("runs") / "tiny", model_seed=5, n_sentences=300,
                              treebank_seed=2, split=SplitConfig(0.5, 0.1, 0.4))


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------- task files
def test_a_task_file_cannot_replace_a_builtin_task(tmp_path, capsys):
    builtin = probes.TASKS["upos"]
    shadow = tmp_path / "shadow_tasks.py"
    shadow.write_text("import probes\n\n\n@probes.task('upos', 'late')\ndef upos(sentence):\n"
                      "    return ['X' for w in sentence.words]\n")
    depth = probes.TASKS["depth"]
    try:
        assert main(["probe", "--task-file", str(shadow), "--list-tasks"]) == 1
        line = _one_line(capsys.readouterr().err)
        assert f"{shadow}:4:" in line and "'upos'" in line and "built in" in line
        assert probes.TASKS["upos"] is builtin
        # from Python too
        with pytest.raises(ValueError, match="'depth' is built in"):
            probes.task("depth", "early", "ordinal")(lambda s: [0 for _ in s.words])
    finally:
        probes.TASKS["upos"], probes.TASKS["depth"] = builtin, depth
    assert probes.register(builtin) is builtin  # registering the built-in itself again is harmless


def test_two_task_files_defining_one_task_are_refused(tmp_path, capsys):
    files = []
    for name in ("first_tasks.py", "second_tasks.py"):
        path = tmp_path / name
        path.write_text("import probes\n\n\n@probes.task('mine', 'late')\ndef mine(sentence):\n"
                        "    return ['X' for w in sentence.words]\n")
        files.append(path)
    try:
        assert main(["probe", "--task-file", str(files[0]), "--task-file", str(files[1]), "--list-tasks"]) == 1
        line = _one_line(capsys.readouterr().err)
        assert f"{files[1]}:4: task 'mine' is already defined by {files[0]}:4" in line
        # the same file twice is one definition; a rerun in the same process redefines it
        assert main(["probe", "--task-file", str(files[0]), "--task-file", str(files[0]), "--list-tasks"]) == 0
        assert main(["probe", "--task-file", str(files[1]), "--list-tasks"]) == 0
        assert "mine" in capsys.readouterr().out
    finally:
        probes.TASKS.pop("mine", None)


def test_a_task_with_unhashable_labels_is_one_line(run_dir, tmp_path, capsys):
    code, _ = probe_with_task_file(run_dir, tmp_path, "lists", "[[w.upos] for w in sentence.words]")
    assert code == 1
    line = _one_line(capsys.readouterr().err)
    assert "task 'lists'" in line and "unhashable label" in line and "list" in line and "sentence 1" in line


# ----------------------------------------------------------------------------- read-only directories
def _read_only(path: Path, monkeypatch) -> None:
    """Make ``path`` (a directory) unwritable; as root, whom modes do not stop, refuse the write
    check's temporary file there instead."""
    path.chmod(0o555)
    if os.access(path, os.W_OK):
        real = tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if dir is not None and Path(dir) == path:
                raise PermissionError(13, "Permission denied", str(path))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", refuse)


def test_read_only_out_or_store_fails_before_any_work(run_dir, tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(locked, monkeypatch)
    try:
        forbid_work(monkeypatch)
        assert main(quick_probe_args(run_dir, "--out", str(locked / "o"))) == 1
        line = _one_line(capsys.readouterr().err)
        assert f"--out {locked / 'o'}" in line and "not writable" in line
        assert main(quick_probe_args(run_dir, "--out", str(locked))) == 1
        assert f"--out {locked}" in _one_line(capsys.readouterr().err)
        assert main(quick_probe_args(run_dir, "--store", str(locked / "acts"), "--out", str(tmp_path / "o"))) == 1
        line = _one_line(capsys.readouterr().err)
        assert f"--store {locked / 'acts'}" in line and "not writable" in line
        assert list(locked.iterdir()) == [] and not (tmp_path / "o").exists()
    finally:
        locked.chmod(0o755)


def test_the_write_check_leaves_nothing_behind(run_dir, tmp_path, capsys):
    out = tmp_path / "deep" / "er" / "out"
    assert main(quick_probe_args(run_dir, "--out", str(out), "--tasks", "nope")) == 1  # fails after the check
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert main(quick_probe_args(run_dir, "--out", str(out))) == 0
    assert sorted(p.name for p in out.iterdir()) == ["figures.html", "report.md", "results.csv", "results.json"]


# ----------------------------------------------------------------------------- erasure flags
def test_erase_random_is_bounded_and_needs_erase(run_dir, monkeypatch, capsys):
    forbid_work(monkeypatch)
    assert main(quick_probe_args(run_dir, "--erase", "upos", "--erase-random", "99999999999")) == 1
    line = _one_line(capsys.readouterr().err)
    assert "--erase-random" in line and "99999999999" in line and "at most 100" in line
    assert main(quick_probe_args(run_dir, "--erase-random", "3")) == 1
    line = _one_line(capsys.readouterr().err)
    assert "--erase-random" in line and "--erase" in line and "without" in line
    assert main(quick_probe_args(run_dir, "--erase-method", "inlp")) == 1  # likewise the eraser
    line = _one_line(capsys.readouterr().err)
    assert line.endswith("error: --erase-method inlp given without --erase: it sets the eraser; add --erase CONCEPT "
                         "or leave it out")


def test_erasure_shows_progress_over_its_random_draws(run_dir, tmp_path, capsys):
    args = ["probe", "--model", str(run_dir), "--tasks", "upos", "--no-twin", "--no-mdl", "--no-cumulative",
            "--bootstrap", "10", "--max-sentences", "30", "--out", str(tmp_path / "o"),
            "--erase", "upos", "--erase-random", "1"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "erasing upos" in err and "random draw" in err


def test_an_erasure_interval_from_too_few_sentences_is_flagged(run_dir, tmp_path, capsys):
    import hooks
    from probes.erase import erase

    sentences = read_conllu(run_dir / "data" / "probe.conllu")
    distinct = list({s.text: s for s in sentences}.values())[:5]  # 3 train, 1 val, 1 held out
    logs: list[str] = []
    d = erase(hooks.load(str(run_dir)), distinct, ["upos"], probes.ProbeConfig(n_bootstrap=20), n_random=1,
              log=logs.append)
    assert any(m.startswith("warning:") and "1 held-out sentence" in m for m in logs), logs
    assert "1 held-out sentence" in d["concepts"]["upos"]["reading"]
    # enough held-out sentences: no warning
    logs.clear()
    d = erase(hooks.load(str(run_dir)), sentences[:100], ["upos"], probes.ProbeConfig(n_bootstrap=20), n_random=1,
              log=logs.append)
    assert not any(m.startswith("warning:") for m in logs)
    assert "held-out sentence" not in d["concepts"]["upos"]["reading"]


# ----------------------------------------------------------------------------- --data
def test_data_that_is_not_utf8_names_the_file_and_line(run_dir, tmp_path, monkeypatch, capsys):
    good = read_conllu(run_dir / "data" / "probe.conllu")[:3]
    bad = tmp_path / "latin1.conllu"
    write_conllu(good, bad)
    text = bad.read_bytes().split(b"\n")
    target = next(k for k, ln in enumerate(text) if ln[:1].isdigit())  # first word line
    text[target] = text[target].replace(b"\t", b"\xe9\t", 1)
    bad.write_bytes(b"\n".join(text))

    assert main(quick_probe_args(run_dir, "--data", str(bad), "--out", str(tmp_path / "o"))) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"{bad}:{target + 1}: not UTF-8" in line and not (tmp_path / "o").exists()
