"""The `stratascope` command line: version, info, errors without tracebacks."""

import subprocess
import sys

import pytest

from app.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("stratascope ")


def test_info_prints_the_model_zoo(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for preset in ("demo", "deep", "gpu", "gpt2-small"):
        assert f"\n{preset} " in out
    assert "124.44M" in out  # GPT-2 small's parameter count, computed on the meta device


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: stratascope" in capsys.readouterr().out


def test_module_entry_point_runs_as_a_process():
    result = subprocess.run([sys.executable, "-m", "app.cli", "info"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "model zoo" in result.stdout
