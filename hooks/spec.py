"""The model-spec grammar: the one parser for the strings users pass as ``--model``,
``--compare``, ``--gpt2`` and to ``hooks.load``.

=====================  ========  ==============================================================
spelling               kind      what it names
=====================  ========  ==============================================================
``runs/NAME``, a path  native    one of our runs, or one of its ``checkpoints/step_N``
``NAME``               native    ``runs/NAME`` when no directory ``NAME`` exists here
``native:PATH``        native    the same, explicitly (``run:PATH`` is an old alias)
``gpt2:SOURCE``        gpt2      our GPT holding GPT-2 weights (``gpt_model.load_gpt2``)
``tl:SOURCE``          tl        TransformerLens ``TransformerBridge.boot_transformers``
``nnsight:SOURCE``     nnsight   ``nnsight.TransformersModel``
=====================  ========  ==============================================================

SOURCE is a Hugging Face model directory (with its tokenizer) or a hub name already in the local
cache (nothing is downloaded; ``Spec.hf_dir()`` resolves it). A string whose prefix before ``:``
is not one of these kinds is a path (so ``C:\\models`` or ``my:run`` stay paths).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpt_model.rundir import RunDir, resolve_model_dir

KINDS = ("native", "gpt2", "tl", "nnsight")
ALIASES = {"run": "native"}
SPEC_HELP = "runs/NAME, a checkpoint directory, gpt2:DIR, tl:DIR or nnsight:DIR"
HF_DIR_FILES = "config.json, the weights (model.safetensors or pytorch_model.bin) and the tokenizer files"


@dataclass(frozen=True)
class Spec:
    kind: str  # one of KINDS
    source: str  # the path or Hugging Face name after the prefix

    def __str__(self) -> str:
        return self.source if self.kind == "native" else f"{self.kind}:{self.source}"

    @property
    def is_native(self) -> bool:
        return self.kind == "native"

    def model_dir(self) -> Path | None:
        """A native spec's run or checkpoint directory (``runs/`` fallback applied); None when it
        does not exist or the spec is not native."""
        return resolve_model_dir(self.source) if self.is_native else None

    def run_dir(self) -> RunDir | None:
        """The run behind a native spec (a checkpoint → its run), or None."""
        return RunDir.find(self.source) if self.is_native else None

    def hf_dir(self) -> Path:
        """The Hugging Face model directory of a gpt2:/tl:/nnsight: spec: SOURCE itself, or a hub
        name's snapshot in the local Hugging Face cache (nothing is downloaded). One-line
        FileNotFoundError / ValueError naming the spec, the path and what was looked for."""
        from gpt_model.gpt2_weights import cached_hub_dir, hub_cache_dir, is_hub_name

        if self.is_native:
            raise ValueError(f"{self} is a native spec, not a Hugging Face model (specs: {SPEC_HELP})")
        path = Path(self.source).expanduser()
        if path.is_dir():
            return path
        if path.exists():
            raise ValueError(f"{self}: {path} is a file: expected a directory holding {HF_DIR_FILES}")
        if is_hub_name(self.source):
            cached = cached_hub_dir(self.source)
            if cached is not None:
                return cached
            raise FileNotFoundError(
                f"{self}: no such directory {path.absolute()}, and no hub model {self.source!r} in the Hugging "
                f"Face cache ({hub_cache_dir()}): expected a directory holding {HF_DIR_FILES}, or the name of "
                f"a model already downloaded (nothing is downloaded here)"
            )
        raise FileNotFoundError(f"{self}: no such directory {path}: expected a directory holding {HF_DIR_FILES}")


def parse_spec(spec: str | Path | Spec) -> Spec:
    """Parse a model spec; ValueError for an empty one."""
    if isinstance(spec, Spec):
        return spec
    text = str(spec).strip()
    prefix, sep, rest = text.partition(":")
    kind = ALIASES.get(prefix, prefix)
    if not sep or kind not in KINDS:
        kind, rest = "native", text
    if not rest:
        raise ValueError(f"empty model source in spec {text!r} (specs: {SPEC_HELP})")
    return Spec(kind, rest)
