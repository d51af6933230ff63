"""Pure functions behind the dashboard's numbers (no Streamlit, no model loading).

Every function takes arrays (numpy or torch) and returns numpy arrays / plain dicts, so it can
be tested against hand computations (tests/test_analysis_*.py) and reused from notebooks.

* ``stream``: per-block statistics of the residual stream — mean ‖xₗ‖, relative update
  ‖xₗ − xₗ₋₁‖/‖xₗ₋₁‖, cos(xₗ, xₗ₋₁) — and the drift of every layer between two checkpoints.
* ``cka``: linear CKA (Kornblith et al. 2019) between two representations, and the
  layer × layer CKA matrix of one model.
* ``lens``: the logit lens (nostalgebraist 2020): each layer's residual stream read through the
  final norm and the unembedding; KL to the final distribution, top-1 agreement, top tokens.
* ``heads``: per-head summaries of attention patterns — entropy, previous-token score and the
  attention from a verb to its subject.
"""

from app.analysis.cka import cka_matrix, linear_cka
from app.analysis.heads import HeadSummary, head_summary, subject_verb_pairs
from app.analysis.lens import LogitLens, logit_lens, native_unembed
from app.analysis.stream import StreamStats, checkpoint_drift, stream_stats

__all__ = [
    "stream_stats",
    "StreamStats",
    "checkpoint_drift",
    "linear_cka",
    "cka_matrix",
    "logit_lens",
    "LogitLens",
    "native_unembed",
    "head_summary",
    "HeadSummary",
    "subject_verb_pairs",
]
