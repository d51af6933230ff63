"""stratascope.corpus — the built-in treebank, CoNLL-U I/O and tokenizers.

Public API (other packages code against these names):

Data
    ``Word``, ``Sentence`` (``corpus.sentence``): a CoNLL-U sentence in memory; ``Sentence.words``
    excludes multiword-token ranges and empty nodes, kept in ``multiword_tokens`` /
    ``empty_nodes``; ``Sentence.logprob`` is the exact natural-log probability of a generated
    sentence (None for real treebanks).
Treebank
    ``DEFAULT_GRAMMAR`` (``corpus.grammar``): the grammar as one editable data structure;
    ``DEEP_GRAMMAR`` (``corpus.deep_grammar``): center embedding, coordinated subjects, past
    tenses and auxiliaries; ``builtin_grammar(name)`` for ``default`` / ``deep``.
    ``generate_sentences(n, seed, grammar=DEFAULT_GRAMMAR) -> list[Sentence]``: deterministic,
    labelled, with exact log-probabilities. ``write_treebank(out_dir, n_sentences, seed) -> dict``
    writes train/val/probe.conllu, vocab.json and stats.json and returns the stats.
    ``entropy_floor(sentences)``: nats per token, counting one end-of-sentence token each.
    ``agreement_minimal_pairs(sentences) -> list[MinimalPair(prefix, correct, wrong)]``;
    ``deep_minimal_pairs(sentences) -> list[TaggedPair]`` (every agreeing word, tagged with its
    construction, nesting depth and distance bucket: ``corpus.deep_labels``).
CoNLL-U
    ``read_conllu(path) -> list[Sentence]``, ``write_conllu(sentences, path)``, ``CoNLLUError``
    (a ValueError carrying file name and line number).
Tokenizers
    ``WordTokenizer`` (specials ``<bos>`` 0, ``<eos>`` 1, ``<pad>`` 2, ``<unk>`` 3),
    ``train_bpe_tokenizer(texts, vocab_size, out_dir)`` (byte-level BPE loadable by
    ``GPT2TokenizerFast(vocab=..., merges=...)``), ``align_words_to_tokens(hf_tokenizer, words)
    -> Alignment`` (token span and last sub-token of every word).

Also available: ``ChartParser`` (exhaustive parser proving unambiguity), ``compile_grammar``,
``depth_from_heads``, ``head_cycle`` (the word IDs of a HEAD cycle, or None),
``annotate_agreement`` (agreement labels for any UD tree), ``unigram_entropy``, ``iter_conllu``,
``parse_conllu_string``, ``SplitConfig``.
"""

from corpus.conllu_io import CoNLLUError, iter_conllu, parse_conllu_string, read_conllu, write_conllu
from corpus.deep_grammar import DEEP_GRAMMAR
from corpus.deep_labels import TaggedPair, deep_minimal_pairs
from corpus.grammar import DEFAULT_GRAMMAR, GRAMMAR_NAMES, Grammar, WordClass, builtin_grammar
from corpus.labels import (
    MinimalPair, agreement_minimal_pairs, annotate_agreement, depth_from_heads, head_cycle,
)
from corpus.parser import ChartParser, ParseResult
from corpus.pcfg import PCFG, compile_grammar
from corpus.sampler import generate_sentences
from corpus.sentence import EmptyNode, MultiwordToken, Sentence, Word
from corpus.stats import entropy_floor, unigram_entropy
from corpus.tokenizers import Alignment, WordTokenizer, align_words_to_tokens, train_bpe_tokenizer
from corpus.treebank import SplitConfig, write_treebank

__all__ = [
    "Alignment", "ChartParser", "CoNLLUError", "DEEP_GRAMMAR", "DEFAULT_GRAMMAR", "EmptyNode",
    "GRAMMAR_NAMES", "Grammar", "MinimalPair", "MultiwordToken", "PCFG", "ParseResult", "Sentence",
    "SplitConfig", "TaggedPair", "Word", "WordClass", "WordTokenizer", "agreement_minimal_pairs",
    "align_words_to_tokens", "annotate_agreement", "builtin_grammar", "compile_grammar",
    "deep_minimal_pairs", "depth_from_heads", "entropy_floor",
    "generate_sentences", "head_cycle", "iter_conllu", "parse_conllu_string", "read_conllu",
    "train_bpe_tokenizer", "unigram_entropy", "write_conllu", "write_treebank",
]
