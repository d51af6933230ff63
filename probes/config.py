"""``ProbeConfig``: the settings of a probing run, all recorded in results.json ("config")."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from probes.depth import EXPECTED_KINDS
from probes.fit import DEFAULT_LAMBDAS, DEFAULT_RIDGE_LAMBDAS
from probes.mdl import BLOCKS

# Settings that say how a run was executed, not what it measured (they are not compared when a
# run would replace an earlier one's results).
EXECUTION_SETTINGS = ("device", "threads")
CONTROL_LAMBDAS = ("task", "own")
MAX_REFITS = 100
# Settings added after results.json files were written without them: the value that reproduces
# what those runs did (one fit; the control task on its own λ path).
LEGACY_SETTINGS: dict[str, Any] = {"refits": 1, "control_lambda": "own"}


@dataclass
class ProbeConfig:
    """Settings of a probing run (all recorded in results.json)."""

    seed: int = 0
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train / val / test sentence fractions
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS  # logistic L2 grid (per-word loss scale)
    ridge_lambdas: tuple[float, ...] = DEFAULT_RIDGE_LAMBDAS
    n_bootstrap: int = 1000
    ci_level: float = 0.95
    control: bool = True
    mdl: bool = True
    mdl_control: bool = True
    cumulative: bool = True
    max_cumulative_features: int = 2048
    expected: str = "depth"  # which expected layer the verdict uses: depth | anchored | tenney | mdl (probes.depth)
    verdict_threshold: float = 0.95
    lexical_fraction: float = 0.95  # "lexical" flag: layer 0 reaches this share of the peak gain
    # Probes stop at max |gradient| ≤ tol: 1e-5, ten times tighter than scikit-learn's default,
    # because at 1e-4 weakly regularised word-identity probes still sit up to ~1 point of test
    # accuracy from the optimum (both ours and scikit-learn's). MDL's many block fits use mdl_tol.
    max_iter: int = 1000
    tol: float = 1e-5
    mdl_tol: float = 1e-4
    device: str = "cpu"
    threads: int | None = None  # torch threads for the fits (None: 1 for small fits, else torch's)
    min_train_words: int = 10
    # Fits per model: refit 0 uses the run's split; each further one re-draws the train / validation
    # split of the non-test sentences and the MDL block order and refits everything (probes.suite).
    refits: int = 3
    # λ of the control task's probe at each layer: "task" (the λ its task chose there: matched
    # complexity, Hewitt & Liang) or "own" (its own λ path on validation: a conservative bound)
    control_lambda: str = "task"

    def __post_init__(self) -> None:
        split = tuple(float(x) for x in self.split)
        if len(split) != 3 or any(x <= 0 for x in split) or not math.isclose(sum(split), 1.0, abs_tol=1e-6):
            raise ValueError(f"ProbeConfig.split must be three positive fractions summing to 1, got {self.split}")
        self.split = split  # type: ignore[assignment]
        if self.expected not in EXPECTED_KINDS:
            raise ValueError(f"ProbeConfig.expected must be one of {', '.join(EXPECTED_KINDS)}, got {self.expected!r}")
        if self.expected == "mdl" and not self.mdl:
            raise ValueError("ProbeConfig.expected 'mdl' needs the MDL codes, but mdl is False "
                             "(--expected mdl with --no-mdl)")
        if not self.lambdas or any(x <= 0 for x in self.lambdas):
            raise ValueError("ProbeConfig.lambdas must be positive")
        if not self.ridge_lambdas or any(x <= 0 for x in self.ridge_lambdas):
            raise ValueError("ProbeConfig.ridge_lambdas must be positive")
        if isinstance(self.refits, bool) or not isinstance(self.refits, int) or not 1 <= self.refits <= MAX_REFITS:
            raise ValueError(f"ProbeConfig.refits must be an integer in [1, {MAX_REFITS}], got {self.refits!r}")
        if self.control_lambda not in CONTROL_LAMBDAS:
            raise ValueError(f"ProbeConfig.control_lambda must be one of {', '.join(CONTROL_LAMBDAS)}, "
                             f"got {self.control_lambda!r}")
        if self.n_bootstrap < 0:
            raise ValueError("ProbeConfig.n_bootstrap must be >= 0")
        for name in ("tol", "mdl_tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ProbeConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.max_iter < 1:
            raise ValueError(f"ProbeConfig.max_iter must be >= 1, got {self.max_iter}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["split"] = list(self.split)
        d["lambdas"] = list(self.lambdas)
        d["ridge_lambdas"] = list(self.ridge_lambdas)
        d["mdl_blocks"] = list(BLOCKS)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "ProbeConfig":
        """The inverse of ``to_dict`` ("mdl_blocks" is a constant of the code and is not read).
        ValueError naming ``where`` for a missing or invalid setting."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        data = {**LEGACY_SETTINGS, **data}
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"{where}: missing field {missing[0]!r}")
        values = {f.name: data[f.name] for f in fields(cls)}
        for name in ("split", "lambdas", "ridge_lambdas"):
            if not isinstance(values[name], (list, tuple)):
                raise ValueError(f"{where}.{name}: expected a list, got {type(values[name]).__name__}")
            values[name] = tuple(values[name])
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None
