"""Progress of a probing run (#14): every long stage reports on stderr, ``--quiet`` silences it,
and the fit bar's units add up to its total."""

import pytest
import torch

import hooks
import probes
import probes.suite
from app.cli import main
from corpus import DEFAULT_GRAMMAR, SplitConfig, WordTokenizer, generate_sentences
from gpt_model import GPT, GPTConfig
from probes.progress import Progress
from probes_fixtures import build_treebank_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return build_treebank_run(tmp_path_factory.mktemp("runs") / "tiny", model_seed=5, n_sentences=200,
                              treebank_seed=2, split=SplitConfig(0.5, 0.1, 0.4))


class _Recorder(Progress):
    """A Progress that keeps what it was told."""

    made: list["_Recorder"] = []

    def __init__(self, total, desc, enabled, unit="it"):
        super().__init__(total, desc, False, unit)
        self.total, self.desc, self.done, self.stages = total, desc, 0, []
        _Recorder.made.append(self)

    def tick(self, n, stage):
        self.done += n
        self.stages.append(stage)


def test_the_fit_bar_counts_every_stage_and_reaches_its_total(monkeypatch):
    tok = WordTokenizer.from_words(DEFAULT_GRAMMAR.vocabulary())
    torch.manual_seed(1)
    model = GPT(GPTConfig(n_layer=2, d_model=16, n_head=2, vocab_size=len(tok), context_len=48)).eval()
    sentences = generate_sentences(80, seed=3)
    X = probes.extract(hooks.load(model, tokenizer=tok, name="small"), sentences)
    monkeypatch.setattr(probes.suite, "Progress", _Recorder)
    _Recorder.made.clear()
    config = probes.ProbeConfig(n_bootstrap=20, max_iter=100)
    fit = probes.ProbeSuite(["position", "upos", "subject_number"], config).fit(X, sentences, progress=True,
                                                                                source="small")
    # the seconds of each stage are in results.json
    assert set(fit.tasks["upos"].stages_s) == {"features", "fit", "mdl", "control", "mdl_control", "fixed", "curves",
                                               "cumulative", "score"}
    assert set(fit.tasks["position"].stages_s) == {"features", "fit", "cumulative", "score"}
    assert sum(fit.tasks["upos"].stages_s.values()) <= fit.tasks["upos"].fit_s
    again = probes.results.TaskResult.from_fields(probes.results._Fields(fit.tasks["upos"].to_dict(), "t"), 2)
    assert again.stages_s == fit.tasks["upos"].stages_s
    bar, = _Recorder.made
    assert bar.desc == "probing small" and bar.done == bar.total > 0
    stages = " | ".join(bar.stages)
    for what in ("position: ridge path", "position: cumulative probes", "upos: λ path", "upos: MDL blocks",
                 "upos: control probes at the task's λ", "upos: control MDL blocks", "upos: fixed-λ probes",
                 "upos: control λ curve", "upos: cumulative probes", "upos: bootstrap",
                 "subject_number: bootstrap"):
        assert what in stages, what
    # one unit per λ of each path (λ skipped by an early exit count at once), MDL block and layer,
    # in every refit (the control λ curve and MDL code in the first only), and one per task for its scoring
    refits = probes.ProbeSuite(["position", "upos", "subject_number"], config).prepare(sentences).refits
    assert len(refits) == config.refits == 3
    assert bar.total == sum(sum(probes.suite.strategy_for(t, config, r.index == 0).units(r.splits[t.name], 3)
                                for r in refits) + 1
                            for t in probes.resolve_tasks(["position", "upos", "subject_number"]))


def test_cli_shows_extraction_and_fit_progress_on_stderr(run_dir, tmp_path, capsys):
    args = ["probe", "--model", str(run_dir), "--tasks", "upos", "--bootstrap", "10", "--max-sentences", "40",
            "--out", str(tmp_path / "o")]
    assert main(args) == 0
    err = capsys.readouterr().err
    for bar in ("[tiny] extracting", "[tiny+random-init] extracting", "probing model 'tiny'",
                "probing model 'tiny+random-init'"):
        assert bar in err, bar
    assert "sent/s" in err or "s/sent" in err  # the rate (and so the ETA) is shown


def test_quiet_silences_every_bar(run_dir, tmp_path, capsys):
    args = ["probe", "--model", str(run_dir), "--tasks", "upos", "--bootstrap", "10", "--max-sentences", "40",
            "--out", str(tmp_path / "o"), "--quiet", "--erase", "upos", "--erase-random", "1"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""
