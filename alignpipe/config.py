"""The pipeline's config: validation, defaults and the plan summary (the Snakefile loads this).

:func:`validated_config` is the Snakefile's one validation call: the YAML of every config file,
finite numbers, the schema (``schemas/config.schema.yaml``, naming the offending key, then
``snakemake.utils.validate`` filling its defaults), the metrics default, the checks a schema
cannot express, and the plan summary. ``python -m alignpipe.config FILE`` runs the same checks on
a file before a run.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from alignlib.ensembles.image_files import check_image_files
# The metric names without torch (alignlib.names, the registry's one source)
from alignlib.names import METRIC_NAMES as KNOWN_METRICS
from alignpipe.checkpoints import all_checkpoint_settings
from alignpipe.draws import check_draws, data_draws
from alignpipe.errors import ConfigError  # noqa: F401  (re-exported)
from alignpipe.jobsize import cube_groups, metric_groups, n_groups, run_target, workflow_cores
from alignpipe.ood import check_ood_config
# re-exported: the rules and tests read these task predicates from here
from alignpipe.taskspec import IMAGE_DATASETS, has_linear_theory, is_classification_task, layer_widths  # noqa: F401


def key_path(path) -> str:
    """['tasks', 'lin', 'snr', 2] -> 'tasks.lin.snr[2]'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe_validation_error(error) -> str:
    """One line for a jsonschema ValidationError: the key, the bad value, what is allowed."""
    key = key_path(list(error.absolute_path))
    schema = error.schema if isinstance(error.schema, dict) else {}
    message = error.message
    if error.validator == "enum":
        message = f"{error.instance!r} is not one of {error.validator_value}"
    elif error.validator == "uniqueItems":
        seen, dupes = set(), []
        for item in error.instance:
            if item in seen:
                dupes.append(item)
            seen.add(item)
        message = f"duplicate values {dupes} in {error.instance}"
    elif error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        message = f"{message}; allowed keys: {allowed}"
    hint = schema.get("description")
    return f"invalid config key '{key}': {message}" + (f" ({hint.strip()})" if hint else "")



def check_config(config: dict, check_files: bool = True) -> None:
    """Checks beyond the schema; raises ConfigError naming the key.

    ``check_files``: also read the MNIST/CIFAR-10 files once (the main process does; every
    cluster job re-reads the Snakefile and should not re-read hundreds of MB).
    """
    unknown = [m for m in config["metrics"] if m not in KNOWN_METRICS]
    if unknown:
        raise ConfigError(f"invalid config key 'metrics': unknown metric(s) {unknown}; known: {list(KNOWN_METRICS)}")
    unknown = [m for m in config.get("metric_options", {}) if m not in KNOWN_METRICS]
    if unknown:
        raise ConfigError(f"invalid config key 'metric_options': unknown metric(s) {unknown}; "
                          f"known: {list(KNOWN_METRICS)}")
    check_draws(config)  # data_draws: an integer >= 1 per task, no name clash, no checkpoints with K > 1
    sizes = []  # every task whose data set is too small, reported together
    for name, task in config["tasks"].items():
        if task["probes"] < 4:
            raise ConfigError(f"invalid config key 'tasks.{name}.probes': need at least 4 probes")
        kind = task["dataset"]["kind"]
        refine = task.get("refine")
        if refine and not refine["span"][0] < refine["span"][1]:
            raise ConfigError(f"invalid config key 'tasks.{name}.refine.span': {refine['span']} must be [a, b] with "
                              "a < b (the added n span a x to b x the coarse interpolation thresholds)")
        if task["noise"]["kind"] == "label_flip" and not is_classification_task(task):
            raise ConfigError(f"invalid config key 'tasks.{name}.noise.kind': label_flip needs a classification "
                              f"data set, and {kind!r} is a regression one")
        if task["network"]["kind"] == "cnn" and kind not in IMAGE_DATASETS:
            raise ConfigError(f"invalid config key 'tasks.{name}.network.kind': cnn needs an image data set "
                              f"(digits, mnist, cifar10), not {kind!r}")
        try:
            if kind in BUNDLED_SIZES:
                check_data_size(name, task, BUNDLED_SIZES[kind])
            if check_files and kind in ("mnist", "cifar10"):
            
                try:
                    counts = check_image_files(kind, task["dataset"].get("path"))
                except (FileNotFoundError, ValueError) as error:
                    raise ConfigError(f"invalid config key 'tasks.{name}.dataset.path': {error}") from None
                check_image_size(name, task, counts)
        except ConfigError as error:
            sizes.append(str(error))
    if sizes:
        raise ConfigError("; ".join(sizes))


# Samples in scikit-learn's bundled data sets (tests/test_robustness.py checks them against sklearn).
BUNDLED_SIZES = {"digits": 1797, "diabetes": 442}


def check_data_size(name: str, task: dict, total: int) -> None:
    """A real data set is split into probes, test set and training pool: they must fit in its ``total`` samples."""
    kind = task["dataset"]["kind"]
    n_max, probes, test = max(task["n"]), task["probes"], task["test_size"]
    pool = task["dataset"].get("pool")
    key = f"tasks.{name}"
    if pool is None:
        if n_max + probes + test > total:
            raise ConfigError(
                f"invalid config keys '{key}.n', '{key}.probes', '{key}.test_size': max(n) ({n_max}) + probes "
                f"({probes}) + test_size ({test}) = {n_max + probes + test} exceed the {total} samples of data set "
                f"{kind!r}; lower them so that the sum is at most {total}")
        return
    if probes + test + pool > total:
        raise ConfigError(
            f"invalid config keys '{key}.probes', '{key}.test_size', '{key}.dataset.pool': probes ({probes}) + "
            f"test_size ({test}) + pool ({pool}) = {probes + test + pool} exceed the {total} samples of data set "
            f"{kind!r}")
    if n_max > pool:
        raise ConfigError(f"invalid config keys '{key}.n', '{key}.dataset.pool': max(n) ({n_max}) exceeds the "
                          f"training pool ({pool}) of data set {kind!r}")


def check_image_size(name: str, task: dict, counts: dict) -> None:
    """MNIST/CIFAR-10: probes and test set come from the test split, the training pool from the training split."""
    kind = task["dataset"]["kind"]
    n_max, probes, test = max(task["n"]), task["probes"], task["test_size"]
    pool = task["dataset"].get("pool") or counts["train"]
    key = f"tasks.{name}"
    if probes + test > counts["test"]:
        raise ConfigError(
            f"invalid config keys '{key}.probes', '{key}.test_size': probes ({probes}) + test_size ({test}) = "
            f"{probes + test} exceed the {counts['test']} test images of data set {kind!r}")
    if pool > counts["train"]:
        raise ConfigError(f"invalid config key '{key}.dataset.pool': {pool} exceeds the {counts['train']} training "
                          f"images of data set {kind!r}")
    if n_max > pool:
        raise ConfigError(
            f"invalid config keys '{key}.n', '{key}.dataset.pool': max(n) ({n_max}) exceeds the training pool "
            f"({pool} of the {counts['train']} training images of data set {kind!r})")


def check_device(config: dict) -> None:
    """``device: cuda`` needs a GPU that torch can see here (torch is imported only in that case)."""
    if config.get("device") != "cuda":
        return
    import torch

    if torch.cuda.is_available():
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if torch.version.cuda is None:
        why = f"torch {torch.__version__} is built without CUDA"
    elif visible is not None and visible.strip() in ("", "-1"):
        why = f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
    else:
        why = f"torch {torch.__version__} sees no CUDA device"
    raise ConfigError(f"invalid config key 'device': 'cuda' needs a visible GPU, but {why}; use device: auto "
                      "(CUDA when present, else the CPU) or device: cpu")


def check_local_device(config: dict, workflow) -> None:
    """The Snakefile's ``onstart``: :func:`check_device` where jobs run on this machine, as a WorkflowError.

    Snakemake calls ``onstart`` before the first job of a real run, not in a dry run; a cluster
    run (``workflow.local_exec`` false) submits from a login node that needs no GPU. The Snakefile
    itself is read before Snakemake knows either, so this cannot be part of :func:`validated_config`.
    """
    if workflow.local_exec:
        try:
            check_device(config)
        except ConfigError as error:
            raise WorkflowError(str(error)) from None


def check_yaml_file(path) -> None:
    """Parse a YAML config file; a syntax error or a repeated key raises ConfigError naming the file,
    line and column (YAML would silently keep only a repeated key's last value)."""
    try:
        with open(path, encoding="utf-8") as handle:
            yaml.load(handle, Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader subclass)
    except FileNotFoundError:
        return  # Snakemake reports a missing config file itself
    except yaml.YAMLError as error:
        mark, context = getattr(error, "problem_mark", None), getattr(error, "context", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        if context:
            start = getattr(error, "context_mark", None)
            context += f" started at line {start.line + 1}, column {start.column + 1}" if start is not None else ""
            problem += f" ({context})"
        raise ConfigError(f"cannot parse config file {path}{where}: {problem}") from None


def _unique_key_loader():
    """yaml.SafeLoader refusing a key given twice in one mapping (a merge key ``<<`` may still be overridden)."""
    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                first = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        seen = first.setdefault(key, key_node.start_mark)
                    except TypeError:  # an unhashable key: SafeLoader's own error follows
                        continue
                    if seen is not key_node.start_mark:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (first at line {seen.line + 1}; YAML would keep "
                            "only the last value)", key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def check_finite(value, path=()) -> None:
    """Every number anywhere in the config must be finite: YAML's .nan, .inf and -.inf (JSON's NaN,
    Infinity) raise ConfigError naming the key. A schema cannot refuse them: ``nan > 0`` is never
    false, so ``exclusiveMinimum: 0`` lets NaN through."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"invalid config key '{key_path(list(path))}': {value} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_finite(item, (*path, index))


def with_defaults(config: dict, schema_path) -> dict:
    """``config`` (changed in place) with the schema's defaults filled in by ``snakemake.utils.validate``
    and ``metrics`` defaulting to every metric (alignlib.names, the one list of them)."""
    validate(config, str(schema_path))
    if "metrics" not in config:
        config["metrics"] = list(KNOWN_METRICS)
    return config


def checked_config(config: dict, schema_path, check_files: bool = True) -> dict:
    """Every check of a loaded config, in order; raises ConfigError naming the first bad key:
    finite numbers, the schema (:func:`first_schema_problem`), its defaults (:func:`with_defaults`),
    and the checks a schema cannot express (:func:`check_config`)."""
    check_finite(config)
    problem = first_schema_problem(config, schema_path)
    if problem:
        raise ConfigError(problem)
    with_defaults(config, schema_path)
    check_config(config, check_files=check_files)
    check_ood_config(config)  # a kind the data set lacks, OOD metrics outside `metrics`, ...
    try:
        all_checkpoint_settings(config)
    except ValueError as error:  # names the checkpoints key
        raise ConfigError(str(error)) from None
    return config


def config_files(workflow) -> list[str]:
    """The config files Snakemake was given: each ``--configfile`` and each ``configfile:`` it read."""
    files = [*workflow.overwrite_configfiles, *workflow.configfiles]
    return list(dict.fromkeys(os.path.abspath(f) for f in files))


def check_config_files(files) -> None:
    """:func:`check_yaml_file` on each of ``files``, as a WorkflowError (Snakemake prints no traceback)."""
    try:
        for path in files:
            check_yaml_file(os.path.abspath(path))
    except ConfigError as error:
        raise WorkflowError(str(error)) from None


def validated_config(config: dict, workflow) -> dict:
    """The Snakefile's config validation, before any job: the returned ``config`` has the schema's
    defaults filled in; a problem raises WorkflowError naming the file and line or the key.

    The YAML of every config file Snakemake was given (:func:`config_files`), then
    :func:`checked_config` (the image files are read once, in the main process, not again in every
    cluster job); the main process prints the plan summary.
    """
    check_config_files(config_files(workflow))
    schema = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")
    try:
        checked_config(config, schema, check_files=workflow.is_main_process)
    except ConfigError as error:
        raise WorkflowError(str(error)) from None
    if workflow.is_main_process:  # not again inside every (cluster) job
            print(plan_summary(config, workflow_cores(workflow)), file=sys.stderr)
    return config


def first_schema_problem(config: dict, schema_path) -> str | None:
    """The most relevant schema violation of ``config``, as one readable line (None if valid).

    Snakemake's own ``validate`` reports the raw jsonschema error; this names the key.
    """
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    return None if error is None else describe_validation_error(error)


def task_jobs_by_rule(config: dict, task: dict, draws: int = 1, cores: int | None = None,
                      target: float | None = None) -> list[str]:
    """The rule of each job one task adds to a run (job sizes: alignpipe.jobsize); ``draws``: its number of
    data draws K (alignpipe.draws), each with its own data, training, extract and align jobs; ``cores``
    and ``target``: the run's (alignpipe.jobsize.run_target; default job_seconds, as on 2 cores)."""
    target = config["job_seconds"] if target is None else target
    chunks = n_groups(task, config["n_per_job"], target, cores)
    cubes = cube_groups(chunks, task, 2 if config.get("activation_dtype") == "float16" else 4)
    parts = metric_groups(task, config["metrics"], config["align_metrics_per_job"], target)
    align_parts = ["align_part"] * len(parts) if len(parts) > 1 else []  # one group: align computes it itself
    per_draw = ["task_data"] + ["train"] * len(chunks) + ["extract"] * len(cubes) + align_parts + ["align"]
    return (per_draw * draws + ["combine_draws"] * (draws > 1)
            + ["claims", "figures"] + ["theory_residuals"] * has_linear_theory(task)
            + ["refine"] * bool(task.get("refine")))  # and the refined n's train and extract jobs


def plan_summary(config: dict, cores: int | None = None) -> str:
    """Members, jobs and the expected size of the activation cubes, for the start of a run on ``cores``
    cores (None: on a cluster; job sizes: alignpipe.jobsize.run_target)."""
    target = run_target(config, cores)
    bytes_per_value = 2 if config.get("activation_dtype") == "float16" else 4
    members = jobs = cube_bytes = 0
    lines = []
    for name, task in config["tasks"].items():
        draws = data_draws(config, name)
        task_members = len(task["snr"]) * len(task["n"]) * task["seeds"] * draws
        widths = layer_widths(task)
        task_bytes = task_members * len(widths) * max(widths) * task["probes"] * bytes_per_value
        task_jobs = len(task_jobs_by_rule(config, task, draws, cores, target))
        members, jobs, cube_bytes = members + task_members, jobs + task_jobs, cube_bytes + task_bytes
        refine = task.get("refine")
        later = (f"; then up to {refine['points']} n around the threshold (refine), with their jobs"
                 if refine else "")
        nested = f" in {draws} data draws" if draws > 1 else ""
        lines.append(f"  {name}: {task_members} members{nested}, {task_jobs} jobs, cubes <= {task_bytes / 1e9:.2f} GB"
                     f"{later}")
    jobs += 2  # summary, all
    head = (f"alignment pipeline: {len(config['tasks'])} task(s), {members} members, {jobs} jobs, "
            f"activation cubes <= {cube_bytes / 1e9:.2f} GB before compression")
    return "\n".join([head, *lines])


def main(argv=None) -> int:
    """``python -m alignpipe.config FILE...``: check config files as the pipeline would, before a run.

    Snakemake parses a ``--configfile`` itself, before the Snakefile runs, and reports a YAML syntax
    error without file or line (``Config file is not valid JSON or YAML``); this names the file,
    line and column, then the first invalid key.
    """
    files = sys.argv[1:] if argv is None else argv
    if not files:
        print("usage: python -m alignpipe.config CONFIG.yaml [...]", file=sys.stderr)
        return 2
    schema = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"
    status = 0
    for path in files:
        try:
            check_yaml_file(path)
            with open(path, encoding="utf-8") as handle:
                config = yaml.safe_load(handle) or {}
            if schema.exists():
                checked_config(config, schema, check_files=True)
            else:
                check_finite(config)
        except (ConfigError, OSError) as error:
            print(str(error) if str(path) in str(error) else f"{path}: {error}", file=sys.stderr)
            status = 1
        else:
            print(f"{path}: ok")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
