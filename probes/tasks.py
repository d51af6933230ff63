"""Probing tasks: functions from a CoNLL-U sentence to one gold label per word.

A task is a name, the level it is expected at (``early`` / ``middle`` / ``late``, the
hypothesis under test: see docs/probes.md), a kind (``categorical`` → multinomial logistic
probe scored by accuracy; ``ordinal`` → ridge probe scored by R²) and a function
``fn(sentence) -> list[label | None]`` with one entry per word of ``sentence.words``
(``None``: the word is not used by this task). Defining one takes a few lines::

    import probes

    @probes.task("noun_number", level="middle", kind="categorical")
    def noun_number(sentence):
        return [w.feats.get("Number") if w.upos == "NOUN" else None for w in sentence.words]

Built-in tasks (``DESIGN_TASKS`` are the design's seven, the first seven rows below;
``DEFAULT_TASKS`` adds ``subject_number_next``; the others are extras):

=================== ====== =========== ==========================================================
name                level  kind        label of each word
=================== ====== =========== ==========================================================
position            early  ordinal     its 1-based index in the sentence
word                early  categorical its form, for the 250 most frequent forms (others unused)
upos                middle categorical its UPOS (in context: "walk" is NOUN or VERB)
depth               middle ordinal     edges to the root following HEAD (root = 0)
phrase              middle categorical MISC ``Const`` (constituent that introduced it) when the
                                       sentence has it (built-in treebank), else its DEPREL
                                       without subtype (``nmod:poss`` → ``nmod``)
subject_number      late   categorical at each finite verb, the Number of its agreement controller
                                       (its nsubj, or the noun a relative clause modifies when
                                       the nsubj is a relative pronoun), across attractors
next_upos           late   categorical UPOS of the next word (the last word is unused)
constituent         middle categorical MISC ``Const`` only (built-in treebank)
deprel              middle categorical full DEPREL (with subtype)
subject_number_next late   categorical at the word *before* each finite verb, the Number that
                                       verb must agree with (what a causal LM has to predict)
open_subjects       middle ordinal     subjects read and still waiting for their verb (a stack
                                       depth)
embedding_depth     middle ordinal     relative / complement clauses the word is embedded in
agreement_next      late   categorical the Number the next agreeing verb or auxiliary must take,
                                       once its subject is read (groups: held / read)
agreement_held      late   categorical the same, only where the word itself does not show it: after
                                       the subject, and not a verb agreeing with that subject
=================== ====== =========== ==========================================================

The last four are for the deep treebank (``stratascope corpus --grammar deep``, whose MISC
holds them: see ``corpus.deep_labels`` and docs/treebank.md); ``--tasks deep`` is the default
set plus these four. They compute from the tree when MISC lacks them. ``agreement_held`` is
not lexical by construction: every word it labels is drawn independently of the number it
asks for (attractor numbers and inner subjects are drawn afresh), so a probe on the
embeddings alone scores its majority baseline.

All built-ins need only CoNLL-U columns (the ``phrase`` fallback and ``subject_number`` compute
from HEAD / DEPREL / FEATS when MISC has nothing), so they run unchanged on any UD treebank,
multiword tokens and empty nodes included (those are not in ``Sentence.words``).

Note on ``subject_number`` at the verb: where verbs inflect for number (the built-in treebank:
every verb is present tense) the verb's own form carries the label, so it is decodable from
the embeddings (a flat curve from layer 0, selectivity ≈ 0). ``subject_number_next`` asks the
same question one word earlier, where the model cannot read it off the verb; it is in the
default set for that reason (``--tasks design`` gives the design's seven tasks alone).
"""

from __future__ import annotations

import hashlib
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LEVELS = ("early", "middle", "late")
KINDS = ("categorical", "ordinal")

Label = Any  # a hashable category (categorical) or a number (ordinal)


@dataclass(frozen=True, eq=False)
class Task:
    """A probing task (see module doc). ``groups`` (optional) names a subset of each used word
    (e.g. ``"attractor"``) so scores are also reported per group; ``max_classes`` keeps only the
    most frequent labels of a categorical task (the rest are unused)."""

    name: str
    level: str
    kind: str
    fn: Callable[[Any], Sequence[Label | None]]
    description: str = ""
    max_classes: int | None = None
    groups: Callable[[Any], Sequence[str | None]] | None = None
    # False where the label is the word type itself (word identity): Hewitt & Liang's control,
    # a random label per word type, is then the task relabelled, and selectivity measures only
    # the labels the draw happened to merge. Such a task is probed without a control task.
    control: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c.isspace() or c == "," for c in self.name):
            raise ValueError(f"Task.name must be a non-empty string without spaces or commas, got {self.name!r}")
        if self.level not in LEVELS:
            raise ValueError(f"Task {self.name!r}: level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if self.kind not in KINDS:
            raise ValueError(f"Task {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not callable(self.fn):
            raise ValueError(f"Task {self.name!r}: fn must be callable")
        if self.max_classes is not None and (self.kind != "categorical" or self.max_classes < 2):
            raise ValueError(f"Task {self.name!r}: max_classes is for categorical tasks and must be >= 2")
        if not isinstance(self.control, bool):
            raise ValueError(f"Task {self.name!r}: control must be True or False, got {self.control!r}")

    @property
    def categorical(self) -> bool:
        return self.kind == "categorical"

    def labels(self, sentence: Any) -> list[Label | None]:
        """The task's labels for one sentence, checked (one per word; numbers for an ordinal
        task, hashable values for a categorical one): ``TaskLabelError`` otherwise."""
        out = list(self.fn(sentence))
        if len(out) != len(sentence.words):
            raise TaskLabelError(f"task {self.name!r} returned {len(out)} labels for a sentence of "
                                 f"{len(sentence.words)} words")
        if self.kind == "ordinal":
            for v in out:
                if v is not None and not isinstance(v, (int, float, np.integer, np.floating)):
                    raise TaskLabelError(f"ordinal task {self.name!r} returned a non-number label {_short(v)}")
        else:
            for v in out:
                try:
                    hash(v)
                except TypeError:
                    raise TaskLabelError(f"task {self.name!r} returned an unhashable label {_short(v)} "
                                         f"({type(v).__name__}; a categorical label must be hashable: a string, "
                                         f"a number, a tuple)") from None
        return out

    def __call__(self, sentence: Any) -> list[Label | None]:
        return self.labels(sentence)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "kind": self.kind, "description": self.description,
                "control": self.control}

    def __repr__(self) -> str:
        return f"Task({self.name!r}, level={self.level!r}, kind={self.kind!r})"


class TaskLabelError(ValueError):
    """A task's function returned labels that do not fit its task (count, type)."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class BuiltinTaskError(ValueError):
    """A task was registered under the name of a built-in task."""


TASKS: dict[str, Task] = {}
BUILTIN_TASKS: frozenset[str] = frozenset()  # set once the built-ins below are registered


def register(t: Task, *, replace: bool = True) -> Task:
    """Add a task to the registry (so the CLI's --tasks and ``get_task`` find it by name). A
    built-in task's name is refused (``BuiltinTaskError``): replacing ``upos`` would change what
    every run calls upos. ``replace=False`` also refuses any name already registered."""
    if t.name in BUILTIN_TASKS and TASKS.get(t.name) is not t:
        raise BuiltinTaskError(f"task {t.name!r} is built in and cannot be replaced: give your task another name")
    if not replace and t.name in TASKS:
        raise ValueError(f"a task named {t.name!r} is already registered")
    TASKS[t.name] = t
    return t


def task(name: str, level: str, kind: str = "categorical", *, description: str = "",
         max_classes: int | None = None, groups: Callable[[Any], Sequence[str | None]] | None = None,
         control: bool = True, register_it: bool = True) -> Callable[[Callable[[Any], Sequence[Label | None]]], Task]:
    """Decorator: turn ``fn(sentence) -> labels`` into a registered ``Task``."""

    def wrap(fn: Callable[[Any], Sequence[Label | None]]) -> Task:
        t = Task(name, level, kind, fn, description or (fn.__doc__ or "").strip().split("\n")[0],
                 max_classes, groups, control)
        return register(t) if register_it else t

    return wrap


def get_task(t: Task | str) -> Task:
    if isinstance(t, Task):
        return t
    if t not in TASKS:
        raise ValueError(f"unknown task {t!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[t]


def resolve_tasks(tasks: Iterable[Task | str] | str | None) -> list[Task]:
    """Task objects from names / Tasks / a comma-separated string; None → DEFAULT_TASKS. The
    names "default" and "design" stand for the sets ``DEFAULT_TASKS`` and ``DESIGN_TASKS``."""
    if tasks is None:
        tasks = DEFAULT_TASKS
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    expanded: list[Task | str] = []
    for t in tasks:
        expanded.extend(TASK_SETS[t] if isinstance(t, str) and t in TASK_SETS else [t])
    out = [get_task(t) for t in expanded]
    names = [t.name for t in out]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise ValueError(f"task {dup[0]!r} given twice")
    if not out:
        raise ValueError("no tasks given")
    return out


# --------------------------------------------------------------------------------- helpers
def _given(value: str | None) -> str | None:
    return None if value in (None, "", "_") else value


def _depths(sentence: Any) -> list[int] | None:
    """Depths from HEAD; None when a HEAD is missing or outside the sentence (a treebank without
    syntax). A HEAD cycle is an error: the sentence is no tree, and dropping it would bias depth."""
    from corpus.labels import depth_from_heads, head_cycle

    cycle = head_cycle(list(sentence.words))
    if cycle is not None:
        path = " → ".join(str(i) for i in cycle + cycle[:1])
        raise ValueError(f"sentence {_sentence_name(sentence)}: HEAD cycle {path} (not a tree; "
                         f"`stratascope corpus --check FILE` lists every one)")
    try:
        return depth_from_heads(sentence.words)
    except ValueError:
        return None


def _sentence_name(sentence: Any) -> str:
    """The sentence's sent_id, or the start of its text, for messages."""
    meta = getattr(sentence, "metadata", None) or {}
    if meta.get("sent_id"):
        return repr(meta["sent_id"])
    words = sentence.forms if hasattr(sentence, "forms") else list(sentence)
    text = " ".join(words)
    return repr(text if len(text) <= 60 else text[:57] + "...")


_FINITE_POS = frozenset({"VERB", "AUX"})
_NUMBERS = frozenset({"Sing", "Plur"})


def _is_finite_verb(w: Any) -> bool:
    if w.upos not in _FINITE_POS:
        return False
    form = w.feats.get("VerbForm")
    return form == "Fin" or (form is None and "Number" in w.feats)


def agreement(sentence: Any) -> list[tuple[str, bool] | None]:
    """Per word: (subject Number, attractor?) for finite verbs with a Sing/Plur controller.

    MISC ``SubjNumber`` / ``Attractor`` (written by the built-in treebank) are used when present;
    otherwise they are computed from the tree like ``corpus.labels.annotate_agreement`` does.
    """
    from corpus.labels import agreement_controller

    words = sentence.words
    out: list[tuple[str, bool] | None] = [None] * len(words)
    for i, w in enumerate(words):
        if "SubjNumber" in w.misc:
            number = w.misc["SubjNumber"]
            if number in _NUMBERS:
                out[i] = (number, w.misc.get("Attractor") == "Yes")
            continue
        if not _is_finite_verb(w):
            continue
        try:
            ctrl = agreement_controller(words, w)
        except (IndexError, TypeError):  # a malformed head
            ctrl = None
        if ctrl is None or ctrl.feats.get("Number") not in _NUMBERS:
            continue
        number = ctrl.feats["Number"]
        lo, hi = sorted((ctrl.id, w.id))
        attractor = any(x.upos in ("NOUN", "PROPN") and x.feats.get("Number", number) != number
                        for x in words[lo:hi - 1])
        out[i] = (number, attractor)
    return out


def _attractor_groups(sentence: Any) -> list[str | None]:
    return [None if a is None else ("attractor" if a[1] else "no_attractor") for a in agreement(sentence)]


def _next_attractor_groups(sentence: Any) -> list[str | None]:
    groups = _attractor_groups(sentence)
    return groups[1:] + [None]


# --------------------------------------------------------------------------------- built-ins
@task("position", "early", "ordinal", description="index of the word in the sentence (1-based)")
def position(sentence: Any) -> list[int]:
    return [i + 1 for i in range(len(sentence.words))]


@task("word", "early", "categorical", max_classes=250, control=False,
      description="the word's form (the 250 most frequent forms; others unused)")
def word_identity(sentence: Any) -> list[str]:
    return [w.form for w in sentence.words]


@task("upos", "middle", "categorical", description="universal part of speech in context")
def upos(sentence: Any) -> list[str | None]:
    return [_given(w.upos) for w in sentence.words]


@task("depth", "middle", "ordinal", description="depth in the dependency tree from HEAD (root = 0)")
def depth(sentence: Any) -> list[int | None]:
    d = _depths(sentence)
    return list(d) if d is not None else [None] * len(sentence.words)


@task("phrase", "middle", "categorical",
      description="constituent label (MISC Const, built-in treebank) or else DEPREL without subtype")
def phrase(sentence: Any) -> list[str | None]:
    words = sentence.words
    if all("Const" in w.misc for w in words):
        return [_given(w.misc["Const"]) for w in words]
    return [_given(w.deprel.split(":")[0]) for w in words]


@task("subject_number", "late", "categorical", groups=_attractor_groups,
      description="at finite verbs: Number of the agreement controller (subject), across attractors")
def subject_number(sentence: Any) -> list[str | None]:
    return [None if a is None else a[0] for a in agreement(sentence)]


@task("next_upos", "late", "categorical", description="UPOS of the next word")
def next_upos(sentence: Any) -> list[str | None]:
    tags = [_given(w.upos) for w in sentence.words]
    return tags[1:] + [None]


@task("constituent", "middle", "categorical", description="MISC Const: label of the constituent that introduced the word")
def constituent(sentence: Any) -> list[str | None]:
    return [_given(w.misc.get("Const")) for w in sentence.words]


@task("deprel", "middle", "categorical", description="dependency relation (full DEPREL)")
def deprel(sentence: Any) -> list[str | None]:
    return [_given(w.deprel) for w in sentence.words]


@task("subject_number_next", "late", "categorical", groups=_next_attractor_groups,
      description="at the word before a finite verb: the Number that verb agrees with")
def subject_number_next(sentence: Any) -> list[str | None]:
    labels = subject_number(sentence)
    return labels[1:] + [None]


# ------------------------------------------------------------------ tasks for the deep treebank
# Structure that one word does not show (corpus.deep_labels): read from MISC when the deep
# treebank wrote it, computed from HEAD / DEPREL / FEATS otherwise (any UD tree).
def _misc_or(sentence: Any, key: str, compute: Callable[[Any], Sequence[Any]]) -> list[Any]:
    words = sentence.words
    if words and all(key in w.misc for w in words):
        return [w.misc[key] for w in words]
    return list(compute(words))


def _next_agreement(sentence: Any) -> list[tuple[str, bool] | None]:
    """Per word: (AgrNext, held?) or None (see corpus.deep_labels)."""
    from corpus.deep_labels import next_agreement

    words = sentence.words
    if any("AgrNext" in w.misc for w in words) or (words and all("OpenSubj" in w.misc for w in words)):
        return [(w.misc["AgrNext"], w.misc.get("AgrHeld") == "Yes") if "AgrNext" in w.misc else None
                for w in words]
    if _depths(sentence) is None:  # no usable tree
        return [None] * len(words)
    return next_agreement(words)


def _held_groups(sentence: Any) -> list[str | None]:
    return [None if a is None else ("held" if a[1] else "read") for a in _next_agreement(sentence)]


@task("open_subjects", "middle", "ordinal",
      description="subjects read and still waiting for their verb (a stack depth; MISC OpenSubj)")
def open_subjects(sentence: Any) -> list[int | None]:
    from corpus.deep_labels import open_subjects as compute

    if _depths(sentence) is None:
        return [None] * len(sentence.words)
    return [int(v) for v in _misc_or(sentence, "OpenSubj", compute)]


@task("embedding_depth", "middle", "ordinal",
      description="clauses the word is embedded in (relative / complement clauses; MISC ClauseDepth)")
def embedding_depth(sentence: Any) -> list[int | None]:
    from corpus.deep_labels import clause_depths

    if _depths(sentence) is None:
        return [None] * len(sentence.words)
    return [int(v) for v in _misc_or(sentence, "ClauseDepth", clause_depths)]


@task("agreement_next", "late", "categorical", groups=_held_groups,
      description="the Number the next agreeing verb/auxiliary must take (MISC AgrNext), where its subject is read")
def agreement_next(sentence: Any) -> list[str | None]:
    return [None if a is None else a[0] for a in _next_agreement(sentence)]


@task("agreement_held", "late", "categorical",
      description="agreement_next only where the word itself does not show it (held since the subject)")
def agreement_held(sentence: Any) -> list[str | None]:
    return [a[0] if a is not None and a[1] else None for a in _next_agreement(sentence)]


BUILTIN_TASKS = frozenset(TASKS)

DEEP_TASKS: tuple[str, ...] = ("open_subjects", "embedding_depth", "agreement_next", "agreement_held")

DESIGN_TASKS: tuple[str, ...] = ("position", "word", "upos", "depth", "phrase", "subject_number", "next_upos")
# The design's seven rows plus subject number read one word before the verb: at the verb the label
# is lexical wherever verbs inflect (a flat curve from layer 0), so without it the late level
# would test the verb's spelling rather than long-range agreement.
DEFAULT_TASKS: tuple[str, ...] = DESIGN_TASKS + ("subject_number_next",)
TASK_SETS: dict[str, tuple[str, ...]] = {"default": DEFAULT_TASKS, "design": DESIGN_TASKS,
                                         "deep": DEFAULT_TASKS + DEEP_TASKS}


# --------------------------------------------------------------------------------- labels
@dataclass
class TaskLabels:
    """One task's labels over a corpus, aligned with the activation rows (words in corpus order).

    ``rows``: activation row of each used word; ``sentence``: its sentence index; ``types``:
    its form (for the control task); ``y``: class index (categorical, into ``classes``, most
    frequent first) or value (ordinal, float); ``groups``: optional per-word group names.
    """

    task: Task
    rows: np.ndarray  # int64 [n]
    sentence: np.ndarray  # int64 [n]
    types: list[str]
    y: np.ndarray  # int64 [n] or float64 [n]
    classes: list[Any] = field(default_factory=list)
    groups: list[str | None] | None = None

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def control(self, seed: int = 0) -> np.ndarray:
        """Hewitt & Liang (2019) control labels: every word type gets one fixed label drawn
        from this task's label distribution (over its used words), seeded by (seed, task)."""
        return control_labels(self.types, self.y, seed=seed, salt=self.task.name)


class TaskError(ValueError):
    """A task's function raised on a sentence; the message names the task, where in its code,
    and the sentence."""


def _run(t: Task, fn: Callable[[Any], Sequence[Any]], sentence: Any, index: int) -> list[Any]:
    """``fn(sentence)`` (the task's labels or groups), its errors turned into one-line TaskErrors."""
    try:
        return list(fn(sentence))
    except TaskLabelError as err:  # labels that do not fit: no line of the task's code to blame
        raise TaskError(f"{err} on sentence {index + 1} ({_sentence_name(sentence)})") from None
    except Exception as err:  # noqa: BLE001 - user code: any error, reported in one line
        code = getattr(t.fn, "__code__", None)
        frames = traceback.extract_tb(err.__traceback__)
        own = [f for f in frames if code is not None and f.filename == code.co_filename]
        where = (own or frames)[-1]
        message = (str(err).strip().splitlines() or [""])[0]
        raise TaskError(f"task {t.name!r} raised {type(err).__name__} at {where.filename}:{where.lineno} on "
                        f"sentence {index + 1} ({_sentence_name(sentence)}): {message}") from err


def label_task(t: Task, sentences: Sequence[Any]) -> TaskLabels:
    """Run a task over sentences; rows count every word of every sentence in order. A task that
    raises → ``TaskError`` naming the task, the file and line, and the sentence."""
    rows, sent_ids, types, raw, groups = [], [], [], [], []
    offset = 0
    want_groups = t.groups is not None
    for s_index, sentence in enumerate(sentences):
        labels = _run(t, t.labels, sentence, s_index)
        gs = _run(t, t.groups, sentence, s_index) if want_groups else None  # type: ignore[arg-type]
        for i, (w, lab) in enumerate(zip(sentence.words, labels)):
            if lab is None:
                continue
            if t.kind == "ordinal" and not np.isfinite(float(lab)):
                continue
            rows.append(offset + i)
            sent_ids.append(s_index)
            types.append(w.form)
            raw.append(lab)
            if want_groups:
                groups.append(gs[i])
        offset += len(sentence.words)
    if t.kind == "ordinal":
        y = np.asarray(raw, dtype=np.float64)
        return TaskLabels(t, np.asarray(rows, np.int64), np.asarray(sent_ids, np.int64), types, y,
                          [], groups if want_groups else None)
    counts = Counter(raw)
    classes = sorted(counts, key=lambda c: (-counts[c], str(c)))
    if t.max_classes is not None and len(classes) > t.max_classes:
        keep = set(classes[: t.max_classes])
        classes = classes[: t.max_classes]
        idx = [k for k, lab in enumerate(raw) if lab in keep]
        rows = [rows[k] for k in idx]
        sent_ids = [sent_ids[k] for k in idx]
        types = [types[k] for k in idx]
        raw = [raw[k] for k in idx]
        if want_groups:
            groups = [groups[k] for k in idx]
    index = {c: k for k, c in enumerate(classes)}
    y = np.asarray([index[lab] for lab in raw], dtype=np.int64)
    return TaskLabels(t, np.asarray(rows, np.int64), np.asarray(sent_ids, np.int64), types, y,
                      classes, groups if want_groups else None)


def _seed_for(seed: int, salt: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def control_labels(types: Sequence[str], y: np.ndarray, seed: int = 0, salt: str = "") -> np.ndarray:
    """Per word, the control label of its type (see ``TaskLabels.control``). Types are visited in
    sorted order, so the assignment depends only on the set of types, the labels and the seed."""
    y = np.asarray(y)
    if len(y) == 0:
        return y.copy()
    values, counts = np.unique(y, return_counts=True)
    probs = counts / counts.sum()
    distinct = sorted(set(types))
    rng = np.random.default_rng(_seed_for(seed, salt))
    draws = rng.choice(len(values), size=len(distinct), p=probs)
    table = {t: values[k] for t, k in zip(distinct, draws)}
    return np.asarray([table[t] for t in types], dtype=y.dtype)
