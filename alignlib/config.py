"""Light helpers for the pipeline's config (no torch import: the Snakefile loads this).

Schema validation itself is done by ``snakemake.utils.validate`` with
``schemas/config.schema.yaml``; here are the checks a schema cannot express and a
readable rendering of a schema error that names the offending key.
"""

from __future__ import annotations

# Names of alignlib.metrics' registry, repeated here so that the Snakefile can check a
# config without importing torch (tests assert both lists agree).
KNOWN_METRICS = (
    "cka_linear", "cka_linear_debiased", "cka_rbf", "information_imbalance",
    "neighborhood_overlap", "mutual_knn", "procrustes", "cca", "svcca", "pwcca", "rsa",
    "cosine_end_to_end",
)


class ConfigError(ValueError):
    """A config value that the pipeline cannot run with; the message names the key."""


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


def check_config(config: dict) -> None:
    """Checks beyond the schema; raises ConfigError naming the key."""
    unknown = [m for m in config["metrics"] if m not in KNOWN_METRICS]
    if unknown:
        raise ConfigError(f"invalid config key 'metrics': unknown metric(s) {unknown}; known: {list(KNOWN_METRICS)}")
    for name, task in config["tasks"].items():
        if task["probes"] < 4:
            raise ConfigError(f"invalid config key 'tasks.{name}.probes': need at least 4 probes")
        kind = task["dataset"]["kind"]
        classification = kind in ("digits", "mnist", "cifar10") or (
            kind == "teacher_mlp" and task["dataset"]["target"] == "classification")
        if task["noise"]["kind"] == "label_flip" and not classification:
            raise ConfigError(f"invalid config key 'tasks.{name}.noise.kind': label_flip needs a classification "
                              f"data set, and {kind!r} is a regression one")
        if task["network"]["kind"] == "cnn" and kind not in ("digits", "mnist", "cifar10"):
            raise ConfigError(f"invalid config key 'tasks.{name}.network.kind': cnn needs an image data set "
                              f"(digits, mnist, cifar10), not {kind!r}")
        if kind in ("mnist", "cifar10"):
            from .image_files import check_image_files

            try:
                check_image_files(kind, task["dataset"].get("path"))
            except (FileNotFoundError, ValueError) as error:
                raise ConfigError(f"invalid config key 'tasks.{name}.dataset.path': {error}") from None


def first_schema_problem(config: dict, schema_path) -> str | None:
    """The most relevant schema violation of ``config``, as one readable line (None if valid).

    Snakemake's own ``validate`` reports the raw jsonschema error; this names the key.
    """
    import jsonschema
    import yaml

    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    return None if error is None else describe_validation_error(error)


def prepend_to_pythonpath(folder: str) -> None:
    """Make ``folder`` importable in child processes (the workflow's rule scripts)."""
    import os

    parts = [str(folder)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
