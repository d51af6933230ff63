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

from app.dashboard import ui  # noqa: E402

st.set_page_config(page_title="stratascope", page_icon="🔭", layout="wide")

page = st.navigation(ui.pages())  # addresses: ui.PAGES
st.sidebar.title("stratascope")
ui.sidebar()
page.run()
