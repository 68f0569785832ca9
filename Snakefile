# Reproduction of Umar & Laio, "Signal-to-Noise Ratio and Sample Size Govern
# Representational Alignment in Neural Networks". See README.md.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

sys.path.insert(0, workflow.basedir)  # alignlib from this checkout, installed or not
from alignpipe.config import (  # noqa: E402
    ConfigError,
    check_config,
    check_device,
    check_yaml_file,
    first_schema_problem,
    plan_summary,
    prepend_to_pythonpath,
)

min_version("8.0")

# Rule scripts run in their own processes (and, on a cluster, on other nodes): let them
# import alignlib from this repository even where it is not pip-installed.
prepend_to_pythonpath(workflow.basedir)


# A --configfile on the command line replaces the default experiment instead of
# being merged into it (Snakemake would otherwise keep the default tasks too).
if not workflow.overwrite_configfiles:
    try:  # Snakemake's own message for a YAML syntax error names neither file nor line
        check_yaml_file(os.path.abspath("config.yaml"))
    except ConfigError as error:
        raise WorkflowError(str(error)) from None

    configfile: "config.yaml"


# Validate (and fill defaults) before any job is scheduled; name the offending key.
_problem = first_schema_problem(config, workflow.source_path("schemas/config.schema.yaml"))
if _problem:
    raise WorkflowError(_problem)
validate(config, "schemas/config.schema.yaml")
try:
    check_config(config, check_files=workflow.is_main_process)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

if workflow.is_main_process:  # not again inside every (cluster) job
    print(plan_summary(config), file=sys.stderr)


onstart:
    # Before the first job, where jobs run on this machine (not on a cluster's GPU nodes,
    # and not in a dry run): device: cuda needs a GPU visible here.
    if workflow.local_exec:
        try:
            check_device(config)
        except ConfigError as error:
            raise WorkflowError(str(error)) from None


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/refine.smk"
include: "rules/extract.smk"
include: "rules/align.smk"
include: "rules/draws.smk"
include: "rules/figures.smk"
include: "rules/checkpoints.smk"
include: "rules/ood.smk"


rule all:
    input:
        all_outputs(),
        CHECKPOINT_TARGETS,  # tasks with checkpoints on (rules/checkpoints.smk)
    default_target: True
