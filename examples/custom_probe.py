"""Define a custom probing task and probe a hooked model: python examples/custom_probe.py [RUN_DIR]"""
import sys

import hooks
import probes
from corpus import generate_sentences


@probes.task("noun_number", level="middle", kind="categorical")
def noun_number(sentence):
    """Number of each noun (Sing / Plur); other words unused."""
    return [w.feats.get("Number") if w.upos == "NOUN" else None for w in sentence.words]


backend = hooks.load(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
sentences = generate_sentences(400, seed=1)
results = probes.probe(backend, sentences, [noun_number, "upos"], probes.ProbeConfig(n_bootstrap=200, mdl=False))
print(probes.summary(results))
