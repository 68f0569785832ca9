"""Power study of claim 2 (issue 12): what each nonlinear task can decide, and with how many members.

    python benchmarks/bench_power.py --study configs/power/study.yaml --out power_runs
    python benchmarks/bench_power.py --study configs/power/study.yaml --out power_runs --only mlp_regression/w32

The study file lists variants: a task of a config file (default config.yaml) with overrides
(hidden width, SNR grid, n grid, optimizer...) and a pilot of ``seeds`` members. Each variant is
trained in this process with the pipeline's own functions (alignlib.ensembles.builder: same seeds, same
members as a pipeline run of that config), its activations extracted, and its alignment computed on
the metrics listed (default: linear CKA) at the hidden layers. The table (variant/alignment.nc) is
cached in --out: a rerun only re-analyses. Then for each ensemble size m the claim-2 analysis of the
pipeline is repeated on ``reps`` random m-member subsets of the pilot (alignlib.claims.power), giving per
SNR the fraction of subsets where claim 2 holds / fails / is undecided and the median width of the
minimising n's interval; plus the clean test error at the largest n against chance, and the
fraction of members below threshold / 1.5 that reached their noise floor.

Writes --out/power.csv and prints a markdown table (--markdown).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from alignlib.ensembles.alignment import compute_alignment  # noqa: E402
from alignpipe.cubes import read_netcdf, write_netcdf  # noqa: E402
from alignlib.ensembles.data import make_task_data  # noqa: E402
from alignlib.ensembles.builder import extract_activations, model_attrs, train_grid_n  # noqa: E402
from alignlib.claims.power import claim2_power  # noqa: E402
from alignlib.stats.threshold import below_threshold_fit, task_thresholds  # noqa: E402
from alignlib.claims.verdicts import hidden_layers  # noqa: E402


def validated(config: dict) -> dict:
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(REPO / "schemas" / "config.schema.yaml"))
    return config


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def variant_config(variant: dict) -> tuple[str, dict]:
    """(task name, the task's validated config with the variant's overrides)."""
    source = REPO / variant.get("config", "config.yaml")
    config = yaml.safe_load(source.read_text())
    task = variant["task"]
    cfg = merge(config["tasks"][task], variant.get("set", {}))
    config = dict(config, tasks={task: cfg})
    return task, validated(config)["tasks"][task]


def pilot_table(task: str, cfg: dict, metrics: list[str], log) -> xr.Dataset:
    """Train, extract and align one variant (the pipeline's functions, in-process, on the CPU)."""
    device = torch.device("cpu")
    data = make_task_data(task, cfg)
    t0 = time.perf_counter()
    parts = [train_grid_n(task, cfg, data, n, device, log=log) for n in cfg["n"]]
    models = xr.concat(parts, dim="n")
    models.attrs.update(model_attrs(task, cfg, data))
    t_train = time.perf_counter() - t0
    cube = extract_activations(cfg, data, models, device)
    table = compute_alignment(cube, metrics, log=log, probe_x=data["probe_x"].values)
    table = table.merge(task_thresholds(table, cfg["interpolation_tol"]), combine_attrs="override")
    table.attrs["train_seconds"] = t_train
    table.attrs["total_seconds"] = time.perf_counter() - t0
    return table


def chance_error(task: str, cfg: dict, table: xr.Dataset) -> float:
    """The clean test error of the best constant predictor: 1 - the test set's majority-class share for
    classification (classes need not be balanced), Var(clean target) for (standardised) regression."""
    if table.attrs.get("target") == "classification":
        labels = make_task_data(task, cfg)["test_label"].values
        return 1.0 - float(np.bincount(labels).max()) / len(labels)
    return float(table.attrs["target_variance"])


def describe(task: str, table: xr.Dataset, cfg: dict) -> dict:
    te = table["test_error"].sel(n=table["n"].max()).mean("seed")
    fit = below_threshold_fit(table, cfg["interpolation_tol"])
    return dict(chance_error=chance_error(task, cfg, table),
                test_error_largest_n=" ".join(f"{float(v):.2f}" for v in te.values),
                below_threshold_fit=fit["fraction"], stopped_short=fit["stopped_short"],
                fit_members=fit["members"], train_seconds=table.attrs["train_seconds"])


def compact_table(frame: pd.DataFrame) -> str:
    """One row per (variant, layer, SNR): the pilot's dip and verdict, the power (fraction of subsets where
    claim 2 holds) at each smaller ensemble, and the median n_min interval width (high / low) at each."""
    sizes = sorted(frame["members"].unique())
    head = ("| variant | layer | SNR | test error at max n (chance) | threshold interval | dip D (pilot) | "
            + " | ".join(f"holds with {m}" for m in sizes) + " | n_min interval high/low, " + "/".join(map(str, sizes))
            + " members |")
    lines = [head, "|---|---|---:|---|---|---:|" + "---:|" * len(sizes) + "---|"]
    for (variant, layer, snr), group in frame.groupby(["variant", "layer", "snr"], sort=False):
        by = group.set_index("members")
        pilot = by.loc[by.index.max()]
        errors = dict(zip(sorted(frame[frame.variant == variant]["snr"].unique()),
                          str(pilot["test_error_largest_n"]).split()))
        cells = [f"{by.loc[m, 'holds']:.2f}" if m in by.index and m < by.index.max() else
                 (f"**{'holds' if pilot['holds'] else 'fails' if pilot['fails'] else 'undecided'}** (pilot)"
                  if m == by.index.max() else "") for m in sizes]
        ratios = "/".join(f"{by.loc[m, 'n_min_ratio']:.1f}" if m in by.index else "–" for m in sizes)
        lines.append(f"| {variant} | {layer} | {snr:g} | {errors.get(snr, '?')} ({pilot['chance_error']:.3g}) | "
                     f"[{pilot['threshold_low']:g}, {pilot['threshold_high']:g}] | {pilot['dip']:.3f} | "
                     + " | ".join(cells) + f" | {ratios} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default=str(REPO / "configs" / "power" / "study.yaml"))
    parser.add_argument("--out", default="power_runs")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--reps", type=int, default=None, help="subsets per ensemble size (default: the study's)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--base-seed", type=int, default=None,
                        help="base_seed for every variant: pilots held out from the default run's members")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: no oversubscription)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    study = yaml.safe_load(Path(args.study).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reps = args.reps or study.get("reps", 40)
    rows = []
    for name, variant in study["variants"].items():
        if args.only and name not in args.only:
            continue
        if args.base_seed is not None:  # held-out pilots: other members than any run of config.yaml
            variant = merge(variant, {"set": {"base_seed": args.base_seed}})
        task, cfg = variant_config(variant)
        key = json.dumps(cfg, sort_keys=True, default=str)  # the resolved variant: a cache is only reused for it
        path = out / name.replace("/", "__") / "alignment.nc"
        table = read_netcdf(path) if path.exists() else None
        if table is not None and table.attrs.get("variant_config", key) != key:
            print(f"[{name}] cached pilot was trained with another config: retraining", file=sys.stderr)
            table = None
        if table is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.parent / "train.log", "w") as log:
                print(f"[{name}] training {len(cfg['snr'])} SNR x {len(cfg['n'])} n x {cfg['seeds']} members ...",
                      file=sys.stderr, flush=True)
                table = pilot_table(task, cfg, variant.get("metrics", study.get("metrics", ["cka_linear"])), log)
            table.attrs["variant_config"] = key
            write_netcdf(table, path)
        info = describe(task, table, cfg)
        print(f"[{name}] {info}", file=sys.stderr, flush=True)
        pilot = table.sizes["seed"]  # smaller ensembles are subsets; the pilot itself is always analysed
        members = sorted({m for m in variant.get("members", study.get("members", [6, 12, 24])) if m < pilot} | {pilot})
        for metric in table["metric"].values:
            for layer in hidden_layers(table):
                power = claim2_power(table, str(metric), layer, cfg["interpolation_tol"], members, reps=reps)
                rows.append(power.assign(variant=name, **info))
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    frame.to_csv(out / "power.csv", index=False)
    if args.markdown and len(frame):
        print(compact_table(frame))
        print()
        cols = ["variant", "layer", "members", "snr", "holds", "fails", "undecided", "dip", "n_min",
                "n_min_ratio", "threshold_low", "threshold_high", "test_error_largest_n", "chance_error",
                "below_threshold_fit"]
        print(frame[cols].to_markdown(index=False, floatfmt=".3g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
