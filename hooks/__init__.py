"""Hook names, model backends, caching and interventions, and the on-disk activation store.

    import hooks
    backend = hooks.load("runs/demo")          # or "gpt2:DIR", "tl:DIR", "nnsight:DIR" (hooks/spec.py)
    [run] = backend.run([["The", "dogs", "bark"]], patterns=True)
    run.resid                                  # [n_layer + 1, tokens, d_model], 0 = embeddings
    store = hooks.ActivationStore.build("acts/", backend, "probe.conllu")
    store.layer(3)                             # np.memmap [n_words, d_model]

See docs/hooks.md.
"""

from hooks.backends import Backend, BridgeBackend, HookedBackend, NativeBackend, NNsightBackend, SentenceRun, lock_for
from hooks.info import ModelInfo
from hooks.interventions import (
    ablate_block,
    ablate_head,
    ablate_mlp,
    add_steering_vector,
    cache_activations,
    hook_name,
    patch_activation,
    run_with_hooks,
)
from hooks.loader import load
from hooks.names import (
    BLOCK_HOOKS,
    GLOBAL_HOOKS,
    is_pairwise,
    layer_of,
    pattern_name,
    resid_name,
    resid_names,
    select_hooks,
)
from hooks.spec import SPEC_HELP, Spec, parse_spec
from hooks.store import ActivationStore, CorpusSource, DamagedStoreError, StaleStoreError
from hooks.tokenize import (
    Encoding,
    HFTokenizerAdapter,
    TokenizerAdapter,
    WordTokenizerAdapter,
    load_hf_tokenizer,
    load_run_tokenizer,
)

__all__ = [
    "load",
    "parse_spec",
    "Spec",
    "SPEC_HELP",
    "Backend",
    "HookedBackend",
    "NativeBackend",
    "BridgeBackend",
    "NNsightBackend",
    "ModelInfo",
    "StaleStoreError",
    "DamagedStoreError",
    "SentenceRun",
    "lock_for",
    "Encoding",
    "TokenizerAdapter",
    "WordTokenizerAdapter",
    "HFTokenizerAdapter",
    "load_hf_tokenizer",
    "load_run_tokenizer",
    "BLOCK_HOOKS",
    "GLOBAL_HOOKS",
    "resid_name",
    "resid_names",
    "pattern_name",
    "is_pairwise",
    "layer_of",
    "select_hooks",
    "cache_activations",
    "run_with_hooks",
    "hook_name",
    "ablate_head",
    "ablate_mlp",
    "ablate_block",
    "patch_activation",
    "add_steering_vector",
    "ActivationStore",
    "CorpusSource",
]
