"""Packaging (issue 19, item 4): core dependencies numpy, scipy and torch; the extras' packages
imported only where needed, with an ImportError naming the extra; what ``import alignlib``
exposes; one version; py.typed shipped."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import alignlib
from alignlib.metrics import METRICS, describe, metric_names
from alignlib.metrics.names import METRIC_LABELS

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

#: Every package of an extra (import names), blocked in the subprocess below.
EXTRA_MODULES = ("ot", "xarray", "netCDF4", "pandas", "matplotlib", "sklearn", "threadpoolctl", "snakemake",
                 "yaml", "jsonschema")


def requirement_name(req: str) -> str:
    for sep in "<>=!~[; ":
        req = req.split(sep)[0]
    return req.lower()


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_core_dependencies_are_numpy_scipy_torch_and_the_extras_hold_the_rest():
    project = PYPROJECT["project"]
    assert sorted(map(requirement_name, project["dependencies"])) == ["numpy", "scipy", "torch"]
    extras = project["optional-dependencies"]
    assert list(map(requirement_name, extras["soft-matching"])) == ["pot"]
    assert {"xarray", "netcdf4", "matplotlib", "pandas", "scikit-learn", "threadpoolctl", "snakemake",
            "snakemake-executor-plugin-slurm", "pyyaml", "jsonschema"} == set(map(requirement_name, extras["pipeline"]))
    assert {"alignlib", "pytest", "hypothesis", "pdoc"} <= set(map(requirement_name, extras["test"]))
    assert "alignlib[pipeline,soft-matching]" in extras["test"]
    assert "torch>=2.3" in project["dependencies"]          # never a pinned torch: CI installs its own first


def test_one_version_written_in_alignlib_init():
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "alignlib.__version__"}
    assert alignlib.__version__ == "0.2.0"
    assert f"## {alignlib.__version__}" in (REPO / "CHANGELOG.md").read_text()


def test_license_py_typed_and_urls_ship():
    assert (REPO / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert "the alignlib authors" in (REPO / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == "BSD-3-Clause"
    assert (REPO / "alignlib" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["alignlib"]
    assert {"Homepage", "Documentation", "Source", "Changelog"} <= set(PYPROJECT["project"]["urls"])


def test_import_alignlib_exposes_the_entry_points_without_loading_torch():
    out = run_python("import sys, alignlib; print('torch' in sys.modules, alignlib.__version__); "
                     "print(sorted(n for n in ('compare', 'pairwise', 'metric_names', 'describe', 'METRICS') "
                     "if n in dir(alignlib)))")
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == f"False {alignlib.__version__}"
    assert second == "['METRICS', 'compare', 'describe', 'metric_names', 'pairwise']"
    from alignlib.metrics import compare, pairwise
    assert (alignlib.compare, alignlib.pairwise, alignlib.metric_names, alignlib.describe, alignlib.METRICS) == \
        (compare, pairwise, metric_names, describe, METRICS)
    assert alignlib.stats.bootstrap_members is not None
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        alignlib.nonsense  # noqa: B018


def test_without_any_extra_the_metrics_stats_and_theory_work_and_the_rest_names_its_extra():
    blocked = ", ".join(repr(m) for m in EXTRA_MODULES)
    code = f"""
import sys
for name in ({blocked}):
    sys.modules[name] = None                   # import name -> ImportError, as if not installed
import numpy as np
import torch
import alignlib, alignlib.metrics, alignlib.stats, alignlib.theory
torch.set_num_threads(1)
from alignlib.metrics.names import END_TO_END_METRICS
rng = np.random.default_rng(0)
reps = rng.standard_normal((3, 40, 6))
maps = rng.standard_normal((3, 5, 4))
for m in alignlib.metric_names():
    x = maps if m in END_TO_END_METRICS else reps
    if m == "soft_matching":
        try:
            alignlib.compare(x[0], x[1], m)
        except ImportError as err:
            print("soft_matching:", err)
        continue
    options = {{"ridge": 1e-3}} if m == "linear_predictivity" else {{}}   # the default inner CV is slow
    alignlib.compare(x[0], x[1], m, **options); alignlib.pairwise(x, m, **options)
print("metrics ok")
alignlib.stats.bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=5, seed=0)
for module in ("alignlib.claims", "alignlib.ensembles.builder", "alignlib.stats.threshold"):
    try:
        __import__(module)
    except ImportError as err:
        print(module + ":", err)
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert 'pip install "alignlib[soft-matching]"' in lines[0] and lines[0].startswith("soft_matching:")
    assert lines[1] == "metrics ok"
    assert [line.split(":")[0] for line in lines[2:]] == ["alignlib.claims", "alignlib.ensembles.builder",
                                                          "alignlib.stats.threshold"]
    assert all('pip install "alignlib[pipeline]"' in line for line in lines[2:])


@pytest.mark.parametrize("metric", list(METRICS))
def test_describe_summarises_the_registry_entry(metric):
    info = METRICS[metric]
    text = describe(metric)
    assert text == alignlib.describe(info) and text.startswith(f"{metric}: {METRIC_LABELS[metric]}\n")
    flat = " ".join(text.split())
    for label in ("range", "symmetric", "input", "invariant to", "not invariant", "options", "distance",
                  "held-out form", "reference"):
        assert f"\n  {label}" in text, label
    words = {"translation": "translation", "isotropic_scaling": "isotropic scaling",
             "permutation": "unit permutations", "orthogonal": "orthogonal maps",
             "invertible_linear": "invertible linear maps"}
    invariant = " ".join(text.split("\n  invariant to")[1].split("\n  not invariant")[0].split())
    assert all((words[t] in invariant) == (t in info.invariances) for t in words)
    assert " ".join(info.preconditions.split()) in flat
    assert all(f"{k}={v!r}" in flat for k, v in info.options.items())
    with pytest.raises(ValueError, match="unknown metric"):
        describe("cka")
