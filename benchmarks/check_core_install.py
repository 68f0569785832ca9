"""Check a core install of alignlib (no extras): run by hand in a fresh environment (issue 19, item 4).

    python -m venv /tmp/venv19
    /tmp/venv19/bin/pip install torch==2.13.0
    /tmp/venv19/bin/pip install -e .          # no extras: numpy, scipy, torch only
    cd /tmp && /tmp/venv19/bin/python /path/to/alignlib/benchmarks/check_core_install.py

(Run it from outside the repository, so that the installed package is the one imported.) It
prints which of the extras' packages are present (none should be), then imports alignlib and runs
``compare`` and ``pairwise`` for every metric but ``soft_matching``, checks that ``soft_matching``
raises an ImportError naming the ``soft-matching`` extra and that the modules that need the
``pipeline`` extra name it, and exits non-zero on any failure. CI installs the extras, so this
check is not part of the test suite.
"""

from __future__ import annotations

import importlib.util
import sys
import time

EXTRA_PACKAGES = ("ot", "xarray", "netCDF4", "pandas", "matplotlib", "sklearn", "threadpoolctl", "snakemake",
                  "yaml", "jsonschema")


def main() -> int:
    present = [name for name in EXTRA_PACKAGES if importlib.util.find_spec(name) is not None]
    print(f"python {sys.version.split()[0]} at {sys.executable}")
    print(f"extras' packages installed: {present or 'none'}")

    t = time.perf_counter()
    import alignlib
    print(f"import alignlib: {time.perf_counter() - t:.3f} s, version {alignlib.__version__}, from {alignlib.__file__}")
    import numpy as np
    import torch
    t = time.perf_counter()
    import alignlib.metrics  # noqa: F401
    import alignlib.stats  # noqa: F401
    print(f"import alignlib.metrics, alignlib.stats after torch {torch.__version__}: {time.perf_counter() - t:.3f} s")

    from alignlib.metrics.names import END_TO_END_METRICS

    rng = np.random.default_rng(0)
    shared = rng.standard_normal((60, 8))
    reps = [shared @ rng.standard_normal((8, d)) + 0.5 * rng.standard_normal((60, d)) for d in (8, 10, 12)]
    maps = rng.standard_normal((3, 6, 4))
    failures = []
    for metric in alignlib.metric_names():
        x = maps if metric in END_TO_END_METRICS else reps
        if metric == "soft_matching":
            try:
                alignlib.compare(x[0], x[1], metric)
            except ImportError as err:
                ok = 'pip install "alignlib[soft-matching]"' in str(err)
                print(f"  {metric:22s} ImportError ({'names the extra' if ok else 'DOES NOT name the extra'}): {err}")
                if not ok:
                    failures.append(metric)
            else:
                print(f"  {metric:22s} ran (POT is installed)")
            continue
        try:
            value = alignlib.compare(x[0], x[1], metric)
            matrix = alignlib.pairwise(x, metric)
            assert matrix.shape == (3, 3) and abs(matrix[0, 1] - value) < 1e-9 * max(1.0, abs(value))
            print(f"  {metric:22s} compare {value:+.4f}   pairwise {matrix.shape} ok")
        except Exception as err:  # noqa: BLE001 - report every metric
            failures.append(metric)
            print(f"  {metric:22s} FAILED: {type(err).__name__}: {err}")

    ci = alignlib.stats.bootstrap_members(alignlib.pairwise(reps, "cka_linear"), seed=0)
    probe = alignlib.stats.bootstrap_probes_pair(reps[0], reps[1], "cka_linear", n_boot=50, seed=0)
    print(f"stats: bootstrap_members {ci!r}\n       bootstrap_probes_pair {probe!r}")
    print(alignlib.describe("procrustes").splitlines()[0])
    import alignlib.theory  # noqa: F401  (core: numpy and scipy.special; threadpoolctl only speeds it up)
    hard = alignlib.compare(reps[0], reps[0] @ np.eye(8)[rng.permutation(8)], "soft_matching", hard=True)
    print(f"alignlib.theory imported; soft_matching hard=True (SciPy only) on permuted units: {hard:.6f}")

    for module in ("alignlib.claims", "alignlib.ensembles.data", "alignlib.stats.threshold"):
        try:
            importlib.import_module(module)
            print(f"  {module}: imported (the pipeline extra is installed)")
        except ImportError as err:
            ok = 'pip install "alignlib[pipeline]"' in str(err)
            print(f"  {module}: ImportError ({'names the extra' if ok else 'DOES NOT name the extra'}): {err}")
            if not ok:
                failures.append(module)
    print("FAILED: " + ", ".join(failures) if failures else "core install: OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
