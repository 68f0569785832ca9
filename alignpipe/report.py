"""The README's results section, generated from a run's verdicts.csv and alignment.nc files.

    python -m alignpipe.report results                    # print the section (Markdown)
    python -m alignpipe.report results --readme README.md # replace it between the markers

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
SHORT = {1: "1: rises monotonically with SNR", 2: "2: minimum near the threshold",
         4: "4: higher alignment ≠ lower error"}


def _cell(row) -> str:
    """One verdict with the numbers behind it."""
    if pd.isna(row.get("verdict")):
        return "–"
    if row["claim"] == 4:
        rho = (f"; ρ = {row['estimate']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
               if pd.notna(row.get("estimate")) else "")
        stat = (f"{int(row['decoupled_steps'])} decoupled, {int(row['coupled_steps'])} coupled of "
                f"{int(row['error_steps'])} steps where error changes{rho}" if pd.notna(row.get("steps")) else "")
    elif pd.notna(row.get("cells")):
        unit = "n" if row["claim"] == 1 else "SNRs"
        stat = f"{int(row['cells_holding'])} hold, {int(row['cells_failing'])} fail of {int(row['cells'])} {unit}"
    else:
        stat = ""
    return f"**{row['verdict']}** ({stat}; {row['metric']})" if stat else f"**{row['verdict']}**"


def claim3_table(verdicts: pd.DataFrame) -> str:
    rows = verdicts[(verdicts["claim"] == 3) & (verdicts["level"] != "comparison")]
    lines = ["| group | verdict (claims 1 and 2 of the group's tasks, aggregated) | tasks |", "|---|---|---|"]
    for _, r in rows.iterrows():
        lines.append(f"| {r['task']} | **{r['verdict']}** | {r['detail'] if r['task'] != 'all groups' else ''} |")
    comparisons = verdicts[(verdicts["claim"] == 3) & (verdicts["level"] == "comparison")]
    if len(comparisons):
        lines += ["", "| groups compared | quantity | difference [95 %] | groups (Holm p) |", "|---|---|---|---|"]
        for _, r in comparisons.iterrows():
            diff = (f"{r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" if pd.notna(r["estimate"])
                    else "–")
            lines.append(f"| {r['task']} | {r['statistic'].split(', ', 1)[-1]} | {diff} | {r['detail']} |")
    return "\n".join(lines)


def verdict_table(verdicts: pd.DataFrame, confirmatory: pd.DataFrame | None = None) -> str:
    """The headline verdict of every (claim, task): the exploratory run's and, when given, the held-out
    confirmatory run's (the project's answer)."""
    heads = verdicts[(verdicts["level"] == "headline") & (verdicts["claim"] != 3)]
    confirm = (confirmatory[(confirmatory["level"] == "headline") & (confirmatory["claim"] != 3)]
               if confirmatory is not None else None)
    tasks = list(dict.fromkeys(heads["task"]))
    lines = ["| claim | task | exploratory (default run) | confirmatory (held-out run) |", "|---|---|---|---|"]
    for claim in sorted(heads["claim"].unique()):
        for task in tasks:
            row = heads[(heads.claim == claim) & (heads.task == task)]
            other = confirm[(confirm.claim == claim) & (confirm.task == task)] if confirm is not None else []
            lines.append(f"| {SHORT.get(claim, claim)} | `{task}` | {_cell(row.iloc[0]) if len(row) else '–'} | "
                         f"{_cell(other.iloc[0]) if len(other) else 'not run'} |")
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
    from alignlib.stats.threshold import below_threshold_fit

    lines = [f"| task | members at n ≤ threshold/{factor:g} | reach their noise floor (noise_fit ≤ {tol:g}) "
             "| hit max_steps without it |", "|---|---:|---:|---:|"]
    for task, t in tables.items():
        fit = below_threshold_fit(t, tol, factor)
        pct = (lambda v: f"{v:.1%}" if np.isfinite(v) else "–")
        lines.append(f"| `{task}` | {fit['members']} | {pct(fit['fraction'])} | {pct(fit['stopped_short'])} |")
    return "\n".join(lines)


def claim2_table(summary: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """Claim 2 per SNR on every hidden layer of each task's primary metric: the call, the dip depth D
    with its Holm-adjusted p, the minimising n, the threshold t (its grid bracket), r = log(n_min / t)
    with its joint member-bootstrap interval against +-log c, and the curve's shape at t."""
    heads = verdicts[(verdicts["level"] == "headline") & (verdicts["claim"] == 2)]
    lines = ["| task | metric | layer | SNR | call | dip D (Holm p) | n_min | t (bracket) | r [interval] | shape at t |",
             "|---|---|---|---:|---|---|---:|---|---|---|"]

    def edge(v, text):
        return f"{v:g}" if pd.notna(v) else text

    for _, head in heads.iterrows():
        rows = summary[(summary.task == head.task) & (summary.claim == 2) & (summary.metric == head.metric)
                       & (summary.layer != "output")]
        if "level" in rows:
            rows = rows[rows.level == "cell"]
        for _, r in rows.iterrows():
            dip = f"{r.estimate:.3f} ({r.p_holm:.2g})" if pd.notna(r.estimate) else "–"
            nmin = f"{r.n_min:g}" if pd.notna(r.n_min) else "–"
            t = (f"{r.threshold:.3g} ({edge(r.threshold_low, 'below grid')}–{edge(r.threshold_high, 'beyond grid')})"
                 if pd.notna(r.get("threshold")) else "–")
            ratio = (f"{r.r:+.2f} [{r.r_low:+.2f}, {r.r_high:+.2f}] vs ±{np.log(r.near_factor):.2f}"
                     if pd.notna(r.get("r_low")) else "–")
            lines.append(f"| `{r.task}` | {r.metric} | {r.layer} | {float(r.snr):g} | **{r.call}** | {dip} | {nmin} | "
                         f"{t} | {ratio} | {r.get('shape_at_threshold', '–')} |")
    return "\n".join(lines)


def ood_table(results: Path, tasks: list[str], verdicts: pd.DataFrame, alpha: float = 0.05) -> str:
    """Per task and metric: do later layers de-align more than early ones under the probe shift? The drop
    statistic (alignpipe.ood) at every SNR, at the largest n and near the threshold, Holm-corrected over
    the task's rows of that metric; ``yes`` where the adjusted one-sided p is below ``alpha``."""
    from alignlib.stats.members import holm

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


def section(results: Path, confirmatory: Path | None = None) -> str:
    """The results section of a run (``results``), with the held-out run's verdicts beside the headline
    ones when ``confirmatory`` (its results folder) is given."""
    from alignpipe.cubes import read_netcdf

    verdicts = pd.read_csv(results / "verdicts.csv")
    confirm = pd.read_csv(confirmatory / "verdicts.csv") if confirmatory is not None else None
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
        f"*Generated by `python -m alignpipe.report {results} --readme README.md` from the default run "
        f"(`snakemake --cores 2`) at commit `{commit}`; members per grid point: {members}.*",
        "",
        "**Headline verdicts** (`verdicts.csv`, level `headline`): the task's primary metric on its "
        "first hidden layer (the end-to-end map for the linear network's cosine), decided by the rules fixed "
        "in advance (docs/methods.md): cells (claim 1: each n; claim 2: each SNR; claim 4: the grid) that "
        "hold, fail or stay undecided, one aggregation rule. The exploratory column is the default run, "
        "whose design was chosen on its own members; the **confirmatory** column, a held-out run "
        "(`configs/confirm.yaml`: fresh seeds, three data draws), is the project's answer.",
        "",
        verdict_table(verdicts, confirm),
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
        "min(interior), its p against the least favourable monotone curve, Holm over SNRs; t the geometric "
        "midpoint of the threshold's grid bracket; r = log(n_min / t) with its 90 % joint member-bootstrap "
        "interval; *holds* when the dip is significant and the interval lies inside ±log 1.5, *fails* when it "
        "lies wholly outside; the shape at t is a description):",
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
    parser.add_argument("--confirmatory", type=Path, help="results folder of the held-out run (configs/confirm.yaml)")
    args = parser.parse_args(argv)
    text = section(args.results, args.confirmatory)
    if args.readme:
        replace_section(args.readme, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
