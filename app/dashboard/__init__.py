"""The stratascope dashboard (Streamlit).

    stratascope dashboard [--runs DIR] [--port P] [--gpt2 DIR]

``main.py`` is the entry script: sidebar (run and weights) and navigation; ``views/`` holds one
script per page (Run, Attention, Residual stream, Activation drift, Probes, Compare);
``data.py`` is the only place that touches the file system and the models (run listing under
the root, path checks, ``st.cache_resource`` models, ``st.cache_data`` computations); the
numbers themselves come from ``app.analysis``. See docs/dashboard.md.
"""

from pathlib import Path

ENTRY = Path(__file__).with_name("main.py")
ENV_RUNS = "STRATASCOPE_RUNS"  # the runs root (default: runs)
ENV_GPT2 = "STRATASCOPE_GPT2"  # a GPT-2 directory or cached hub name for the Compare page (optional)
VIEWS = Path(__file__).with_name("views")
