"""The results of a run as Markdown, generated from its verdicts.csv, summary.csv and alignment.nc files.

    python -m alignpipe.report results                                # print the page's generated section
    python -m alignpipe.report results --page docs/results.md         # write the whole results page
    python -m alignpipe.report results --readme README.md             # the README's headline table
    python -m alignpipe.report results --page docs/results.md --readme README.md --confirmatory results_confirm

The README gets only the headline table (one row per claim and task, exploratory and confirmatory
columns) between ``<!-- results:begin -->`` and ``<!-- results:end -->``; text outside the markers
is left alone. The results page is written whole up to its end marker; the text after it (the
plain-language reading, written by people) is kept. A rule script calls :func:`write_page` and
:func:`write_readme_table`. Each table has its function (``*_table``), each page block its title
(``*_block``); :func:`section_body` assembles the page's tables, :func:`readme_table` the README's.
"""

from __future__ import annotations

import argparse
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alignlib.stats.members import holm
from alignlib.stats.threshold import below_threshold_fit
from alignpipe.cubes import read_netcdf

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


def _headline_rows(verdicts: pd.DataFrame | None) -> pd.DataFrame | None:
    if verdicts is None:
        return None
    return verdicts[(verdicts["level"] == "headline") & (verdicts["claim"] != 3)]


def verdict_table(verdicts: pd.DataFrame, confirmatory: pd.DataFrame | None = None) -> str:
    """The headline verdict of every (claim, task), one row each: the exploratory run's and the held-out
    confirmatory run's (the project's answer; "not run" without one). Claims and tasks of either run."""
    heads, confirm = _headline_rows(verdicts), _headline_rows(confirmatory)
    both = [heads] + ([confirm] if confirm is not None else [])
    tasks = list(dict.fromkeys(t for frame in both for t in frame["task"]))
    claims = sorted({int(c) for frame in both for c in frame["claim"]})
    lines = ["| claim | task | exploratory (default run) | confirmatory (held-out run) |", "|---|---|---|---|"]

    def cell(frame, claim, task, absent):
        if frame is None:
            return absent
        row = frame[(frame.claim == claim) & (frame.task == task)]
        return _cell(row.iloc[0]) if len(row) else "–"

    for claim in claims:
        for task in tasks:
            lines.append(f"| {SHORT.get(claim, claim)} | `{task}` | {cell(heads, claim, task, '–')} | "
                         f"{cell(confirm, claim, task, 'not run')} |")
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
    lines = [f"| task | members at n ≤ threshold/{factor:g} | reach their noise floor (noise_fit ≤ {tol:g}) "
             "| hit max_steps without it |", "|---|---:|---:|---:|"]
    for task, t in tables.items():
        fit = below_threshold_fit(t, tol, factor)
        pct = (lambda v: f"{v:.1%}" if np.isfinite(v) else "–")
        lines.append(f"| `{task}` | {fit['members']} | {pct(fit['fraction'])} | {pct(fit['stopped_short'])} |")
    return "\n".join(lines)


def claim2_table(summary: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """Claim 2 per SNR on every hidden layer of each task's primary metric (and on its headline layer when
    that is the output, as for the linear network's end-to-end cosine): the call, the dip depth D
    with its Holm-adjusted p, the minimising n, the threshold t (its grid bracket), r = log(n_min / t)
    with its joint member-bootstrap interval against +-log c, and the curve's shape at t."""
    heads = verdicts[(verdicts["level"] == "headline") & (verdicts["claim"] == 2)]
    lines = ["| task | metric | layer | SNR | call | dip D (Holm p) | n_min | t (bracket) | r [interval] | shape at t |",
             "|---|---|---|---:|---|---|---:|---|---|---|"]

    def edge(v, text):
        return f"{v:g}" if pd.notna(v) else text

    for _, head in heads.iterrows():
        rows = summary[(summary.task == head.task) & (summary.claim == 2) & (summary.metric == head.metric)
                       & ((summary.layer != "output") | (summary.layer == head.layer))]
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


@dataclass
class Run:
    """What the report reads from one run's results folder: ``verdicts.csv``, ``summary.csv`` (None when
    absent) and every task's ``alignment.nc`` that exists (``missing`` names the tasks without one)."""

    path: Path
    verdicts: pd.DataFrame
    summary: pd.DataFrame | None
    tables: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        """The run's tasks in verdict order (claim 3's rows name groups of tasks, not tasks)."""
        return list(dict.fromkeys(self.verdicts.loc[self.verdicts["claim"] != 3, "task"]))


def load_run(results: Path) -> Run:
    """Read a run's results folder; only ``verdicts.csv`` is required."""
    results = Path(results)
    if not (results / "verdicts.csv").exists():
        raise FileNotFoundError(f"{results / 'verdicts.csv'} does not exist: is {results} the results "
                                "folder of a finished run?")
    verdicts = pd.read_csv(results / "verdicts.csv")
    summary = pd.read_csv(results / "summary.csv") if (results / "summary.csv").exists() else None
    run = Run(results, verdicts, summary)
    for task in run.tasks:
        path = results / task / "alignment.nc"
        if path.exists():
            run.tables[task] = read_netcdf(path)
        else:
            run.missing.append(task)
    return run


def confirmatory_run(confirmatory: Path | None) -> Run | None:
    """The held-out run's results folder read whole (None when none is given); a clear error when it
    has no ``verdicts.csv``."""
    if confirmatory is None:
        return None
    path = Path(confirmatory) / "verdicts.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: has the confirmatory run (configs/confirm.yaml) finished?")
    return load_run(confirmatory)


def as_run(results: Path | Run) -> Run:
    """A results folder read by :func:`load_run`, or a :class:`Run` already read (the CLI reads each once)."""
    return results if isinstance(results, Run) else load_run(results)


def as_confirm(confirmatory: Path | Run | None) -> Run | None:
    return confirmatory if confirmatory is None or isinstance(confirmatory, Run) else confirmatory_run(confirmatory)


def commit() -> str:
    """The checkout's short commit (``unknown`` outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command(results: Path, target: str, path, confirmatory: Path | None) -> str:
    """The command line that regenerates a file (``target``: ``--page`` or ``--readme``)."""
    extra = f" --confirmatory {confirmatory}" if confirmatory is not None else ""
    return f"python -m alignpipe.report {results} {target} {path}{extra}"


def members_note(run: Run) -> str:
    return ", ".join(f"`{t}` {int(tab.sizes['seed'])}" for t, tab in run.tables.items()) or "no alignment.nc read"


def missing_note(run: Run) -> str:
    """One line per task without an ``alignment.nc`` (its threshold, training and exclusion rows are absent)."""
    return "\n".join(f"- no alignment.nc for task `{t}`" for t in run.missing)


def _block(title: str, body: str, note: str = "") -> str:
    """A page block: its title paragraph, a blank line, the table (and a note under it, when any)."""
    return "\n".join([title, "", body] + ([note] if note else []))


def headline_block(run: Run, confirm: pd.DataFrame | None) -> str:
    return _block(
        "**Headline verdicts** (`verdicts.csv`, level `headline`): the task's primary metric on its "
        "first hidden layer (the end-to-end map for the linear network's cosine), decided by the rules fixed "
        "in advance ([methods](methods.md#criteria-fixed-before-the-results-they-decide)): cells (claim 1: "
        "each n; claim 2: each SNR; claim 4: the grid) that hold, fail or stay undecided, one aggregation "
        "rule. The exploratory column is the default run, whose design was chosen on its own members; the "
        "**confirmatory** column, a held-out run (`configs/confirm.yaml`: fresh seeds, three data draws), "
        "is the project's answer.",
        verdict_table(run.verdicts, confirm))


def claim3_block(run: Run) -> str:
    return _block("**Claim 3** (the same picture for linear and nonlinear networks, regression and "
                  "classification, synthetic and real data):", claim3_table(run.verdicts))


def per_metric_block(run: Run) -> str:
    return _block("**Every metric on the hidden layer** (H holds, F fails, U undecided, – excluded; claims 1·2·4):",
                  per_metric_table(run.verdicts))


def claim2_block(run: Run) -> str:
    return _block(
        "**Claim 2 per SNR** on every hidden layer of the primary metric, and on the end-to-end map where "
        "that is the headline (dip depth D = min(ends) − "
        "min(interior), its p against the least favourable monotone curve, Holm over SNRs; t the geometric "
        "midpoint of the threshold's grid bracket; r = log(n_min / t) with its 90 % joint member-bootstrap "
        "interval; *holds* when the dip is significant and the interval lies inside ±log 1.5, *fails* when it "
        "lies wholly outside; the shape at t is a description):",
        claim2_table(run.summary, run.verdicts) if run.summary is not None else "- no summary.csv")


def ood_block(run: Run) -> str:
    return _block(
        "**Out-of-distribution probes**: does the shift lower alignment more at the later layer than at "
        "the early one? (drop = ID − OOD pair-mean alignment; statistic = drop(late) − drop(early), "
        "member-jackknife s.e., one-sided p, Holm over the task's rows; [how](convergent.md)):",
        ood_table(run.path, run.tasks, run.verdicts))


def threshold_block(run: Run) -> str:
    return _block(
        "**Interpolation thresholds** (a member interpolates when it leaves at most 1 % of its own noise "
        "unmemorised; the threshold is the largest n up to which at least half the members do; intervals: "
        "member bootstrap, never narrower than the grid gap) **and test-error peaks**:",
        threshold_table(run.tables), missing_note(run))


def training_block(run: Run) -> str:
    return _block(
        "**Training reaches the noise floor below the threshold** (members at n ≤ threshold / 1.5 of "
        "every SNR whose threshold lies inside the grid):", training_table(run.tables), missing_note(run))


def excluded_block(run: Run) -> str:
    return _block("**Excluded metric/layer combinations** (NaN in `alignment.nc` with `alignment_note`):",
                  excluded_list(run.tables), missing_note(run))


def detail_blocks(run: Run) -> list[str]:
    """The page's blocks behind a run's headline verdicts: claim 3, every metric, claim 2 per SNR, OOD
    probes, thresholds, training and exclusions."""
    return [claim3_block(run), per_metric_block(run), claim2_block(run), ood_block(run), threshold_block(run),
            training_block(run), excluded_block(run)]


def section_body(run: Run, confirm: Run | None = None, generated_by: str | None = None) -> str:
    """Every table of the results page, in order, each under its title (no markers). With the held-out run
    (``confirm``), its tables come first, under their own heading, then the default run's."""
    by = generated_by or f"python -m alignpipe.report {run.path} --page docs/results.md"
    note = f"*Generated by `{by}` at commit `{commit()}`; members per grid point: {members_note(run)}.*"
    blocks = [note, headline_block(run, None if confirm is None else confirm.verdicts)]
    if confirm is not None:
        blocks += [f"### The held-out run (`{confirm.path}`), the project's answer\n\n"
                   f"Members per grid point (all data draws together): {members_note(confirm)}."]
        blocks += detail_blocks(confirm)
        blocks += [f"### The default run (`{run.path}`), exploratory"]
    return "\n\n".join(blocks + detail_blocks(run))


def section(results: Path | Run, confirmatory: Path | Run | None = None) -> str:
    """The results page's generated section of a run (``results``), between the markers, with the held-out
    run's verdicts beside the headline ones when ``confirmatory`` (its results folder) is given."""
    return "\n".join([BEGIN, section_body(as_run(results), as_confirm(confirmatory)), END])


def readme_table(results: Path | Run, confirmatory: Path | Run | None = None, page_link: str = "docs/results.md",
                 generated_by: str | None = None) -> str:
    """The README's part, between the markers: the headline verdict of every (claim, task), exploratory and
    confirmatory, and a link to the full results page."""
    run, confirm = as_run(results), as_confirm(confirmatory)
    by = generated_by or command(run.path, "--readme", "README.md", None if confirm is None else confirm.path)
    members = f"members per grid point: {members_note(run)}"
    if confirm is not None:
        members = f"members per grid point, default run: {members_note(run)}; held-out run: {members_note(confirm)}"
    return "\n".join([
        BEGIN,
        f"*Generated by `{by}` at commit `{commit()}`; {members}.*",
        "",
        verdict_table(run.verdicts, confirm.verdicts if confirm is not None else None),
        "",
        f"Every table behind these verdicts (per metric, per SNR, thresholds, OOD probes): [{page_link}]({page_link}).",
        END,
    ])


PAGE_TITLE = "# Results"
PAGE_INTRO = (
    "`results/verdicts.csv` is the pipeline's answer: one verdict per claim and task (`holds`, `fails` or "
    "`undecided`, with the statistic, its interval or p-value, the number of members and the metrics that "
    "agree), then one row per metric and layer; `results/summary.csv` holds every per-cell test behind them. "
    "How each claim is tested, and how often the tests err, is in [methods.md](methods.md). Everything from "
    "here to the plain-language reading is generated from a run (`python -m alignpipe.report results --page "
    "docs/results.md [--confirmatory results_confirm]`); the reading is written by people and kept when the "
    "page is regenerated.")
READING_PLACEHOLDER = "\n\n## What this says, plainly\n\n(Not written yet for this run.)\n"


def page(results: Path | Run, confirmatory: Path | Run | None = None, reading: str | None = None,
         generated_by: str | None = None) -> str:
    """The whole results page: title, introduction, the generated section between the markers, then
    ``reading`` (the plain-language text after the end marker; a placeholder when None)."""
    body = section_body(as_run(results), as_confirm(confirmatory), generated_by)
    return "\n".join([PAGE_TITLE, "", PAGE_INTRO, "", BEGIN, body, END]) + (
        READING_PLACEHOLDER if reading is None else reading)


def _split_markers(text: str, name: str = "text") -> tuple[str, str, str]:
    """(before, between, after) the one pair of markers; a ValueError unless there is exactly one of each,
    begin before end."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"{name} must hold exactly one {BEGIN} and one {END} "
                         f"(found {text.count(BEGIN)} and {text.count(END)})")
    head, rest = text.split(BEGIN, 1)
    if END not in rest:
        raise ValueError(f"{name}: {END} comes before {BEGIN}")
    between, tail = rest.split(END, 1)
    return head, between, tail


def replace_between_markers(text: str, new: str, name: str = "text") -> str:
    """``text`` with its one marked section replaced by ``new`` (which carries its own markers); the text
    outside the markers is left exactly as it was."""
    head, _, tail = _split_markers(text, name)
    if not (new.startswith(BEGIN) and new.endswith(END)):
        raise ValueError(f"the new section must start with {BEGIN} and end with {END}")
    return head + new + tail


def replace_section(readme: Path, text: str) -> None:
    readme = Path(readme)
    readme.write_text(replace_between_markers(readme.read_text(), text, str(readme)))


def write_readme_table(results: Path | Run, readme: Path, confirmatory: Path | Run | None = None,
                       page_link: str = "docs/results.md") -> None:
    """Replace the README's marked section by the headline table of ``results`` (and ``confirmatory``)."""
    readme = Path(readme)
    run, confirm = as_run(results), as_confirm(confirmatory)
    by = command(run.path, "--readme", readme.name, None if confirm is None else confirm.path)
    replace_section(readme, readme_table(run, confirm, page_link, generated_by=by))


def write_page(results: Path | Run, path: Path, confirmatory: Path | Run | None = None) -> None:
    """Write the whole results page to ``path``. Where ``path`` exists, the text after its end marker (the
    plain-language reading) is kept; everything up to the end marker is regenerated."""
    path = Path(path)
    reading = _split_markers(path.read_text(), str(path))[2] if path.exists() else None
    run, confirm = as_run(results), as_confirm(confirmatory)
    by = command(run.path, "--page", path, None if confirm is None else confirm.path)
    text = page(run, confirm, reading, generated_by=by)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="The results of a run as Markdown: print the results page's generated section, write the "
                    "whole page (--page) and/or the README's headline table (--readme).")
    parser.add_argument("results", type=Path, help="results folder of a finished run (verdicts.csv, ...)")
    parser.add_argument("--readme", type=Path, help="replace this file's marked section by the headline table")
    parser.add_argument("--page", type=Path, help="write the whole results page here (e.g. docs/results.md)")
    parser.add_argument("--confirmatory", type=Path, help="results folder of the held-out run (configs/confirm.yaml)")
    args = parser.parse_args(argv)
    run, confirm = load_run(args.results), confirmatory_run(args.confirmatory)  # each folder read once
    if args.page:
        write_page(run, args.page, confirm)
    if args.readme:
        write_readme_table(run, args.readme, confirm)
    if not (args.page or args.readme):
        print(section(run, confirm))


if __name__ == "__main__":
    main()
