"""`stratascope dashboard`: the Streamlit dashboard over the runs under a directory.

    stratascope dashboard                         # runs/ on http://127.0.0.1:8501
    stratascope dashboard --runs my-runs --port 8600 --gpt2 ~/models/gpt2

The server binds to 127.0.0.1 only, runs headless and sends no usage statistics. The process
becomes the Streamlit server (exec), so stopping it (Ctrl-C, SIGTERM) stops the dashboard.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8501


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="start the Streamlit dashboard (127.0.0.1) over the runs under a directory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"), metavar="DIR",
                        help="the runs root: every directory under it holding config.json is a run (default runs)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="P", help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--gpt2", metavar="DIR",
                        help="a local GPT-2 (Hugging Face directory, or a hub name in the local cache) for the "
                             "Compare page; default: env STRATASCOPE_GPT2")
    parser.set_defaults(func=run)


def port_free(port: int, address: str = ADDRESS) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def streamlit_command(port: int) -> list[str]:
    from app.dashboard import ENTRY

    return [sys.executable, "-m", "streamlit", "run", str(ENTRY),
            "--server.address", ADDRESS, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--global.developmentMode", "false", "--theme.base", "light",
            "--client.toolbarMode", "minimal"]


def dashboard_env(runs: Path, gpt2: str | None) -> dict[str, str]:
    from app.dashboard import ENV_GPT2, ENV_RUNS

    env = dict(os.environ)
    env[ENV_RUNS] = str(runs.resolve())
    if gpt2:
        p = Path(gpt2).expanduser()
        env[ENV_GPT2] = str(p.resolve()) if p.exists() else gpt2
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def serve(runs: Path, port: int = DEFAULT_PORT, gpt2: str | None = None) -> None:
    """Check the arguments, then replace this process with the Streamlit server."""
    if not runs.is_dir():
        raise FileNotFoundError(f"no runs directory at {runs} (train a model first, or pass --runs DIR)")
    if not 1 <= port <= 65535:
        raise ValueError(f"--port must be in 1..65535, got {port}")
    if not port_free(port):
        raise ValueError(f"port {port} on {ADDRESS} is in use: pass another --port")
    gpt2 = gpt2 or os.environ.get("STRATASCOPE_GPT2") or None
    env = dashboard_env(runs, gpt2)
    print(f"stratascope dashboard: runs under {runs.resolve()} at http://{ADDRESS}:{port}"
          + (f" (GPT-2: {env['STRATASCOPE_GPT2']})" if gpt2 else " (GPT-2 not configured)")
          + " — Ctrl-C stops it", flush=True)
    cmd = streamlit_command(port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, env)


def run(args: argparse.Namespace) -> int:
    serve(args.runs, args.port, args.gpt2)
    return 0  # not reached: exec
