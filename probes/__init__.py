"""stratascope.probes — layer-wise linear probing with the controls a reviewer asks for.

    import probes
    sentences, source = probes.load_data("treebank", "runs/demo")
    results = probes.probe("runs/demo", sentences, data_info=source)   # + random-init twin
    probes.write_outputs(results, "runs/demo/probes/demo")              # json, csv, html, md
    print(probes.summary(results))
    results.models[0].tasks["upos"].peak_layer                          # typed: probes.results

Tasks are functions from a CoNLL-U sentence to one label per word (``probes.tasks``; define
one with ``@probes.task(name, level, kind)``); probes for every layer are fitted at once in
torch (``probes.fit``); every score carries a sentence-bootstrap interval, a control task,
baselines and an MDL codelength (``probes.suite``, ``probes.metrics``, ``probes.mdl``); the
expected layer and the early < middle < late verdict are in ``probes.depth``. Results are typed
objects (``probes.results.ProbeResults``, ``to_dict``/``from_dict`` for results.json). See
docs/probes.md for the method and the results.json schema.
"""

from probes.config import ProbeConfig
from probes.depth import (
    VERDICT_STATUS,
    expected_layer,
    expected_layer_anchored,
    expected_layer_mdl,
    expected_layer_tenney,
    hierarchy_verdict,
    peak_layer,
    verdict_status,
)
from probes.features import NonFiniteActivationsError
from probes.fit import (
    LogisticProbe,
    RidgeProbe,
    Standardizer,
    fit_logistic,
    fit_ridge,
    select_logistic,
    select_ridge,
)
from probes.mdl import BLOCKS, online_codelength
from probes.metrics import Bootstrap, interval
from probes.models import extract, model_tag, random_init_twin
from probes.report import (
    ResultsExistError,
    check_overwrite,
    figures,
    load_results,
    markdown_report,
    save_results,
    summary,
    to_csv,
    write_outputs,
)
from probes.results import SCHEMA, ModelFit, ModelResult, ProbeResults, TaskResult, validate
from probes.run import load_data, load_models, planned_settings, probe, probe_models
from probes.suite import ProbeSuite, split_sentences
from probes.tasks import (
    DEFAULT_TASKS,
    DESIGN_TASKS,
    LEVELS,
    TASKS,
    Task,
    TaskLabels,
    control_labels,
    get_task,
    label_task,
    register,
    resolve_tasks,
    task,
)

__all__ = [
    # tasks
    "Task", "task", "register", "TASKS", "DEFAULT_TASKS", "DESIGN_TASKS", "LEVELS", "get_task", "resolve_tasks", "label_task",
    "TaskLabels", "control_labels",
    # fitting
    "fit_logistic", "fit_ridge", "select_logistic", "select_ridge", "LogisticProbe", "RidgeProbe", "Standardizer",
    # metrics, MDL, depth
    "Bootstrap", "interval", "online_codelength", "BLOCKS", "expected_layer", "expected_layer_anchored",
    "expected_layer_mdl", "expected_layer_tenney", "peak_layer", "hierarchy_verdict", "VERDICT_STATUS", "verdict_status",
    # the suite and end-to-end runs
    "ProbeConfig", "ProbeSuite", "split_sentences", "probe", "probe_models", "load_models", "planned_settings",
    "load_data", "extract",
    "random_init_twin", "model_tag", "NonFiniteActivationsError",
    # typed results
    "SCHEMA", "validate", "ProbeResults", "ModelResult", "ModelFit", "TaskResult",
    # outputs
    "write_outputs", "save_results", "load_results", "check_overwrite", "ResultsExistError", "to_csv", "figures",
    "markdown_report", "summary",
]
