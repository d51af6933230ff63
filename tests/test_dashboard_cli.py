"""`stratascope dashboard`: arguments, and the Streamlit command it becomes."""

from __future__ import annotations

import socket

from app.cli import main
from app.commands import dashboard


def test_streamlit_command_binds_to_localhost_headless_without_statistics():
    cmd = dashboard.streamlit_command(8600)
    opts = dict(zip(cmd[5::2], cmd[6::2]))
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app/dashboard/main.py")
    assert opts["--server.address"] == "127.0.0.1"
    assert opts["--server.port"] == "8600"
    assert opts["--server.headless"] == "true"
    assert opts["--browser.gatherUsageStats"] == "false"


def test_env_carries_the_root_and_gpt2(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("STRATASCOPE_GPT2", raising=False)
    env = dashboard.dashboard_env(tmp_path, None)
    assert env["STRATASCOPE_RUNS"] == str(tmp_path.resolve()) and "STRATASCOPE_GPT2" not in env
    assert env["PYTHONPATH"].split(":")[0] == str(dashboard.Path(dashboard.__file__).resolve().parents[2])
    env = dashboard.dashboard_env(tmp_path, str(tmp_path))
    assert env["STRATASCOPE_GPT2"] == str(tmp_path.resolve())
    assert dashboard.dashboard_env(tmp_path, "gpt2")["STRATASCOPE_GPT2"] == "gpt2"  # a cached hub name


def test_missing_runs_directory(tmp_path, capsys):
    assert main(["dashboard", "--runs", str(tmp_path / "nope")]) == 1
    assert "no runs directory" in capsys.readouterr().err


def test_port_in_use(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["dashboard", "--runs", str(tmp_path), "--port", str(port)]) == 1
    assert f"port {port}" in capsys.readouterr().err
