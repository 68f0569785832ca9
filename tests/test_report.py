"""alignpipe.report on hand-made verdicts and summary frames, and a tiny fake results folder (no
alignment.nc: the page says so instead of failing); and the documentation's own checks: every relative
link in README.md and docs/*.md points to a file (and heading) that exists, the README stays short, and
its test command is the one CI runs."""
import re
from pathlib import Path

import pandas as pd
import pytest

from alignpipe import report
from alignpipe.report import BEGIN, END

REPO = Path(__file__).resolve().parent.parent
TASKS = ("linear_regression", "mlp_classification")


def headline(task, claim, verdict, **extra):
    row = dict(task=task, claim=claim, level="headline", metric="cka_linear", layer="hidden", verdict=verdict,
               cells=3.0, cells_holding=2.0 if verdict == "holds" else 0.0, cells_failing=0.0)
    if claim == 4:
        row.update(steps=7.0, error_steps=3.0, decoupled_steps=1.0 if verdict == "holds" else 0.0,
                   coupled_steps=2.0, estimate=-0.5, ci_low=-0.7, ci_high=-0.3)
    row.update(extra)
    return row


def verdicts_frame(tasks=TASKS, verdict="holds"):
    rows = [headline(t, c, verdict) for c in (1, 2, 4) for t in tasks]
    rows.append(dict(task="all groups", claim=3, level="headline", verdict="undecided", detail=""))
    rows.append(dict(task="network = linear", claim=3, level="group", verdict=verdict, detail="linear_regression"))
    rows += [dict(task=t, claim=c, level="metric", metric=m, layer="hidden", verdict=verdict)
             for t in tasks for c in (1, 2, 4) for m in ("cka_linear", "procrustes")]
    return pd.DataFrame(rows)


def summary_frame(tasks=TASKS):
    return pd.DataFrame([
        dict(task=t, claim=2, level="cell", metric="cka_linear", layer="hidden", snr=snr, call="holds", estimate=0.1,
             p_holm=0.01, n_min=50.0, threshold=52.4, threshold_low=50.0, threshold_high=55.0, r=-0.05, r_low=-0.2,
             r_high=0.1, near_factor=1.5, shape_at_threshold="dip")
        for t in tasks for snr in (1.0, 10.0)])


@pytest.fixture
def results(tmp_path):
    """A results folder with verdicts.csv and summary.csv only (no alignment.nc, no OOD)."""
    folder = tmp_path / "results"
    folder.mkdir()
    verdicts_frame().to_csv(folder / "verdicts.csv", index=False)
    summary_frame().to_csv(folder / "summary.csv", index=False)
    return folder


@pytest.fixture
def confirm(tmp_path):
    folder = tmp_path / "results_confirm"
    folder.mkdir()
    verdicts_frame(verdict="fails").to_csv(folder / "verdicts.csv", index=False)
    return folder


def table_rows(text):
    """The body rows of the first Markdown table in ``text`` (cells stripped)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[2:]]


def test_readme_table_has_one_row_per_claim_and_task_with_both_columns():
    text = report.verdict_table(verdicts_frame(), verdicts_frame(verdict="fails"))
    header = text.splitlines()[0]
    assert "exploratory" in header and "confirmatory" in header
    rows = table_rows(text)
    assert [(r[0].split(":")[0], r[1]) for r in rows] == [(str(c), f"`{t}`") for c in (1, 2, 4) for t in TASKS]
    assert all(len(r) == 4 for r in rows)
    assert all(r[2].startswith("**holds**") and r[3].startswith("**fails**") for r in rows)
    assert "2 hold, 0 fail of 3 n; cka_linear" in rows[0][2]
    assert "1 decoupled, 2 coupled of 3 steps where error changes" in rows[-1][2]


def test_readme_table_without_a_confirmatory_run_says_not_run_and_takes_tasks_of_either_run():
    rows = table_rows(report.verdict_table(verdicts_frame()))
    assert len(rows) == 6 and all(r[3] == "not run" for r in rows)
    rows = table_rows(report.verdict_table(verdicts_frame(tasks=TASKS[:1]), verdicts_frame()))
    assert len(rows) == 6  # mlp_classification only in the confirmatory run: its row is there
    only_confirmed = [r for r in rows if r[1] == "`mlp_classification`"]
    assert all(r[2] == "–" and r[3].startswith("**holds**") for r in only_confirmed)


def test_write_readme_table_replaces_the_markers_once_and_leaves_the_rest(results, confirm, tmp_path):
    readme = tmp_path / "README.md"
    head, tail = "# Project\n\nIntro text.\n\n## The answer\n\n", "\n\n## Where the outputs land\n\nMore text.\n"
    readme.write_text(head + BEGIN + "\nan old table\n" + END + tail)
    report.write_readme_table(results, readme, confirm)
    text = readme.read_text()
    assert text.startswith(head + BEGIN) and text.endswith(END + tail)
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and "an old table" not in text
    between = text[text.index(BEGIN):text.index(END)]
    assert len(table_rows(between)) == 6
    assert f"--readme README.md --confirmatory {confirm}" in between
    assert "default run: no alignment.nc read; held-out run: no alignment.nc read" in between  # both runs' sizes
    assert "[docs/results.md](docs/results.md)" in between
    report.write_readme_table(results, readme, confirm)  # again: the same file, markers still once
    assert readme.read_text() == text


@pytest.mark.parametrize("body", [
    "no markers at all\n",
    f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n",
    f"{END}\n{BEGIN}\n",
])
def test_readme_without_exactly_one_pair_of_markers_is_refused_and_left_alone(results, tmp_path, body):
    readme = tmp_path / "README.md"
    readme.write_text(body)
    with pytest.raises(ValueError, match="results:"):
        report.write_readme_table(results, readme)
    assert readme.read_text() == body


def test_write_page_starts_with_a_heading_and_names_missing_alignment_tables(results, confirm, tmp_path):
    page = tmp_path / "docs" / "results.md"
    report.write_page(results, page, confirm)
    text = page.read_text()
    assert text.startswith("# ")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "- no alignment.nc for task `linear_regression`" in text
    assert "- no alignment.nc for task `mlp_classification`" in text
    assert "- no OOD probes in this run" in text
    assert "**Claim 2 per SNR**" in text and "| `mlp_classification` | cka_linear | hidden | 10 | **holds** |" in text
    assert "--page" in text and f"--confirmatory {confirm}" in text
    assert "## What this says, plainly" in text  # the placeholder reading of a new page


def test_page_with_a_confirmatory_run_shows_its_tables_first_then_the_default_runs(results, confirm):
    frame = summary_frame(("mlp_classification",)).assign(snr=[3.0, 30.0], call="fails", r=1.2, r_low=0.9,
                                                          r_high=1.5, shape_at_threshold="flat")
    frame.to_csv(confirm / "summary.csv", index=False)
    text = report.page(results, confirm)
    held, default = text.index("### The held-out run"), text.index("### The default run")
    assert text.index("**Headline verdicts**") < held < default
    confirm_part, default_part = text[held:default], text[default:]
    assert "| `mlp_classification` | cka_linear | hidden | 30 | **fails** |" in confirm_part
    assert "| 10 | **holds** |" not in confirm_part  # the default run's claim-2 rows stay in its own part
    assert "| `mlp_classification` | cka_linear | hidden | 10 | **holds** |" in default_part
    assert "| 30 | **fails** |" not in default_part
    assert confirm_part.count("**Claim 2 per SNR**") == default_part.count("**Claim 2 per SNR**") == 1


def test_page_without_a_confirmatory_run_has_no_run_headings(results):
    assert "### The held-out run" not in report.page(results) and "### The default run" not in report.page(results)


def test_write_page_keeps_the_reading_after_the_end_marker(results, tmp_path):
    page = tmp_path / "results.md"
    page.write_text(f"# An old title\n\nold intro\n{BEGIN}\nold tables\n{END}\n\n## Our reading\n\nKept as written.\n")
    report.write_page(results, page)
    text = page.read_text()
    assert text.startswith(report.PAGE_TITLE + "\n") and "old intro" not in text and "old tables" not in text
    assert text.endswith(f"{END}\n\n## Our reading\n\nKept as written.\n")


def test_page_without_summary_csv_says_so(results):
    (results / "summary.csv").unlink()
    text = report.page(results)
    assert "- no summary.csv" in text and text.startswith("# ")


def test_section_keeps_its_markers_for_callers_of_the_old_api(results):
    text = report.section(results)
    assert text.startswith(BEGIN) and text.endswith(END) and "**Headline verdicts**" in text


def test_missing_confirmatory_verdicts_is_a_clear_error(results, tmp_path):
    with pytest.raises(FileNotFoundError, match="confirmatory run"):
        report.page(results, tmp_path / "nowhere")


def test_main_writes_page_and_readme(results, confirm, tmp_path, capsys):
    readme, page = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text(f"top\n{BEGIN}\n{END}\nbottom\n")
    report.main([str(results), "--page", str(page), "--readme", str(readme), "--confirmatory", str(confirm)])
    assert page.read_text().startswith("# ") and readme.read_text().startswith(f"top\n{BEGIN}\n*Generated")
    assert readme.read_text().endswith(f"{END}\nbottom\n")
    report.main([str(results)])
    assert capsys.readouterr().out.startswith(BEGIN)


# --- the documentation -------------------------------------------------------------------------------

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def without_fences(text):
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def without_code(text):
    """Markdown text with fenced code blocks and inline code spans blanked out."""
    return re.sub(r"`[^`\n]*`", "", without_fences(text))


def anchors(path):
    """GitHub's heading anchors of a Markdown file (code spans keep their text, without the backticks)."""
    out = set()
    for line in without_fences(path.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            heading = re.sub(r"[`*_]", "", match.group(1)).strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", heading)))
    return out


def relative_links(path):
    for target in LINK.findall(without_code(path.read_text())):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            yield target


def test_docs_links_exist():
    assert (REPO / "docs").is_dir() and len(DOCS) > 1
    broken = []
    for doc in DOCS:
        for target in relative_links(doc):
            file, _, anchor = target.partition("#")
            dest = (doc.parent / file).resolve() if file else doc
            if not dest.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{doc.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_link_checker_finds_links_and_headings():
    text = "see [a](docs/a.md), [b](b.md#some-part) and `[not](code.md)` and ![img](pic.png) [web](https://x.org)"
    assert LINK.findall(without_code(text)) == ["docs/a.md", "b.md#some-part", "https://x.org"]
    assert "using-alignlib-on-its-own" in anchors(REPO / "README.md")


def test_readme_is_short():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines (limit 220): move detail to docs/"


def test_readme_has_one_generated_results_table():
    text = (REPO / "README.md").read_text()
    head, between, tail = report._split_markers(text, "README.md")
    assert len(table_rows(between)) >= 1 and "## The answer" in head


def test_readme_test_command_is_the_one_ci_runs():
    readme = (REPO / "README.md").read_text()
    test_block = re.search(r"^## Test\n+```bash\n(.*?)```", readme, flags=re.M | re.S)
    assert test_block, "README.md needs a '## Test' section with a bash block"
    command = test_block.group(1).strip()
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.strip().startswith("#")]
    assert ci[-1] == command
    install = re.search(r"^## Install and run\n.*?```bash\n(.*?)```", readme, flags=re.M | re.S).group(1)
    assert "pip install torch==2.13.0" in install and 'pip install -e ".[test]"' in install
