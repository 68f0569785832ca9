"""Nothing silently wrong: stale cubes, divergent training, corrupt files, late errors (issue 10).

Unit tests of the pieces first, then the scenarios through the real snakemake on a lean
version of the tiny config (one linear task): each asserts the one-line console message
and that no wrong number is written.
"""
import copy
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
import yaml

from alignpipe import cubes as cubes_module
from alignlib.ensembles.alignment import compute_alignment
from alignpipe.config import BUNDLED_SIZES, ConfigError, check_config, check_finite, check_yaml_file
from alignpipe.config import main as config_main
from alignpipe.cubes import (
    CorruptFileError,
    CubeMismatchError,
    NoSpaceError,
    open_activations,
    read_netcdf,
    undeclared_cubes,
    write_netcdf,
)
from alignlib.ensembles.divergence import TrainingDiverged, check_divergence, exclusion_note, require_finite_alignment
from alignlib.ensembles.networks import Architecture, init_member, stack_members
from alignpipe.runlog import log_to
from alignlib.ensembles.training import train_ensemble
from conftest import REPO, run_snakemake, validated

TASK = "linear_regression"


# ---------------------------------------------------------------- cubes and NetCDF files

def fake_cube(ns, snrs=(1.0, 10.0), seeds=3, probes=12, width=4, seed=0, diverged=None):
    """A small activation cube with random activations (one hidden layer and a 1-unit output)."""
    rng = np.random.default_rng(seed)
    shape = (len(snrs), len(ns), seeds, 2, probes, width)
    acts = rng.standard_normal(shape).astype(np.float32)
    acts[:, :, :, 1, :, 1:] = np.nan  # the output layer has one real unit
    ds = xr.Dataset(
        {"activation": (("snr", "n", "seed", "layer", "probe", "unit"), acts),
         "layer_width": (("layer",), np.array([width, 1]))},
        coords={"snr": list(snrs), "n": list(ns), "seed": np.arange(seeds), "layer": ["hidden", "output"]},
        attrs={"task": "fake"},
    )
    grid = (len(snrs), len(ns), seeds)
    for name in ("train_error", "test_error"):
        ds[name] = (("snr", "n", "seed"), rng.random(grid))
    ds["steps"] = (("snr", "n", "seed"), np.full(grid, 10))
    ds["converged"] = (("snr", "n", "seed"), np.ones(grid, np.int8))
    ds["diverged"] = (("snr", "n", "seed"), np.zeros(grid, np.int8) if diverged is None else diverged)
    return ds


def test_open_activations_reads_only_the_given_files_and_checks_their_n(tmp_path):
    folder = tmp_path / "activations"
    for ns in ([4, 7], [7], [10]):
        write_netcdf(fake_cube(ns), folder / f"n{'-'.join(map(str, ns))}.nc")
    a, b, c = folder / "n4-7.nc", folder / "n7.nc", folder / "n10.nc"
    cube = open_activations([c, a], expected_n=[4, 7, 10])
    assert cube["n"].values.tolist() == [4, 7, 10]
    assert undeclared_cubes([a, c]) == [b]  # the leftover is listed (for the log), never read

    with pytest.raises(CubeMismatchError) as error:  # the same n twice: never merged
        open_activations([a, b])
    assert "n = 7 is in 2 cubes" in str(error.value) and f"rm {a} {b}" in str(error.value)

    with pytest.raises(CubeMismatchError) as error:  # an n the config does not have
        open_activations([a, c], expected_n=[4, 7], key="tasks.lin.n")
    assert "n = [10] not in tasks.lin.n = [4, 7]" in str(error.value) and f"rm {c}" in str(error.value)

    with pytest.raises(CubeMismatchError, match=r"no cube holds n = \[10\]"):
        open_activations([a], expected_n=[4, 7, 10])


def test_corrupt_or_truncated_file_names_itself_and_the_command_that_rebuilds_it(tmp_path):
    """--forcerun <that file>: deleting it rebuilds nothing once the final outputs exist, and
    --forcerun <rule> reruns that rule's jobs in every task (tests/test_workflow_repair.py)."""
    cube = tmp_path / "activations" / "n4.nc"
    model = tmp_path / "my models" / "n4.nc"
    write_netcdf(fake_cube([4]), cube)
    write_netcdf(fake_cube([4]), model)
    cube.write_bytes(os.urandom(cube.stat().st_size))
    with pytest.raises(CorruptFileError) as error:
        read_netcdf(cube)
    assert str(error.value) == (f"cannot read {cube}: corrupt or truncated; rebuild it and what depends on it "
                                f"with `snakemake --cores all --forcerun {cube}` (plus this run's --configfile, "
                                "if any)")
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(CorruptFileError) as error:
        read_netcdf(model)
    assert f"`snakemake --cores all --forcerun '{model}'`" in str(error.value)  # quoted for the shell
    with pytest.raises(FileNotFoundError):  # missing is not corrupt
        read_netcdf(tmp_path / "data" / "data.nc")


def test_failed_write_on_a_full_disk_says_so(tmp_path, monkeypatch):
    ds = xr.Dataset({"x": ("a", np.arange(1000.0))})

    def hdf_error(self, path, *args, **kwargs):
        open(path, "wb").write(b"partial")
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", hdf_error)
    monkeypatch.setattr(cubes_module.shutil, "disk_usage", lambda folder: SimpleNamespace(free=0))
    with pytest.raises(NoSpaceError, match=f"no space left on {tmp_path}.*RuntimeError: NetCDF: HDF error"):
        write_netcdf(ds, tmp_path / "out.nc")
    assert os.listdir(tmp_path) == []
    # with plenty of space the original error stays what it is
    monkeypatch.setattr(cubes_module.shutil, "disk_usage", lambda folder: SimpleNamespace(free=2**40))
    with pytest.raises(RuntimeError, match="HDF error"):
        write_netcdf(ds, tmp_path / "out.nc")


def test_write_to_a_really_full_filesystem(tmp_path):
    """A 64 KiB tmpfs (needs root and mount; skipped elsewhere)."""
    folder = tmp_path / "full"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        ds = xr.Dataset({"x": ("a", np.random.default_rng(0).standard_normal(200_000))})
        with pytest.raises(NoSpaceError, match=f"no space left on {folder}"):
            write_netcdf(ds, folder / "big.nc")
        assert os.listdir(folder) == []
    finally:  # lazy: HDF5 keeps the failed file open (deleted) until the process exits
        subprocess.run(["umount", "-l", str(folder)], check=False)


# ---------------------------------------------------------------- the console line

def test_log_to_prints_one_console_line_and_keeps_the_traceback_in_the_log(tmp_path, capsys):
    log = tmp_path / "logs" / "align.log"
    job = SimpleNamespace(rule="align", wildcards={"task": "lin"})
    with pytest.raises(ValueError):
        with log_to(log, job=job):
            print("working")
            raise ValueError("first line\nsecond line")
    err = capsys.readouterr().err
    assert err.strip() == f"align task=lin: ValueError: first line second line (full traceback in {log})"
    text = log.read_text()
    assert "working" in text and "Traceback (most recent call last)" in text


# ---------------------------------------------------------------- divergence

def tiny_ensemble(members=3):
    arch = Architecture(widths=(5, 8, 1), activation="relu", bias=True)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((30, 5)))
    y = torch.as_tensor(rng.standard_normal((members, 30, 1)))
    params = stack_members([init_member(arch, 1.0, np.random.default_rng(k)) for k in range(members)],
                           torch.float64, "cpu")
    return arch, params, x, y


@pytest.mark.parametrize("optimizer,lr,expected", [("adam", 1e-2, False), ("adam", 1e3, True), ("gd", 1e6, True)])
def test_divergence_is_detected(optimizer, lr, expected, single_torch_thread):
    """adam at lr 1e3: finite weights ~1e4 but a loss 1e5 times the initial one; gd at 1e6: NaN."""
    arch, params, x, y = tiny_ensemble()
    result = train_ensemble(arch, params, x, y, optimizer=optimizer, lr=lr, max_steps=200, tol=1e-12)
    assert result.diverged.tolist() == [expected] * 3
    if optimizer == "adam" and expected:
        assert np.isfinite(result.final_loss).all() and (result.final_loss > 100 * result.initial_loss).all()


def test_tiny_config_tasks_do_not_diverge(tiny_config, single_torch_thread):
    from alignlib.ensembles.data import make_task_data
    from alignlib.ensembles.builder import train_grid_n

    for task, n in (("linear_regression", 10), ("digits_tiny", 150)):
        cfg = tiny_config["tasks"][task]
        models = train_grid_n(task, cfg, make_task_data(task, cfg), n, "cpu", log=open(os.devnull, "w"))
        assert not models["diverged"].any(), task


def test_divergence_policy_and_alignment_exclusion():
    flags = np.zeros((2, 2, 3), np.int8)
    flags[0, 1, 2] = 1  # snr 1, n 7, seed 2
    flags[1, 0, :] = 1  # snr 10, n 4: every member
    cube = fake_cube([4, 7], diverged=flags)
    cfg = {"training": {"optimizer": "adam", "lr": 1000.0}}
    models = cube[["diverged"]].transpose("n", "snr", "seed")
    with pytest.raises(TrainingDiverged) as error:
        check_divergence(models, "lin", cfg)
    message = str(error.value)
    assert message.startswith("4 of 12 members of task lin diverged")
    assert "n=7 snr=1 seed=2" in message and "lr 1000" in message and "on_divergence: exclude" in message
    assert "excluded" in check_divergence(models, "lin", cfg, "exclude")
    assert check_divergence(fake_cube([4])[["diverged"]], "lin", cfg) is None

    table = compute_alignment(cube, ["cka_linear"])
    clean = compute_alignment(cube.drop_vars("diverged"), ["cka_linear"])
    values, reference = (t["alignment"].sel(metric="cka_linear", layer="hidden") for t in (table, clean))
    assert np.isnan(values.sel(snr=10.0, n=4)).all()
    pairs = list(zip(table["seed_a"].values, table["seed_b"].values))
    for p, (a, b) in enumerate(pairs):  # at (snr 1, n 7) only the pairs with seed 2 are NaN
        got, want = float(values.sel(snr=1.0, n=7)[p]), float(reference.sel(snr=1.0, n=7)[p])
        assert np.isnan(got) if 2 in (a, b) else got == pytest.approx(want, abs=1e-12)
    xr.testing.assert_allclose(values.sel(snr=1.0, n=4), reference.sel(snr=1.0, n=4))
    assert table["diverged"].sum() == 4
    assert exclusion_note(table).startswith("4 of 12 members diverged during training and are excluded")
    require_finite_alignment(table, "lin")

    everyone = compute_alignment(fake_cube([4], diverged=np.ones((2, 1, 3), np.int8)), ["cka_linear"])
    with pytest.raises(ValueError, match="no finite alignment value for task lin: 6 of its 6 members diverged"):
        require_finite_alignment(everyone, "lin")


# ---------------------------------------------------------------- checks before any job

def test_bundled_data_set_sizes_match_scikit_learn():
    from sklearn.datasets import load_diabetes, load_digits

    assert BUNDLED_SIZES == {"digits": len(load_digits().data), "diabetes": len(load_diabetes().data)}


def real_data_config(**changes):
    task = {"snr": [1], "n": [20], "seeds": 2, "probes": 10, "test_size": 20,
            "dataset": {"kind": "digits"}, "noise": {"kind": "label_flip"}, "network": {"kind": "mlp", "hidden": [4]}}
    for key, value in changes.items():
        task[key] = value
    return validated({"tasks": {"d": task}})


def test_data_set_size_checks_name_every_key(tmp_path):
    with pytest.raises(ConfigError, match=r"'tasks.d.n', 'tasks.d.probes', 'tasks.d.test_size': max\(n\) \(1780\) "
                                          r"\+ probes \(10\) \+ test_size \(20\) = 1810 exceed the 1797 samples"):
        check_config(real_data_config(n=[20, 1780]))
    with pytest.raises(ConfigError, match=r"'tasks.d.probes', 'tasks.d.test_size', 'tasks.d.dataset.pool'"):
        check_config(real_data_config(dataset={"kind": "digits", "pool": 1780}))
    with pytest.raises(ConfigError, match=r"'tasks.d.n', 'tasks.d.dataset.pool': max\(n\) \(20\) exceeds"):
        check_config(real_data_config(dataset={"kind": "digits", "pool": 15}))
    check_config(real_data_config(n=[20, 1767]))  # exactly fits

    from test_image_files import make_mnist  # 60 training and 40 test images

    make_mnist(tmp_path)
    mnist = {"kind": "mnist", "path": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"probes \(30\) \+ test_size \(20\) = 50 exceed the 40 test images"):
        check_config(real_data_config(dataset=mnist, probes=30))
    with pytest.raises(ConfigError, match=r"max\(n\) \(61\) exceeds the training pool \(60 of the 60"):
        check_config(real_data_config(dataset=mnist, n=[61]))
    check_config(real_data_config(dataset=mnist, n=[60]))
    check_config(real_data_config(dataset=mnist, n=[61]), check_files=False)  # cluster jobs do not re-read


def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "my.yaml"
    path.write_text("tasks:\n  lin:\n    snr: [1, 2\n    n: [3]\n")
    with pytest.raises(ConfigError, match=rf"cannot parse config file {path}, line 4, column 6: .*started at line 3"):
        check_yaml_file(path)
    # `--configfile` files are parsed by Snakemake before the Snakefile runs: this names the line
    assert config_main([str(path)]) == 1
    assert f"cannot parse config file {path}, line 4" in capsys.readouterr().err


def test_a_key_given_twice_names_file_and_both_lines(tmp_path):
    """YAML would keep only the last value of a repeated key, silently."""
    path = tmp_path / "my.yaml"
    path.write_text("tasks:\n  lin:\n    snr: [1, 2]\n    n: [3]\n    snr: [4]\n")
    with pytest.raises(ConfigError, match=rf"cannot parse config file {path}, line 5, column 5: duplicate key 'snr' "
                                          r"\(first at line 3; YAML would keep only the last value\)"):
        check_yaml_file(path)
    path.write_text("base: &base {lr: 1, tol: 2}\ntraining:\n  <<: *base\n  lr: 3\n")  # overriding a merge: fine
    check_yaml_file(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_anywhere_naming_the_key(value):
    """A schema bound lets NaN through (nan > 0 is never false); the config's numbers must be finite."""
    check_finite({"a": [1.0, 2, True, "nan"], "b": {"c": None, "d": 1e308}})
    for config, key in (({"tasks": {"lin": {"snr": [1.0, value]}}}, "tasks.lin.snr[1]"),
                        ({"job_seconds": value}, "job_seconds"),
                        ({"tasks": {"lin": {"training": {"lr": value}}}}, "tasks.lin.training.lr"),
                        ({"checkpoints": {"at": [0, 1, value]}}, "checkpoints.at[2]")):
        with pytest.raises(ConfigError) as error:
            check_finite(config)
        assert str(error.value) == f"invalid config key '{key}': {value} is not a finite number"


def test_config_check_cli_refuses_yaml_nan(tmp_path, capsys):
    path = tmp_path / "my.yaml"
    path.write_text((REPO / "tests" / "configs" / "tiny.yaml").read_text().replace("snr: [0.3, 3, 30]",
                                                                                  "snr: [0.3, .nan, 30]"))
    assert config_main([str(path)]) == 1
    assert "invalid config key 'tasks.linear_regression.snr[1]': nan is not a finite number" in capsys.readouterr().err


# ---------------------------------------------------------------- through the real snakemake

def lean_config(tiny_config, **top):
    """The tiny config's linear task on a smaller grid (one task, 2 SNR x 3 n x 3 seeds)."""
    config = copy.deepcopy(tiny_config)
    task = config["tasks"][TASK]
    task.update(snr=[0.3, 30.0], n=[4, 7, 10], probes=32, test_size=50)
    config["tasks"] = {TASK: task}
    config.update(top)
    return config


def console(proc) -> str:
    return proc.stdout + proc.stderr


def table_path(workdir):
    return workdir / "results" / TASK / "alignment.nc"


def numbers(path):
    table = read_netcdf(path)
    return table[["alignment", "train_error", "test_error", "diverged"]]


@pytest.fixture(scope="module")
def grid_changes(tmp_path_factory, tiny_config):
    """One results folder, changed in place: n_per_job 2 -> 3 (full run), then n shrunk to [4, 7]."""
    workdir = tmp_path_factory.mktemp("in_place")
    config = lean_config(tiny_config, n_per_job=2)
    run_snakemake(workdir, config, str(table_path(workdir)))
    first = numbers(table_path(workdir))
    regrouped = run_snakemake(workdir, dict(config, n_per_job=3))  # every target: figures, summary, verdicts
    after_regroup = numbers(table_path(workdir))
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    shrunk_config = copy.deepcopy(config)
    shrunk_config["n_per_job"] = 3
    shrunk_config["tasks"][TASK]["n"] = [4, 7]
    run_snakemake(workdir, shrunk_config, str(table_path(workdir)))
    return SimpleNamespace(workdir=workdir, config=shrunk_config, first=first, regrouped=regrouped,
                           after_regroup=after_regroup, summary=summary, shrunk=numbers(table_path(workdir)))


@pytest.mark.workflow
def test_changing_n_per_job_in_place_reproduces_the_results(grid_changes):
    assert grid_changes.after_regroup["n"].values.tolist() == [4, 7, 10]
    xr.testing.assert_allclose(grid_changes.after_regroup, grid_changes.first, rtol=0, atol=1e-9)
    assert not grid_changes.first["diverged"].any()
    numeric_n = {int(n) for n in grid_changes.summary["n"].dropna().astype(str) if n.isdigit()}  # pandas 3: NaN stays
    assert numeric_n <= {4, 7, 10}
    # alignment.nc is a target of rule all, so a missing one is rebuilt (never "Nothing to be done")
    out = console(grid_changes.regrouped)
    all_inputs = out[out.index("localrule all:"):].split("\n")[1]
    assert str(table_path(grid_changes.workdir)) in all_inputs


@pytest.mark.workflow
def test_shrinking_the_grid_in_place_drops_the_old_n(grid_changes):
    shrunk = grid_changes.shrunk
    assert shrunk["n"].values.tolist() == [4, 7]
    xr.testing.assert_allclose(shrunk, grid_changes.first.sel(n=[4, 7]), rtol=0, atol=1e-9)
    log = (grid_changes.workdir / "results" / TASK / "logs" / "align.log").read_text()
    assert "not read (not in the current grid)" in log  # the old grid's cubes are still there, unread


@pytest.mark.workflow
def test_corrupt_cube_is_named_then_rebuilt(grid_changes):
    workdir, config = grid_changes.workdir, grid_changes.config
    cubes = (workdir / "results" / TASK / "activations").glob("n*.nc")
    cube = max(cubes, key=lambda path: path.stat().st_mtime)  # one the current grid's align reads
    cube.write_bytes(os.urandom(cube.stat().st_size))
    proc = run_snakemake(workdir, config, str(table_path(workdir)), check=False)
    assert proc.returncode != 0
    log = workdir / "results" / TASK / "logs" / "align.log"
    assert (f"align task={TASK}: CorruptFileError: cannot read {cube}: corrupt or truncated; rebuild it and what "
            f"depends on it with `snakemake --cores all --forcerun {cube}` (plus this run's --configfile, if any) "
            f"(full traceback in {log})") in console(proc)
    assert "Traceback" not in console(proc)  # the traceback stays in the log
    assert not table_path(workdir).exists()
    run_snakemake(workdir, config, str(table_path(workdir)), f"--forcerun={cube}")  # as the message says
    xr.testing.assert_allclose(numbers(table_path(workdir)), grid_changes.shrunk, rtol=0, atol=1e-9)


def divergent(tiny_config, lr, **top):
    config = lean_config(tiny_config, n_per_job=3, **top)
    config["tasks"][TASK]["training"].update(optimizer="gd", lr=lr, max_steps=300)
    return config


@pytest.mark.workflow
def test_divergent_learning_rate_fails_naming_the_members(tmp_path, tiny_config):
    config = divergent(tiny_config, 1e6)
    config["tasks"][TASK]["n"] = [4]
    proc = run_snakemake(tmp_path, config, str(table_path(tmp_path)), check=False)
    assert proc.returncode != 0
    log = tmp_path / "results" / TASK / "logs" / "train_n4.log"
    line = next(line for line in console(proc).splitlines() if line.startswith(f"train task={TASK} ns=4: "))
    assert line.startswith(f"train task={TASK} ns=4: TrainingDiverged: 6 of 6 members of task {TASK} diverged")
    assert "n=4 snr=0.3 seed=0" in line and "optimizer gd, lr 1e+06" in line and "on_divergence: exclude" in line
    assert line.endswith(f"(full traceback in {log})")
    assert "DIVERGED: snr=0.3 seed=0 (gd, lr=1e+06)" in log.read_text()
    assert not (tmp_path / "results" / TASK / "models" / "n4.nc").exists()
    assert not table_path(tmp_path).exists()


@pytest.mark.workflow
def test_keep_going_excludes_diverged_members_and_says_so(tmp_path, tiny_config):
    """gd at lr 0.4: some low-SNR members blow up, the others train normally."""
    proc = run_snakemake(tmp_path, divergent(tiny_config, 0.4, on_divergence="exclude"), str(table_path(tmp_path)))
    table = read_netcdf(table_path(tmp_path))
    diverged = table["diverged"].astype(bool)
    assert 0 < int(diverged.sum()) < diverged.size
    assert f"align task={TASK}: warning: {int(diverged.sum())} of 18 members diverged" in console(proc)
    assert table.attrs["diverged_note"].startswith(f"{int(diverged.sum())} of 18 members diverged")
    cosine = table["alignment"].sel(metric="cosine_end_to_end", layer="output")
    for snr in table["snr"].values:
        for n in table["n"].values:
            out = diverged.sel(snr=snr, n=n).values
            for p, (a, b) in enumerate(zip(table["seed_a"].values, table["seed_b"].values)):
                value = float(cosine.sel(snr=snr, n=n)[p])
                assert np.isnan(value) if out[a] or out[b] else np.isfinite(value), (snr, n, a, b)


@pytest.mark.workflow
def test_cuda_without_a_gpu_fails_before_any_job(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    proc = run_snakemake(tmp_path, lean_config(tiny_config, device="cuda"), check=False)
    assert proc.returncode != 0
    assert "invalid config key 'device': 'cuda' needs a visible GPU" in console(proc)
    assert "use device: auto" in console(proc)
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_oversized_n_and_probes_fail_before_any_job_naming_the_keys(tmp_path, tiny_config):
    config = copy.deepcopy(tiny_config)
    config["tasks"]["digits_tiny"]["n"] = [20, 5000]
    diabetes = copy.deepcopy(config["tasks"]["digits_tiny"])
    diabetes.update(n=[20], probes=400, dataset={**diabetes["dataset"], "kind": "diabetes"},
                    noise={"kind": "target_gaussian"})
    config["tasks"] = {"digits_tiny": config["tasks"]["digits_tiny"], "diabetes_tiny": diabetes}
    proc = run_snakemake(tmp_path, config, check=False)
    out = console(proc)
    assert proc.returncode != 0
    assert ("invalid config keys 'tasks.digits_tiny.n', 'tasks.digits_tiny.probes', 'tasks.digits_tiny.test_size': "
            "max(n) (5000) + probes (100) + test_size (200) = 5300 exceed the 1797 samples of data set 'digits'") in out
    assert ("invalid config keys 'tasks.diabetes_tiny.n', 'tasks.diabetes_tiny.probes', "
            "'tasks.diabetes_tiny.test_size': max(n) (20) + probes (400) + test_size (200) = 620 exceed the 442 "
            "samples of data set 'diabetes'") in out
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_yaml_syntax_error_in_config_yaml_names_file_and_line(tmp_path):
    (tmp_path / "config.yaml").write_text("results: results\ntasks:\n  lin:\n    snr: [1, 2\n    n: [3]\n")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0
    assert (f"cannot parse config file {tmp_path / 'config.yaml'}, line 5, column 6: expected ',' or ']', "
            "but got ':' (while parsing a flow sequence started at line 4, column 10)") in console(proc)
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_broken_configfile_is_named_with_its_line(tmp_path, tiny_config):
    """Snakemake 9 parses a --configfile itself, before the Snakefile runs, and a YAML syntax error stops it
    with 'Config file is not valid JSON or YAML' alone; `--verbose` and `python -m alignpipe.config FILE`
    name file and line. A file Snakemake accepts is checked again by the Snakefile: a repeated key (YAML
    keeps the last value) stops the run naming the file and both lines."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("results: results\ntasks:\n  lin:\n    snr: [1, 2\n    n: [3]\n")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(broken), "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Config file is not valid JSON or YAML" in console(proc)  # Snakemake's own message
    verbose = subprocess.run([*cmd, "--verbose"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert verbose.returncode != 0
    assert f'in "{broken}", line 5, column 6' in console(verbose)  # the parser's error, at the traceback's end
    checked = subprocess.run([sys.executable, "-m", "alignpipe.config", str(broken)], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)
    assert checked.returncode == 1
    assert f"cannot parse config file {broken}, line 5, column 6: expected ',' or ']'" in checked.stderr
    assert not (tmp_path / "results").exists()

    config = lean_config(tiny_config, results=str(tmp_path / "results"))
    text = yaml.safe_dump(config)
    first = text.splitlines().index("device: cpu") + 1
    twice = tmp_path / "twice.yaml"
    twice.write_text(text + "device: cuda\n")  # a second `device`, on the last line
    last = len(text.splitlines()) + 1
    proc = subprocess.run([*cmd[:-4], "--configfile", str(twice), "--cores", "1"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode != 0
    assert (f"cannot parse config file {twice}, line {last}, column 1: duplicate key 'device' (first at line "
            f"{first}; YAML would keep only the last value)") in console(proc)
    assert "Traceback" not in console(proc)
    assert not (tmp_path / "results").exists()

