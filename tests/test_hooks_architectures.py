"""Architectures users bring: tiny random Llama, GPT-NeoX (Pythia), Qwen2 and GPT-2 in Hugging Face
layout (tests/hf_arch_fixtures.py), through both `tl:` (TransformerBridge) and `nnsight:`.

For every architecture × backend: the documented hook names with their shapes, the residual stream
equal to Hugging Face's own `output_hidden_states` (and the last one after the final norm), attention
patterns and logits equal to Hugging Face's, `stratascope probe` with the random-init twin, and the
activation store equal to the in-memory extraction. Plus: an architecture TransformerBridge does not
support (BioGPT) is refused in one line that points to nnsight.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hf_arch_fixtures import ARCHS, D_MLP, D_MODEL, N_CTX, N_HEAD, N_LAYER, VOCAB, arch_dir
from hooks_fixtures import backend_for, make_sentences, one_torch_thread  # noqa: F401

import hooks
from app.cli import main
from probes.models import extract, random_init_twin

KINDS = ("tl", "nnsight")
CASES = [(arch, kind) for arch in ARCHS for kind in KINDS]
IDS = [f"{arch}-{kind}" for arch, kind in CASES]
# sentences of different lengths (a padded batch), with words the tiny BPE splits into pieces
SENTENCES = [["the", "dogs", "near", "the", "old", "cat", "sleep", "."],
             ["unbelievably", "a", "cat", "sees", "zyzzyva"], ["Bartholomew", "runs"]]
PARALLEL = {"neox"}  # attention and MLP both read the block input (use_parallel_residual)
ROTARY = {"llama", "neox", "qwen2"}


def backend(arch: str, kind: str, tmp_path_factory) -> hooks.Backend:
    """hooks.load("<kind>:<tiny arch dir>"), once per session."""
    return backend_for(kind, arch_dir(arch, tmp_path_factory))


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory):
    """The Hugging Face models themselves, the reference (eager attention returns its weights)."""
    from transformers import AutoModelForCausalLM

    return {arch: AutoModelForCausalLM.from_pretrained(arch_dir(arch, tmp_path_factory),
                                                       attn_implementation="eager").eval() for arch in ARCHS}


def final_norm(hf, arch: str):
    return {"llama": lambda: hf.model.norm, "qwen2": lambda: hf.model.norm,
            "neox": lambda: hf.gpt_neox.final_layer_norm, "gpt2": lambda: hf.transformer.ln_f}[arch]()


def hf_reference(hf, ids):
    with torch.no_grad():
        out = hf(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    return (torch.stack([h[0] for h in out.hidden_states]), torch.stack([a[0] for a in out.attentions]),
            out.logits[0])


# ----------------------------------------------------------------------------- 1. hooks vs Hugging Face
@pytest.mark.parametrize("arch,kind", CASES, ids=IDS)
def test_hooks_match_hugging_face(arch, kind, hf_models, tmp_path_factory):
    b = backend(arch, kind, tmp_path_factory)
    hf = hf_models[arch]
    meta = b.metadata
    assert (meta.backend, meta.n_layer, meta.n_head, meta.d_model, meta.vocab_size, meta.context_len) == (
        kind, N_LAYER, N_HEAD, D_MODEL, VOCAB, N_CTX)
    assert meta.name == f"{kind}:tiny-{arch}"
    block = ["hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_post", "attn.hook_pattern"]
    names = b.hook_names()
    for i in range(N_LAYER):
        assert {f"blocks.{i}.{h}" for h in block} <= set(names), (arch, kind)
    if kind == "tl":  # the bridge's own extras, as documented in docs/hooks.md "Architectures"
        assert ("blocks.0.hook_resid_mid" in names) == (arch not in PARALLEL)
        assert ("hook_pos_embed" in names) == (arch not in ROTARY)
        assert ("blocks.0.mlp.hook_pre_linear" in names) == (arch in ("llama", "qwen2"))  # gated MLPs
    else:
        assert len(names) == len(block) * N_LAYER

    extra = [f"blocks.{i}.{h}" for i in range(N_LAYER) for h in ("hook_attn_out", "hook_mlp_out", "hook_resid_pre")]
    runs = b.run(SENTENCES, patterns=True, names=extra)  # one right-padded batch
    assert len({len(r.encoding) for r in runs}) == 3
    assert any(e - s > 1 for r in runs for s, e in r.encoding.spans)  # some words are several tokens
    for run in runs:
        t = len(run.encoding)
        assert run.resid.shape == (N_LAYER + 1, t, D_MODEL)
        assert run.patterns.shape == (N_LAYER, N_HEAD, t, t)
        assert run.logits.shape == (t, VOCAB)
        assert all(x.shape == (t, D_MODEL) for x in run.activations.values())
        hidden, attentions, logits = hf_reference(hf, run.encoding.ids)
        # Hugging Face's hidden_states[l] is the input of block l for l < L; its last entry has the
        # final norm applied, so the raw last residual differs from it and the normed one equals it
        torch.testing.assert_close(run.resid[:-1], hidden[:-1], atol=1e-5, rtol=0)
        assert (run.resid[-1] - hidden[-1]).abs().max() > 0.1
        with torch.no_grad():
            torch.testing.assert_close(final_norm(hf, arch)(run.resid[-1]), hidden[-1], atol=1e-5, rtol=0)
        torch.testing.assert_close(run.patterns, attentions, atol=1e-5, rtol=0)
        torch.testing.assert_close(run.logits, logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(run.patterns.sum(-1), torch.ones(N_LAYER, N_HEAD, t))
        assert torch.all(run.patterns.triu(1) == 0)  # causal
        a = run.activations
        for i in range(N_LAYER):
            torch.testing.assert_close(a[f"blocks.{i}.hook_resid_pre"], run.resid[i])
            # Pre-LN, sequential or parallel: the block adds exactly its attention and MLP outputs
            torch.testing.assert_close(run.resid[i + 1] - run.resid[i],
                                       a[f"blocks.{i}.hook_attn_out"] + a[f"blocks.{i}.hook_mlp_out"],
                                       atol=1e-5, rtol=0)
        # the blocks do change the stream (the comparisons above are not satisfied by embeddings alone)
        assert (run.resid[2] - run.resid[1]).abs().mean() > 0.1


def test_parallel_residual_and_rotary_hooks(hf_models, tmp_path_factory):
    """NeoX (parallel): the MLP reads LN(resid_pre) and there is no resid_mid; Llama (sequential):
    the MLP reads LN(resid_pre + attn_out) = LN(resid_mid). Rotary models have no position stream."""
    words = SENTENCES[0]
    for arch in ("neox", "llama"):
        b = backend(arch, "tl", tmp_path_factory)
        hf = hf_models[arch]
        layer0 = (hf.gpt_neox.layers if arch == "neox" else hf.model.layers)[0]
        names = ["blocks.0.hook_resid_pre", "blocks.0.hook_attn_out", "blocks.0.ln2.hook_normalized"]
        a = b.run_one(words, resid=False, logits=False, names=names).activations
        x, attn = a["blocks.0.hook_resid_pre"], a["blocks.0.hook_attn_out"]
        norm = layer0.post_attention_layernorm  # the MLP's norm in both
        with torch.no_grad():
            want, other = (norm(x), norm(x + attn)) if arch == "neox" else (norm(x + attn), norm(x))
        torch.testing.assert_close(a["blocks.0.ln2.hook_normalized"], want, atol=1e-5, rtol=0)
        assert (a["blocks.0.ln2.hook_normalized"] - other).abs().max() > 0.1, arch
    # a hook the bridge lists but that never fires is refused in one line (NeoX's partial rotary
    # has no hook_rot_q); the rotary models do not list hook_pos_embed at all
    with pytest.raises(ValueError, match=r"'blocks\.0\.attn\.hook_rot_q' .* never fires") as info:
        backend("neox", "tl", tmp_path_factory).run_one(words, names="blocks.0.attn.hook_rot_q")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="no hook matches 'hook_pos_embed'"):
        backend("llama", "tl", tmp_path_factory).run_one(words, names="hook_pos_embed")
    gpt2 = backend("gpt2", "tl", tmp_path_factory).run_one(words, resid=False, logits=False,
                                                            names=["hook_pos_embed"])
    torch.testing.assert_close(gpt2.activations["hook_pos_embed"],
                               hf_models["gpt2"].transformer.wpe.weight[:len(gpt2.encoding)].detach())


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_grouped_query_attention_and_gated_mlp_hooks(arch, hf_models, tmp_path_factory):
    """Llama/Qwen2 through the bridge: keys/values have the 2 key/value heads, queries and z all 4;
    the output projection of hook_z is hook_attn_out; hook_pre is the gate, hook_pre_linear the up
    projection and hook_post act(gate)·up; hook_q is before the rotation, hook_rot_q after it."""
    layer = hf_models[arch].model.layers[1]
    names = [f"blocks.1.{h}" for h in ("attn.hook_q", "attn.hook_rot_q", "attn.hook_k", "attn.hook_v", "attn.hook_z",
                                       "hook_attn_out", "ln2.hook_normalized", "mlp.hook_pre",
                                       "mlp.hook_pre_linear", "mlp.hook_post", "hook_mlp_out")]
    run = backend(arch, "tl", tmp_path_factory).run_one(SENTENCES[1], resid=False, logits=False, names=names)
    a = {n.removeprefix("blocks.1."): x for n, x in run.activations.items()}
    t, dh = len(run.encoding), D_MODEL // N_HEAD
    assert a["attn.hook_q"].shape == a["attn.hook_rot_q"].shape == a["attn.hook_z"].shape == (t, N_HEAD, dh)
    assert a["attn.hook_k"].shape == a["attn.hook_v"].shape == (t, 2, dh)
    assert (a["attn.hook_q"][1:] - a["attn.hook_rot_q"][1:]).abs().max() > 1e-3  # rotated (not at position 0)
    torch.testing.assert_close(a["attn.hook_q"][0], a["attn.hook_rot_q"][0], atol=1e-6, rtol=0)
    x, mlp = a["ln2.hook_normalized"], layer.mlp
    with torch.no_grad():
        torch.testing.assert_close(layer.self_attn.o_proj(a["attn.hook_z"].reshape(t, -1)), a["hook_attn_out"])
        torch.testing.assert_close(a["mlp.hook_pre"], mlp.gate_proj(x))
        torch.testing.assert_close(a["mlp.hook_pre_linear"], mlp.up_proj(x))
        torch.testing.assert_close(a["mlp.hook_post"], mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x))
        torch.testing.assert_close(mlp.down_proj(a["mlp.hook_post"]), a["hook_mlp_out"])


# ----------------------------------------------------------------------------- random-init twin
@pytest.mark.parametrize("arch", ARCHS)
def test_random_init_twin(arch, hf_models, tmp_path_factory):
    """The twin of tl:DIR is a plain Hugging Face model (no bridge components), identical to the twin
    of nnsight:DIR for the same seed, with new weights; making it leaves the bridge untouched."""
    bridge = backend(arch, "tl", tmp_path_factory)
    before = bridge.run_one(SENTENCES[1], patterns=True)
    twins = {kind: random_init_twin(backend(arch, kind, tmp_path_factory), seed=3) for kind in KINDS}
    modules = {kind: twins[kind].model._module for kind in KINDS}
    assert not [m for m in modules["tl"].modules() if type(m).__module__.startswith("transformer_lens")]
    p_tl, p_nn = dict(modules["tl"].named_parameters()), dict(modules["nnsight"].named_parameters())
    p_hf = dict(hf_models[arch].named_parameters())
    assert p_tl.keys() == p_nn.keys() == p_hf.keys()
    assert all(torch.equal(p_tl[k], p_nn[k]) for k in p_tl)
    matrices = [k for k in p_hf if p_hf[k].ndim == 2]
    assert matrices and not any(torch.equal(p_tl[k], p_hf[k]) for k in matrices)
    runs = {kind: twins[kind].run_one(SENTENCES[1], patterns=True) for kind in KINDS}
    torch.testing.assert_close(runs["tl"].resid, runs["nnsight"].resid)
    torch.testing.assert_close(runs["tl"].patterns.sum(-1), torch.ones(N_LAYER, N_HEAD, len(runs["tl"].encoding)))
    assert (runs["tl"].resid[1:] - before.resid[1:]).abs().max() > 0.1  # other weights, other stream
    after = bridge.run_one(SENTENCES[1], patterns=True)
    assert torch.equal(after.resid, before.resid) and torch.equal(after.patterns, before.patterns)
    assert random_init_twin(bridge, seed=4).model._module.lm_head.weight.ne(p_tl["lm_head.weight"]).any()


# ----------------------------------------------------------------------------- 2. stratascope probe
@pytest.fixture(scope="session")
def treebank(tmp_path_factory):
    from corpus import SplitConfig, write_treebank

    path = tmp_path_factory.mktemp("arch-treebank")
    write_treebank(path, 100, seed=3, split=SplitConfig(0.5, 0.1, 0.4))
    return path


_PROBED: dict[str, dict] = {}


def probe_cli(arch: str, kind: str, treebank, tmp_path_factory) -> dict:
    key = f"{arch}-{kind}"
    if key not in _PROBED:
        out = tmp_path_factory.mktemp(f"probe-{key}")
        code = main(["probe", "--model", f"{kind}:{arch_dir(arch, tmp_path_factory)}", "--data", "treebank",
                     "--treebank", str(treebank), "--tasks", "upos,position", "--max-sentences", "30",
                     "--bootstrap", "20", "--no-mdl", "--no-control", "--no-cumulative", "--threads", "1",
                     "--out", str(out), "--quiet"])
        assert code == 0
        _PROBED[key] = json.loads((out / "results.json").read_text())
    return _PROBED[key]


@pytest.mark.parametrize("arch,kind", CASES, ids=IDS)
def test_probe_cli_with_twin(arch, kind, treebank, tmp_path_factory):
    import probes

    results = probe_cli(arch, kind, treebank, tmp_path_factory)
    probes.validate(results)
    model, twin = results["models"]
    assert (model["role"], twin["role"]) == ("model", "random_init")
    assert model["info"]["backend"] == kind and model["info"]["name"] == f"{kind}:tiny-{arch}"
    assert twin["info"]["backend"] == "nnsight" and "random-init" in twin["info"]["source"]
    assert model["n_layer"] == twin["n_layer"] == N_LAYER and model["d_model"] == D_MODEL
    scores = {}
    for m in (model, twin):
        upos, position = m["tasks"]["upos"], m["tasks"]["position"]
        assert [layer["layer"] for layer in upos["layers"]] == [0, 1, 2]
        acc = [layer["score"] for layer in upos["layers"]]
        majority = upos["baseline"]["score"]
        assert all(majority < a <= 1 for a in acc) and max(acc) > majority + 0.15  # words tell UPOS
        assert all(np.isfinite(layer["score"]) for layer in position["layers"])
        scores[m["role"]] = acc + [layer["score"] for layer in position["layers"]]
    assert scores["model"] != scores["random_init"]  # the twin is another model
    assert results["data"]["n_sentences"] > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_probe_results_agree_across_backends(arch, treebank, tmp_path_factory):
    """Same weights, same words, same seeds: tl: and nnsight: give the same probes, model and twin."""
    a, b = (probe_cli(arch, kind, treebank, tmp_path_factory) for kind in KINDS)
    for ma, mb in zip(a["models"], b["models"]):
        for task in ("upos", "position"):
            sa = [layer["score"] for layer in ma["tasks"][task]["layers"]]
            sb = [layer["score"] for layer in mb["tasks"][task]["layers"]]
            np.testing.assert_allclose(sa, sb, atol=1e-6, err_msg=f"{arch} {ma['role']} {task}")


# ----------------------------------------------------------------------------- 3. activation store
@pytest.mark.parametrize("arch,kind", CASES, ids=IDS)
def test_activation_store_equals_in_memory_extraction(arch, kind, tmp_path, tmp_path_factory):
    b = backend(arch, kind, tmp_path_factory)
    sentences = make_sentences(7, seed=5)
    names = b.resid_names() + ["blocks.1.hook_mlp_out"]
    store = hooks.ActivationStore.build(tmp_path / "store", b, sentences, names=names, dtype="float32",
                                        batch_size=3)
    memory = extract(b, sentences, batch_size=5)  # [L + 1, n_words, d], other batches
    n_words = sum(len(s) for s in sentences)
    assert store.complete and store.model["backend"] == kind and store.model["n_layer"] == N_LAYER
    assert memory.shape == (N_LAYER + 1, n_words, D_MODEL)
    for layer in range(N_LAYER + 1):
        rows = store.layer(layer)
        assert rows.shape == (n_words, D_MODEL)
        np.testing.assert_allclose(rows, memory[layer].numpy(), atol=1e-5, rtol=0)
    mlp = np.concatenate([r.at_words(r.activations["blocks.1.hook_mlp_out"]).numpy()
                          for r in b.run(sentences, resid=False, logits=False, names="blocks.1.hook_mlp_out")])
    np.testing.assert_allclose(store.read("blocks.1.hook_mlp_out"), mlp, atol=1e-5, rtol=0)
    assert np.abs(mlp).mean() > 1e-2
    reopened = hooks.ActivationStore(tmp_path / "store")
    np.testing.assert_array_equal(reopened.layer(N_LAYER), store.layer(N_LAYER))


# ----------------------------------------------------------------------------- 4. unsupported architecture
@pytest.fixture(scope="session")
def biogpt_dir(tmp_path_factory):
    """A tiny BioGPT: a causal LM that transformers and nnsight load but TransformerBridge has no
    adapter for (transformer-lens 4.3). Not one of the four: all four load through both backends."""
    from transformers import BioGptConfig, BioGptForCausalLM

    from corpus.tokenizers import load_hf_tokenizer

    out = tmp_path_factory.mktemp("arch-biogpt") / "tiny-biogpt"
    tok = load_hf_tokenizer(arch_dir("gpt2", tmp_path_factory))  # the same BPE
    tok.save_pretrained(out)
    cfg = BioGptConfig(vocab_size=VOCAB, hidden_size=D_MODEL, num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD,
                       intermediate_size=D_MLP, max_position_embeddings=N_CTX, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(15)
        BioGptForCausalLM(cfg).save_pretrained(out)
    return out


def test_unsupported_architecture_is_one_line(biogpt_dir, treebank, tmp_path, capsys):
    code = main(["probe", "--model", f"tl:{biogpt_dir}", "--data", "treebank", "--treebank", str(treebank),
                 "--tasks", "position", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "BioGptForCausalLM" in err and "does not support" in err and f"nnsight:{biogpt_dir}" in err
    assert not (tmp_path / "out" / "results.json").exists()
    # the suggested backend does load it, and its stream is Hugging Face's
    b = hooks.load(f"nnsight:{biogpt_dir}")
    run = b.run_one(SENTENCES[0], patterns=True)
    assert run.resid.shape == (N_LAYER + 1, len(run.encoding), D_MODEL)
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(biogpt_dir, attn_implementation="eager").eval()
    hidden, attentions, _ = hf_reference(hf, run.encoding.ids)
    torch.testing.assert_close(run.resid[:-1], hidden[:-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(run.patterns, attentions, atol=1e-5, rtol=0)
