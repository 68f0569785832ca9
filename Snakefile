# Reproduction of Umar & Laio, "Signal-to-Noise Ratio and Sample Size Govern
# Representational Alignment in Neural Networks". See README.md.
from snakemake.utils import min_version

from alignpipe.config import check_config_files, check_local_device, validated_config

min_version("8.0")


# The default experiment. A --configfile replaces it instead of being merged into it
# (Snakemake would otherwise keep the default tasks too).
if not workflow.overwrite_configfiles:
    check_config_files(["config.yaml"])  # Snakemake's own YAML error names neither file nor line

    configfile: "config.yaml"


# Before any job: every config file's YAML, finite numbers, the schema (naming the key) and its
# defaults, the checks a schema cannot express; prints the plan.
config = validated_config(config, workflow)


report: "report/workflow.rst"


onstart:
    # device: cuda needs a GPU visible here, where jobs run on this machine (not in a dry run,
    # not on a cluster's login node; the Snakefile is read before Snakemake knows which)
    check_local_device(config, workflow)


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
