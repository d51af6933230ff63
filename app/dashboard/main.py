"""Entry script of the dashboard: `streamlit run app/dashboard/main.py` (or `stratascope dashboard`).

Settings come from the environment (set by `stratascope dashboard`): STRATASCOPE_RUNS (the runs
root, default `runs`) and STRATASCOPE_GPT2 (a GPT-2 directory or cached hub name, optional).
"""

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # `streamlit run` puts only this script's folder on the path
    sys.path.insert(0, str(_REPO))

import streamlit as st  # noqa: E402

from app.dashboard import VIEWS, ui  # noqa: E402

st.set_page_config(page_title="stratascope", page_icon="🔭", layout="wide")

PAGES = [
    st.Page(VIEWS / "run.py", title="Run", url_path="run", default=True),
    st.Page(VIEWS / "attention.py", title="Attention", url_path="attention"),
    st.Page(VIEWS / "residual.py", title="Residual stream", url_path="residual"),
    st.Page(VIEWS / "drift.py", title="Activation drift", url_path="drift"),
    st.Page(VIEWS / "probes.py", title="Probes", url_path="probes"),
    st.Page(VIEWS / "compare.py", title="Compare", url_path="compare"),
]

page = st.navigation(PAGES)
st.sidebar.title("stratascope")
ui.sidebar()
page.run()
