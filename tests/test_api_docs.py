"""The user documentation (issue 19, item 5): the API reference builds from the docstrings with the
command the docs give (pdoc; any warning -- an import error, an annotation that does not resolve --
fails), the examples of docs/library.md run, its table of invariances is the registry's, and the
README points to both."""

from __future__ import annotations

import pkgutil
import re
import shlex
import warnings
from pathlib import Path

import pytest

import alignlib
from alignlib.metrics import METRICS

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "docs" / "library.md"
README = REPO / "README.md"

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def pdoc_command(text: str) -> list[str]:
    """The module specs of the first ``python -m pdoc MODULES -o docs/api`` line in ``text``."""
    match = re.search(r"python -m pdoc ([^\n`#]*?)-o docs/api", text)
    assert match, "no 'python -m pdoc ... -o docs/api' command"
    return shlex.split(match.group(1))


def build(specs, out: Path) -> list[str]:
    """Render ``specs`` with pdoc into ``out``; the warnings pdoc gave (import errors, bad docstrings)."""
    try:
        import pdoc
    except ImportError:
        pytest.fail('pdoc is not installed: it is in the test extra (pip install -e ".[test]")')
    failed = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pdoc.pdoc(*specs, output_directory=out)
        except Exception as err:  # noqa: BLE001 - pdoc raises RuntimeError for a module that fails to import
            failed.append(f"{type(err).__name__}: {err} ({err.__cause__!r})")
    pdoc_dir = str(Path(pdoc.__file__).parent)
    return failed + [f"{w.category.__name__}: {w.message}" for w in caught if w.filename.startswith(pdoc_dir)]


def rendered(out: Path) -> set[str]:
    return {p.relative_to(out).with_suffix("").as_posix().replace("/", ".") for p in out.rglob("*.html")} - {"index"}


def public_modules() -> set[str]:
    """Every module of alignlib whose dotted name has no part starting with an underscore."""
    names = {"alignlib"} | {m.name for m in pkgutil.walk_packages(alignlib.__path__, "alignlib.")}
    return {n for n in names if not any(part.startswith("_") for part in n.split("."))}


def test_the_documented_pdoc_command_builds_the_reference_without_warnings(tmp_path):
    specs = pdoc_command(LIBRARY.read_text())
    assert specs == pdoc_command(README.read_text()), "README.md and docs/library.md give different commands"
    problems = build(specs, tmp_path / "api")
    assert not problems, "\n".join(problems)
    pages = rendered(tmp_path / "api")
    assert {"alignlib", "alignlib.metrics", "alignlib.stats", "alignlib.theory", "alignlib.ensembles",
            "alignlib.claims"} <= pages
    top = (tmp_path / "api" / "alignlib.html").read_text()
    assert all(f'id="{name}"' in top for name in ("compare", "pairwise", "metric_names", "describe"))
    # the modules the reference leaves out (behind a package's __all__) must build too
    rest = sorted(public_modules() - pages)
    problems = build(rest, tmp_path / "rest")
    assert not problems, "\n".join(problems)


def test_the_docs_check_catches_a_broken_docstring_and_an_import_error(tmp_path, monkeypatch):
    for name, source in {"brokenannotation": 'def f(x) -> "nonexistent.Type":\n    """Doc."""\n',
                         "brokenimport": "import no_such_module_anywhere\n"}.items():
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text('"""A package."""\n')
        (package / "module.py").write_text('"""A module."""\n' + source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "nonexistent" in "\n".join(build(["brokenannotation"], tmp_path / "out1"))
    assert "no_such_module_anywhere" in "\n".join(build(["brokenimport"], tmp_path / "out2"))


def test_compare_and_pairwise_docstrings_list_every_metric():
    for function in (alignlib.compare, alignlib.pairwise):
        assert all(f"``{name}``" in function.__doc__ for name in METRICS), function.__name__


# --- docs/library.md ---------------------------------------------------------------------------------

MARKS = {"✓": "separate", "both": "joint", "·": "none"}
COLUMNS = {"T": "translation", "S": "isotropic_scaling", "O": "orthogonal", "L": "invertible_linear",
           "P": "permutation"}


def metric_table(text: str) -> dict[str, dict[str, str]]:
    section = text.split("## Choosing a metric", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    table = {}
    for line in rows[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        table[cells["metric"].strip("`")] = cells
    return table


def test_the_metric_table_is_the_registry():
    table = metric_table(LIBRARY.read_text())
    assert list(table) == list(METRICS), "one row per metric, in registry order"
    for name, cells in table.items():
        info = METRICS[name]
        for column, transformation in COLUMNS.items():
            expected = ("joint" if transformation in info.joint_invariances else
                        "separate" if transformation in info.invariances else "none")
            assert MARKS[cells[column]] == expected, f"{name}, column {column}: {cells[column]!r}, registry: {expected}"
        assert cells["cost"] and cells["informative when"] and cells["sensitive to"], name


def test_the_library_examples_run():
    blocks = re.findall(r"^```python\n(.*?)^```", LIBRARY.read_text(), flags=re.M | re.S)
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/library.md, python block {i + 1}", "exec"), {"__name__": "library_md"})


def test_library_notes_are_folded_in_and_the_readme_links_the_guide_and_the_reference():
    assert not (REPO / "docs" / "library_notes.md").exists()
    readme = README.read_text()
    section = readme.split("## Using `alignlib` on its own", 1)[1].split("\n## ", 1)[0]
    assert "(docs/library.md)" in section and "python -m pdoc" in section
    assert "docs/library.md" in readme.split("## Documentation", 1)[1]
    assert "docs/api/" in (REPO / ".gitignore").read_text().splitlines()
