"""Probing at the size users bring: a GPT-2-small-shaped model on a UD treebank, end to end.

    python bench/bench_scale.py                        # 12 x 768, BPE 8,000, UD EWT dev, CPU
    python bench/bench_scale.py --device cuda          # the same on a GPU
    python bench/bench_scale.py --stages default       # only the default probe run
    python bench/bench_scale.py --shape 24x1024x16     # another shape (layers x width x heads)
    python bench/bench_scale.py --quick                # 2 x 64 on 40 sentences: checks the script

It builds, offline, a byte-level BPE (vocab 8,000) trained on the treebank's own text and a
randomly initialised Hugging Face GPT-2 of the given shape (context 1024) saved with that
tokenizer, then measures, in one run:

``default``  the default ``stratascope probe --model gpt2:DIR --data FILE`` (8 tasks, the twin,
             controls, MDL, 1,000 bootstrap resamples, cumulative probes) in a child process:
             wall time, the stage times results.json records (extraction and each task, per
             model), and the child's peak RSS.
``upos``     ``--tasks upos --no-twin --no-mdl --no-control --no-cumulative --bootstrap 0``
             against the hand-written peer a researcher would write: HF ``output_hidden_states``,
             the vector at each word's last sub-token, scikit-learn ``LogisticRegression`` per
             layer with C from a grid of 3 picked on the validation split — the same sentence split
             as ours. Reports both times and test accuracy per layer side by side.
``agreement``  scikit-learn at the λ our UPOS-only run chose per layer (its results.json in the
             work directory, so run after ``upos``), on our features standardised on the
             training words as ours are (``C = 1/(λ·n_train)``): test accuracy per layer beside
             ours. The 3-C peer above picks its own C on 2,600 validation words, so its accuracy
             also moves with that choice; this stage isolates the fits.
``memory``   peak RSS of a UPOS-only run (no twin) with the features in memory and with
             ``--max-memory`` at half their size (float16 memmaps streamed from a store).
``extract``  our activation extraction (``probes.models.extract``, batches of similar length)
             against a plain HF forward with ``output_hidden_states=True`` over the same
             sentences, batch size 32: in corpus order (the hand-written script) and in the same
             length-sorted batches as ours (the forward passes alone).

Writes bench/results/scale[_DEVICE][_SHAPE].json and prints a summary. Times depend on the
machine and its load: the JSON records both (bench/common.machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import write_json  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "ud_english_ewt" / "en_ewt-ud-dev.conllu"
STAGES = ("extract", "upos", "agreement", "default", "memory")
DEFAULT_STAGES = "extract,upos,agreement,default"
PEER_C_GRID = (0.1, 1.0, 10.0)


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        n_layer, d_model, n_head = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--shape must be LAYERSxWIDTHxHEADS (e.g. 12x768x12), got {text!r}") from None
    if d_model % n_head:
        raise SystemExit(f"--shape: width {d_model} is not divisible by {n_head} heads")
    return n_layer, d_model, n_head


# ----------------------------------------------------------------------------- the model
def build_model(out: Path, sentences: list[Any], shape: tuple[int, int, int], vocab: int, seed: int = 0) -> Path:
    """A random HF GPT-2 of ``shape`` with a BPE trained on the sentences' text, saved in ``out``."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    from corpus import train_bpe_tokenizer

    n_layer, d_model, n_head = shape
    texts = [" ".join(s.forms) for s in sentences]
    tok = train_bpe_tokenizer(texts, vocab, out / "bpe")
    assert isinstance(tok, GPT2TokenizerFast)
    tok.save_pretrained(str(out))
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=d_model, n_layer=n_layer, n_head=n_head,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(str(out))
    return out


# ----------------------------------------------------------------------------- stages
def run_cli(args: list[str], env_threads: int | None) -> dict[str, Any]:
    """``stratascope ARGS`` in a child process: wall seconds, peak RSS (MB: the child's VmHWM,
    which, unlike ru_maxrss, does not inherit the parent's peak across exec) and the peak RSS of
    each stage (``bench.rss_stages``)."""
    code = ("import json, re, sys\n"
            "import bench.rss_stages as rss\n"
            "rss.start()\n"
            "from app.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())\n"
            "print('BENCH_RSS ' + (hwm.group(1) if hwm else '0'), file=sys.stderr)\n"
            "print('BENCH_RSS_STAGES ' + json.dumps(rss.report()), file=sys.stderr)\n"
            "sys.exit(rc)\n")
    env = dict(os.environ)
    if env_threads:
        env["OMP_NUM_THREADS"] = str(env_threads)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rss, by_stage = None, {}
    for line in proc.stderr.splitlines():
        if line.startswith("BENCH_RSS "):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("BENCH_RSS_STAGES "):
            by_stage = json.loads(line.partition(" ")[2])
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"stratascope {' '.join(args)} failed with status {proc.returncode}")
    return {"wall_s": wall, "peak_rss_mb": rss, "peak_rss_by_stage_mb": by_stage, "stdout_tail": proc.stdout[-1500:]}


def stage_times(results_path: Path) -> dict[str, Any]:
    """Per model: extraction and each task's seconds, and each task's stages (features, fit,
    mdl, control, mdl_control, cumulative, score — the bootstrap is in score)."""
    results = json.loads(results_path.read_text())
    out = {}
    for m in results["models"]:
        out[m["tag"]] = {"role": m["role"], **{k: round(v, 2) for k, v in m.get("timing_s", {}).items()},
                         "task_stages": {name: {k: round(v, 2) for k, v in t.get("stages_s", {}).items()}
                                         for name, t in m["tasks"].items()}}
    return out


def stage_default(model_dir: Path, data: Path, work: Path, device: str, threads: int | None) -> dict[str, Any]:
    out = work / "default"
    res = run_cli(["probe", "--model", f"gpt2:{model_dir}", "--data", str(data), "--out", str(out),
                   "--device", device, "--quiet"], threads)
    return {**res, "stages_s": stage_times(out / "results.json")}


def stage_upos(model_dir: Path, data: Path, work: Path, device: str, threads: int | None,
               sentences: list[Any], peer_from: Path | None = None) -> dict[str, Any]:
    """Ours against the hand-written peer; ``peer_from``: a scale JSON whose ``upos`` stage
    already measured the peer on the same model, data and machine (its time and accuracies are
    reused, and the file is named in the result)."""
    out = work / "upos"
    ours = run_cli(["probe", "--model", f"gpt2:{model_dir}", "--data", str(data), "--out", str(out),
                    "--device", device, "--tasks", "upos", "--no-twin", "--no-mdl", "--no-control",
                    "--no-cumulative", "--bootstrap", "0", "--quiet"], threads)
    results = json.loads((out / "results.json").read_text())
    our_acc = [layer["score"] for layer in results["models"][0]["tasks"]["upos"]["layers"]]
    extra: dict[str, Any] = {}
    if peer_from is None:
        t0 = time.perf_counter()
        peer_acc = peer_upos(model_dir, sentences, device)
        peer_s = time.perf_counter() - t0
    else:
        before = json.loads(peer_from.read_text())
        peer_s, peer_acc = before["upos"]["peer_s"], before["upos"]["peer_acc"]
        extra = {"peer_from": str(peer_from), "peer_measured": before.get("machine", {})}
    diff = [abs(a - b) for a, b in zip(our_acc, peer_acc)]
    return {"ours_s": ours["wall_s"], "ours_peak_rss_mb": ours["peak_rss_mb"], "peer_s": peer_s,
            "speedup": peer_s / ours["wall_s"], "ours_acc": our_acc, "peer_acc": peer_acc,
            "max_abs_diff_points": 100 * max(diff), "ours_stages_s": stage_times(out / "results.json"), **extra}


def stage_memory(model_dir: Path, data: Path, work: Path, device: str, threads: int | None,
                 shape: tuple[int, int, int], n_words: int) -> dict[str, Any]:
    """Peak RSS of a UPOS-only probe run (no twin, no controls, MDL or cumulative probes: the
    features, the largest task's copy and one λ path) with the features in memory, and with
    ``--max-memory`` below their size (streamed float16 memmaps)."""
    n_layer, d_model, _ = shape
    features_mb = 4 * (n_layer + 1) * n_words * d_model / 2**20
    budget_gib = features_mb / 2**10 / 2  # half the features: forces streaming
    base = ["probe", "--model", f"gpt2:{model_dir}", "--data", str(data), "--device", device, "--tasks", "upos",
            "--no-twin", "--no-mdl", "--no-control", "--no-cumulative", "--bootstrap", "0", "--quiet", "--force"]
    out: dict[str, Any] = {"features_float32_mb": features_mb}
    for name, extra in (("in_memory", []), ("streamed", ["--max-memory", f"{budget_gib:.3f}"])):
        res = run_cli([*base, "--out", str(work / f"memory_{name}"), *extra], threads)
        out[name] = {"wall_s": res["wall_s"], "peak_rss_mb": res["peak_rss_mb"],
                     "peak_rss_by_stage_mb": res["peak_rss_by_stage_mb"],
                     "stages_s": stage_times(work / f"memory_{name}" / "results.json")}
    return out


def hf_word_vectors(model_dir: Path, sentences: list[Any], device: str, batch_size: int = 32,
                    by_length: bool = False) -> np.ndarray:
    """The peer's features: every layer's hidden state at each word's last sub-token.
    [n_layer + 1, n_words, d_model], float32, in sentence order. Like ours, the words are joined
    by spaces after a BOS token, and the batch is right-padded under an attention mask. Batches
    follow the corpus order, as a hand-written script's would; ``by_length``: batches of
    similar length, as ours (the same forward passes, without our hooks and alignment).
    Like any script reading ``hidden_states``, its last layer is after GPT-2's final LayerNorm
    (ours is ``blocks.{L-1}.hook_resid_post``, before it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).to(device).eval()
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if by_length:
        lengths = [len(ids) for ids in tok([" ".join(s.forms) for s in sentences], add_special_tokens=False)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        ordered = hf_word_vectors(model_dir, [sentences[i] for i in order], device, batch_size)
        starts = np.concatenate([[0], np.cumsum([len(sentences[i].words) for i in order])])
        pieces = {i: ordered[:, starts[k]:starts[k + 1]] for k, i in enumerate(order)}
        return np.concatenate([pieces[i] for i in range(len(sentences))], axis=1)
    per_sentence: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, len(sentences), batch_size):
            batch = sentences[i:i + batch_size]
            texts = [" ".join(s.forms) for s in batch]
            enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
            rows = [[bos, *ids] for ids in enc["input_ids"]]
            width = max(map(len, rows))
            ids = torch.full((len(rows), width), bos, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, r in enumerate(rows):
                ids[j, :len(r)] = torch.tensor(r)
                mask[j, :len(r)] = 1
            hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           output_hidden_states=True).hidden_states
            h = torch.stack(hidden).float().cpu()  # [L+1, b, t, d]
            for j, s in enumerate(batch):
                ends = np.cumsum([len(w) + 1 for w in s.forms]) - 1  # end offset of each word
                last: dict[int, int] = {}
                for t, (a, b) in enumerate(enc["offset_mapping"][j]):
                    if b > a and not texts[j][a:b].isspace():  # a lone space token belongs to no word
                        last[int(np.searchsorted(ends, b - 1, side="left"))] = t + 1  # +1: the BOS
                idx = torch.tensor([last[w] for w in range(len(s.forms))])
                per_sentence.append(h[:, j, idx].numpy())
    return np.concatenate(per_sentence, axis=1)


def upos_split(sentences: list[Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every word's UPOS, and masks of the train / val / test words: our sentence split."""
    from probes.suite import split_sentences

    labels = np.array([w.upos for s in sentences for w in s.words])
    sent_of_word = np.repeat(np.arange(len(sentences)), [len(s.words) for s in sentences])
    split = split_sentences(sentences)[sent_of_word]
    return labels, {"train": split == 0, "val": split == 1, "test": split == 2}


def peer_upos(model_dir: Path, sentences: list[Any], device: str) -> list[float]:
    """The hand-written script: HF hidden states + scikit-learn per layer, C on validation."""
    from sklearn.linear_model import LogisticRegression

    feats = hf_word_vectors(model_dir, sentences, device)
    labels, parts = upos_split(sentences)
    accs = []
    for layer in range(feats.shape[0]):
        X = feats[layer]
        best, best_c = -1.0, None
        for c in PEER_C_GRID:
            clf = LogisticRegression(C=c, max_iter=1000, tol=1e-5).fit(X[parts["train"]], labels[parts["train"]])
            acc = clf.score(X[parts["val"]], labels[parts["val"]])
            if acc > best:
                best, best_c = acc, clf
        accs.append(float(best_c.score(X[parts["test"]], labels[parts["test"]])))
    return accs


def stage_agreement(model_dir: Path, sentences: list[Any], work: Path, device: str) -> dict[str, Any]:
    """scikit-learn at the λ our UPOS-only run chose, per layer, on the same features (our
    extraction), standardised on the training words: the fits alone, side by side."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    import hooks
    from probes.models import extract

    results = work / "upos" / "results.json"
    if not results.is_file():
        raise SystemExit(f"agreement: no {results}; run the upos stage first (same --work)")
    layers = json.loads(results.read_text())["models"][0]["tasks"]["upos"]["layers"]
    feats = extract(hooks.load(f"gpt2:{model_dir}", device=device), sentences, device=device).cpu().numpy()
    labels, parts = upos_split(sentences)
    train, test = parts["train"], parts["test"]
    t0 = time.perf_counter()
    sk_acc = []
    for layer in layers:
        scaler = StandardScaler().fit(feats[layer["layer"]][train])
        clf = LogisticRegression(C=1.0 / (layer["lambda"] * int(train.sum())), max_iter=1000, tol=1e-5)
        clf.fit(scaler.transform(feats[layer["layer"]][train]), labels[train])
        sk_acc.append(float(clf.score(scaler.transform(feats[layer["layer"]][test]), labels[test])))
    ours = [layer["score"] for layer in layers]
    return {"lambda": [layer["lambda"] for layer in layers], "ours_acc": ours, "sklearn_acc": sk_acc,
            "sklearn_fit_s": time.perf_counter() - t0,
            "max_abs_diff_points": 100 * max(abs(a - b) for a, b in zip(ours, sk_acc))}


def stage_extract(model_dir: Path, sentences: list[Any], device: str, batch_size: int = 32) -> dict[str, Any]:
    """Our extraction vs a plain HF output_hidden_states forward, same sentences and batch size."""
    import hooks
    from probes.models import extract

    backend = hooks.load(f"gpt2:{model_dir}", device=device)
    extract(backend, sentences[:batch_size], batch_size=batch_size, device=device)  # warm-up
    t0 = time.perf_counter()
    feats = extract(backend, sentences, batch_size=batch_size, device=device)
    ours = time.perf_counter() - t0
    del feats, backend
    hf_word_vectors(model_dir, sentences[:batch_size], device, batch_size)  # warm-up
    t0 = time.perf_counter()
    hf_word_vectors(model_dir, sentences, device, batch_size)
    peer = time.perf_counter() - t0
    t0 = time.perf_counter()
    hf_word_vectors(model_dir, sentences, device, batch_size, by_length=True)
    peer_sorted = time.perf_counter() - t0
    n_words = sum(len(s.words) for s in sentences)
    return {"ours_s": ours, "hf_forward_s": peer, "throughput_ratio": peer / ours,
            "hf_forward_by_length_s": peer_sorted, "throughput_ratio_by_length": peer_sorted / ours,
            "ours_words_per_s": n_words / ours, "hf_words_per_s": n_words / peer}


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a CoNLL-U file (default: UD EWT dev)")
    ap.add_argument("--shape", default="12x768x12", help="LAYERSxWIDTHxHEADS (default 12x768x12)")
    ap.add_argument("--vocab", type=int, default=8000, help="BPE vocabulary size (default 8000)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the probe child processes")
    ap.add_argument("--stages", default=DEFAULT_STAGES,
                    help=f"comma-separated subset of {','.join(STAGES)} (default: {DEFAULT_STAGES})")
    ap.add_argument("--max-sentences", type=int, help="use the first N sentences")
    ap.add_argument("--quick", action="store_true", help="2x64x2, vocab 400, 40 sentences: checks the script")
    ap.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    ap.add_argument("--peer-from", type=Path, metavar="JSON",
                    help="upos stage: reuse the hand-written peer's time and accuracies from this earlier "
                         "bench_scale JSON (same model, data and machine) instead of rerunning it")
    args = ap.parse_args(argv)

    from corpus import read_conllu, write_conllu

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; choose from {STAGES}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this torch build has no CUDA device")
    shape = parse_shape("2x64x2" if args.quick else args.shape)
    vocab = 400 if args.quick else args.vocab
    sentences = read_conllu(args.data)
    limit = 40 if args.quick else args.max_sentences
    if limit:
        sentences = sentences[:limit]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data.conllu"
    write_conllu(sentences, data)
    sentences = read_conllu(data)
    n_words = sum(len(s.words) for s in sentences)
    print(f"bench_scale: {len(sentences)} sentences, {n_words} words; model {shape[0]}x{shape[1]} "
          f"({shape[2]} heads), BPE {vocab}, device {args.device}; work dir {work}", flush=True)
    t0 = time.perf_counter()
    model_dir = build_model(work / "model", sentences, shape, vocab)
    report: dict[str, Any] = {"shape": {"n_layer": shape[0], "d_model": shape[1], "n_head": shape[2],
                                        "context_len": 1024, "vocab_size": vocab},
                              "data": {"path": str(args.data), "n_sentences": len(sentences), "n_words": n_words},
                              "device": args.device, "build_s": time.perf_counter() - t0}
    if "extract" in stages:
        report["extract"] = r = stage_extract(model_dir, sentences, args.device)
        print(f"extract: ours {r['ours_s']:.1f} s, HF forward {r['hf_forward_s']:.1f} s in corpus order "
              f"→ {r['throughput_ratio']:.2f}x HF throughput; {r['hf_forward_by_length_s']:.1f} s with batches by "
              f"length → {r['throughput_ratio_by_length']:.2f}x", flush=True)
    if "upos" in stages:
        report["upos"] = r = stage_upos(model_dir, args.data if not limit else data, work, args.device,
                                        args.threads, sentences, args.peer_from)
        print(f"upos only: ours {r['ours_s']:.1f} s, hand-written peer {r['peer_s']:.1f} s → {r['speedup']:.2f}x; "
              f"max |Δ accuracy| {r['max_abs_diff_points']:.2f} points over {len(r['ours_acc'])} layers", flush=True)
    if "agreement" in stages:
        report["agreement"] = r = stage_agreement(model_dir, sentences, work, args.device)
        print(f"agreement: scikit-learn at our λ per layer, max |Δ accuracy| {r['max_abs_diff_points']:.2f} points "
              f"over {len(r['ours_acc'])} layers", flush=True)
    if "default" in stages:
        report["default"] = r = stage_default(model_dir, args.data if not limit else data, work, args.device,
                                              args.threads)
        print(f"default probe run: {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        top = sorted(r["peak_rss_by_stage_mb"].items(), key=lambda kv: -kv[1])[:5]
        print("  highest RSS during: " + "; ".join(f"{k} {v:.0f} MB" for k, v in top), flush=True)
        for tag, st in r["stages_s"].items():
            print(f"  {tag}: " + ", ".join(f"{k} {v:.1f}s" for k, v in st.items() if k not in ("role", "task_stages")),
                  flush=True)
            for task, stages in st["task_stages"].items():
                print(f"    {task}: " + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items()), flush=True)
    if "memory" in stages:
        report["memory"] = r = stage_memory(model_dir, args.data if not limit else data, work, args.device,
                                            args.threads, shape, n_words)
        print(f"memory (upos only, no twin): features {r['features_float32_mb']:.0f} MB as float32; peak RSS "
              f"{r['in_memory']['peak_rss_mb']:.0f} MB in memory ({r['in_memory']['wall_s']:.0f} s), "
              f"{r['streamed']['peak_rss_mb']:.0f} MB streamed from float16 memmaps "
              f"({r['streamed']['wall_s']:.0f} s)", flush=True)
    suffix = ("_quick" if args.quick else "") + ("" if args.device == "cpu" else f"_{args.device.split(':')[0]}")
    suffix += "" if args.quick or args.shape == "12x768x12" else f"_{args.shape}"
    path = write_json(f"scale{suffix}", report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
