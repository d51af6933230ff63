"""Extract every block's residual stream for a CoNLL-U split to disk and print the shapes.
Usage: python examples/extract_residuals.py runs/demo data/treebank/probe.conllu [OUT_DIR]"""
import sys

import hooks


def main(argv: list[str] | None = None) -> None:
    spec, conllu, *rest = argv if argv is not None else sys.argv[1:]
    backend = hooks.load(spec)  # runs/NAME, gpt2:SOURCE, tl:SOURCE or nnsight:SOURCE
    out = rest[0] if rest else f"acts/{backend.metadata.name.replace(':', '_')}"
    store = hooks.ActivationStore.build(out, backend, conllu)  # resumes if interrupted
    for layer in range(backend.n_layer + 1):  # 0 = embeddings, l = after block l-1
        print(f"layer {layer}: {store.layer(layer).shape} {store.dtype} -> {out}")


if __name__ == "__main__":
    main()
