"""The README's results section, generated from a run's verdicts.csv and alignment.nc files.

    python -m alignlib.report results                    # print the section (Markdown)
    python -m alignlib.report results --readme README.md # replace it between the markers

The section sits between ``<!-- results:begin -->`` and ``<!-- results:end -->``; text
outside the markers (e.g. the plain-language reading of the verdicts) is left alone.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
SHORT = {1: "1: rises with SNR", 2: "2: minimum near the threshold", 4: "4: equal error, different alignment"}


def _cell(row) -> str:
    agree = str(row.get("metrics_agree", "") or "")
    agree = agree.split(":")[0] if agree and agree != "nan" else ""
    est = row.get("estimate")
    if row["claim"] == 4:
        stat = (f"ρ = {est:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" if pd.notna(est) else "")
    else:
        stat = f"{est:.0%} of {'n' if row['claim'] == 1 else 'SNRs'}" if pd.notna(est) else ""
    return f"**{row['verdict']}** ({stat}; {row['metric']}; agree {agree})"


def claim3_table(verdicts: pd.DataFrame) -> str:
    rows = verdicts[verdicts["claim"] == 3]
    lines = ["| group | verdict (claims 1 and 2 for every task of the group) | tasks |", "|---|---|---|"]
    for _, r in rows.iterrows():
        lines.append(f"| {r['task']} | **{r['verdict']}** | {r['detail'] if r['task'] != 'all groups' else ''} |")
    return "\n".join(lines)


def verdict_table(verdicts: pd.DataFrame) -> str:
    heads = verdicts[(verdicts["level"] == "headline") & (verdicts["claim"] != 3)]
    tasks = list(dict.fromkeys(heads["task"]))
    lines = ["| claim | " + " | ".join(f"`{t}`" for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
    for claim in sorted(heads["claim"].unique()):
        cells = []
        for task in tasks:
            row = heads[(heads.claim == claim) & (heads.task == task)]
            cells.append(_cell(row.iloc[0]) if len(row) else "–")
        lines.append(f"| {SHORT.get(claim, claim)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_metric_table(verdicts: pd.DataFrame, layer_kind: str = "hidden") -> str:
    """Verdict letters per metric (rows) and task x claim (columns): H holds, F fails, U undecided, – excluded."""
    rows = verdicts[(verdicts["level"] == "metric") & (verdicts["claim"] != 3)]
    tasks = list(dict.fromkeys(rows["task"]))
    letter = {"holds": "H", "fails": "F", "undecided": "U", "excluded": "–"}
    lines = ["| metric (layer) | " + " | ".join(f"`{t}` 1·2·4" for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
    for (metric, layer), group in rows.groupby(["metric", "layer"], sort=False):
        if (layer == "output") != (layer_kind == "output") and metric != "cosine_end_to_end":
            continue
        cells = []
        for task in tasks:
            mine = group[group.task == task]
            cells.append("·".join(letter.get(mine[mine.claim == c]["verdict"].iloc[0], "?") if (mine.claim == c).any()
                                  else " " for c in (1, 2, 4)))
        lines.append(f"| {metric} ({layer}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def threshold_table(tables: dict) -> str:
    lines = ["| task | SNR | interpolation threshold [95% interval] | test-error peak: significant interior maximum [95% interval] |",
             "|---|---:|---|---|"]

    def fmt(v, edge):
        return f"{v:g}" if np.isfinite(v) else edge

    for task, t in tables.items():
        for snr in t["snr"].values:
            th = t.sel(snr=snr)
            thr = float(th["interpolation_threshold"])
            if np.isfinite(thr):
                a = (f"{thr:g} [{fmt(float(th['interpolation_threshold_low']), '<' + str(int(t['n'].min())))}, "
                     f"{fmt(float(th['interpolation_threshold_high']), '>' + str(int(t['n'].max())))}]")
            else:
                a = f"below the grid (n < {int(t['n'].min())})"
            peak = float(th["test_error_peak"])
            q = float(th["test_error_peak_p"]) if "test_error_peak_p" in th else np.nan
            if np.isfinite(peak):
                b = f"{peak:g} [{float(th['test_error_peak_low']):g}, {float(th['test_error_peak_high']):g}] (Holm p {q:.2g})"
            else:
                b = f"no peak (Holm p {q:.2g})" if np.isfinite(q) else "no peak"
            lines.append(f"| `{task}` | {snr:g} | {a} | {b} |")
    return "\n".join(lines)


def training_table(tables: dict, tol: float = 0.01, factor: float = 1.5) -> str:
    from .threshold import below_threshold_fit

    lines = [f"| task | members at n ≤ threshold/{factor:g} | reach their noise floor (noise_fit ≤ {tol:g}) "
             "| hit max_steps without it |", "|---|---:|---:|---:|"]
    for task, t in tables.items():
        fit = below_threshold_fit(t, tol, factor)
        pct = (lambda v: f"{v:.1%}" if np.isfinite(v) else "–")
        lines.append(f"| `{task}` | {fit['members']} | {pct(fit['fraction'])} | {pct(fit['stopped_short'])} |")
    return "\n".join(lines)


def claim2_table(summary: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """Claim 2 per SNR on every hidden layer of each task's primary metric: the call, the dip depth D
    with its Holm-adjusted p, the minimising n with its member-bootstrap interval, the threshold interval."""
    heads = verdicts[(verdicts["level"] == "headline") & (verdicts["claim"] == 2)]
    lines = ["| task | metric | layer | SNR | call | dip D (Holm p) | n_min [95% interval] | threshold interval |",
             "|---|---|---|---:|---|---|---|---|"]

    def edge(v, text):
        return f"{v:g}" if pd.notna(v) else text

    for _, head in heads.iterrows():
        rows = summary[(summary.task == head.task) & (summary.claim == 2) & (summary.metric == head.metric)
                       & (summary.layer != "output")]
        for _, r in rows.iterrows():
            dip = f"{r.estimate:.3f} ({r.p_holm:.2g})" if pd.notna(r.estimate) else "–"
            nmin = f"{r.n_min:g} [{r.ci_low:g}, {r.ci_high:g}]" if pd.notna(r.n_min) else "–"
            band = f"[{edge(r.threshold_low, 'below grid')}, {edge(r.threshold_high, 'beyond grid')}]"
            lines.append(f"| `{r.task}` | {r.metric} | {r.layer} | {float(r.snr):g} | **{r.call}** | {dip} | {nmin} | {band} |")
    return "\n".join(lines)


def ood_table(results: Path, tasks: list[str], verdicts: pd.DataFrame, alpha: float = 0.05) -> str:
    """Per task and metric: do later layers de-align more than early ones under the probe shift? The drop
    statistic (alignlib.ood) at every SNR, at the largest n and near the threshold, Holm-corrected over
    the task's rows of that metric; ``yes`` where the adjusted one-sided p is below ``alpha``."""
    from .members import holm

    lines = ["| task | metric | compared layers | n | SNRs where later layers de-align more (Holm p < 0.05) "
             "| drop statistic per SNR (± s.e.) |", "|---|---|---|---|---|---|"]
    found = False
    for task in tasks:
        path = results / task / "ood_summary.csv"
        if not path.exists():
            continue
        found = True
        frame = pd.read_csv(path)
        for metric, rows in frame.groupby("metric", sort=False):
            adjusted = holm(rows["p_one_sided"].values)
            rows = rows.assign(p_holm=adjusted)
            for choice, group in rows.groupby("n_choice", sort=False):
                yes = [f"{s:g}" for s, p in zip(group.snr, group.p_holm) if p < alpha]
                stats = "; ".join(f"SNR {s:g}: {d:+.3f} ± {e:.3f}" for s, d, e in zip(group.snr, group.statistic, group.se))
                layers = f"{group.early_layer.iloc[0]} → {group.late_layer.iloc[0]}"
                ns = "/".join(sorted({f"{int(v)}" for v in group.n}, key=int))
                lines.append(f"| `{task}` | {metric} | {layers} | {choice} ({ns}) | "
                             f"{len(yes)}/{len(group)}{': ' + ', '.join(yes) if yes else ''} | {stats} |")
    return "\n".join(lines) if found else "- no OOD probes in this run"


def excluded_list(tables: dict) -> str:
    out = []
    for task, t in tables.items():
        if "alignment_note" not in t:
            continue
        for metric in t["metric"].values:
            for layer in t["layer"].values:
                note = str(t["alignment_note"].sel(metric=metric, layer=layer).values)
                if note:
                    out.append(f"- `{task}`, `{metric}` at `{layer}`: {note}")
    return "\n".join(out) if out else "- none"


def section(results: Path) -> str:
    from .cubes import read_netcdf

    verdicts = pd.read_csv(results / "verdicts.csv")
    summary = pd.read_csv(results / "summary.csv") if (results / "summary.csv").exists() else None
    tasks = list(dict.fromkeys(verdicts["task"]))
    tables = {t: read_netcdf(results / t / "alignment.nc") for t in tasks if (results / t / "alignment.nc").exists()}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    members = ", ".join(f"`{t}` {int(tab.sizes['seed'])}" for t, tab in tables.items())
    return "\n".join([
        BEGIN,
        f"*Generated by `python -m alignlib.report {results} --readme README.md` from the default run "
        f"(`snakemake --cores 2`) at commit `{commit}`; members per grid point: {members}.*",
        "",
        "**Headline verdicts** (`results/verdicts.csv`, level `headline`): the task's primary metric on its "
        "first hidden layer (the end-to-end map for the linear network's cosine); the percentage is the "
        "share of n (claim 1) or SNRs (claim 2) where the test called the effect; *agree* counts the "
        "informative metrics with the same verdict.",
        "",
        verdict_table(verdicts),
        "",
        "**Claim 3** (the same picture for linear and nonlinear networks, regression and classification, "
        "synthetic and real data):",
        "",
        claim3_table(verdicts),
        "",
        "**Every metric on the hidden layer** (H holds, F fails, U undecided, – excluded; claims 1·2·4):",
        "",
        per_metric_table(verdicts),
        "",
        "**Claim 2 per SNR** on every hidden layer of the primary metric (dip depth D = min(ends) − "
        "min(interior), its p against the least favourable monotone curve, Holm over SNRs; the minimising "
        "n with its member-bootstrap interval; *holds* when the dip is significant and the n_min interval "
        "meets the threshold interval):",
        "",
        claim2_table(summary, verdicts) if summary is not None else "- no summary.csv",
        "",
        "**Out-of-distribution probes**: does the shift lower alignment more at the later layer than at "
        "the early one? (drop = ID − OOD pair-mean alignment; statistic = drop(late) − drop(early), "
        "member-jackknife s.e., one-sided p, Holm over the task's rows):",
        "",
        ood_table(results, tasks, verdicts),
        "",
        "**Interpolation thresholds** (a member interpolates when it leaves at most 1 % of its own noise "
        "unmemorised; the threshold is the largest n up to which at least half the members do; intervals: "
        "member bootstrap, never narrower than the grid gap) **and test-error peaks**:",
        "",
        threshold_table(tables),
        "",
        "**Training reaches the noise floor below the threshold** (members at n ≤ threshold / 1.5 of "
        "every SNR whose threshold lies inside the grid):",
        "",
        training_table(tables),
        "",
        "**Excluded metric/layer combinations** (NaN in `alignment.nc` with `alignment_note`):",
        "",
        excluded_list(tables),
        END,
    ])


def replace_section(readme: Path, text: str) -> None:
    old = readme.read_text()
    if BEGIN not in old or END not in old:
        raise ValueError(f"{readme} has no {BEGIN} ... {END} markers")
    head, rest = old.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + text + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate the README's results section from a run.")
    parser.add_argument("results", type=Path)
    parser.add_argument("--readme", type=Path)
    args = parser.parse_args(argv)
    text = section(args.results)
    if args.readme:
        replace_section(args.readme, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
