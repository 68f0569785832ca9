"""alignlib.ensembles.data: a task's data set (training pool, probes, clean test set), reproducible from
its config; real data splits; the OOD probe sets (issue 13, item 4)."""
import numpy as np
import pytest
import xarray as xr
from tiny_linear import tiny_linear

from alignlib.ensembles import data as data_mod
from alignlib.ensembles.data import make_task_data


def test_data_is_reproducible_and_nested():
    cfg, data, _ = tiny_linear()
    again = make_task_data("linear_regression", cfg)
    xr.testing.assert_identical(data, again)
    assert data.sizes["sample"] == max(cfg["n"])
    np.testing.assert_allclose(data["train_y"].values[:, 0], data["train_x"].values @ data["teacher"].values)
    assert np.linalg.norm(data["teacher"].values) == pytest.approx(1.0)


def test_real_splits_are_disjoint_and_standardised():
    cfg = dict(_task("digits", n=[100], probes=300, test_size=497), noise={"kind": "label_flip"})
    data = make_task_data("t", cfg)
    assert data.sizes["sample"] == 1797 - 300 - 497
    pooled = np.concatenate([data["train_x"].values, data["probe_x"].values, data["test_x"].values])
    assert len(np.unique(pooled.round(8), axis=0)) >= 1797 - 5  # a few duplicate digit images exist
    assert np.allclose(data["train_x"].values.mean(axis=0), 0, atol=1e-9)


def test_a_grid_larger_than_the_data_set_and_an_unknown_data_set_name_the_key():
    with pytest.raises(ValueError, match=r"tasks\.t\.n: the largest n \(1700\) exceeds the 1000 training samples"):
        make_task_data("t", _task("digits", n=[20, 1700], probes=300, test_size=497))
    too_big = dict(_task("digits", probes=300, test_size=497), dataset={"kind": "digits", "pool": 1500})
    with pytest.raises(ValueError, match=r"tasks\.t: probes \(300\) \+ test_size \(497\) \+ pool \(1500\) exceed "
                                         r"the 1797 samples"):
        make_task_data("t", too_big)
    with pytest.raises(ValueError, match=r"tasks\.t\.dataset\.kind: unknown data set 'imagenet'"):
        make_task_data("t", dict(_task("digits"), dataset={"kind": "imagenet"}))


# ----------------------------------------------------------------------------- OOD probe sets


def _task(kind, **extra):
    base = {"snr": [1.0], "n": [20, 60], "seeds": 3, "probes": 64, "test_size": 50, "base_seed": 0}
    datasets = {
        "gaussian_linear": {"kind": "gaussian_linear", "dim": 5},
        "teacher_mlp": {"kind": "teacher_mlp", "dim": 5, "teacher_hidden": 8, "target": "regression"},
        "digits": {"kind": "digits"},
        "diabetes": {"kind": "diabetes"},
    }
    return dict(base, dataset=datasets[kind], **extra)


def _make(kind, ood_cfg=None, **extra):
    """The task's data set; with ``ood_cfg``, its OOD probe set (``ood_x`` and the ``ood_*`` attributes,
    :func:`alignlib.ensembles.data.ood_probe_set`) merged in."""
    cfg = _task(kind, **extra)
    if ood_cfg is None:
        return data_mod.make_task_data("t", cfg)
    cfg["ood"] = ood_cfg
    data = data_mod.make_task_data("t", cfg)
    probes = data_mod.ood_probe_set("t", cfg, data)
    return data.drop_vars("ood_x", errors="ignore").merge(probes, combine_attrs="no_conflicts")


@pytest.mark.parametrize("kind", ["gaussian_linear", "teacher_mlp"])
def test_synthetic_scale_rescales_the_covariance(kind):
    ds = _make(kind, {"kind": "scale", "factor": 3.0, "probes": 20000})
    x = ds["ood_x"].values
    assert x.shape == (20000, 5)
    np.testing.assert_allclose(np.cov(x.T), 9.0 * np.eye(5), atol=0.3)  # sampling error ~ 9 * 2 / sqrt(2e4)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.1)


@pytest.mark.parametrize("kind", ["gaussian_linear", "teacher_mlp"])
def test_synthetic_shift_moves_the_mean_along_one_direction(kind):
    ds = _make(kind, {"kind": "shift", "factor": 2.5, "probes": 20000})
    x = ds["ood_x"].values
    mean = x.mean(0)
    assert np.linalg.norm(mean) == pytest.approx(2.5, abs=0.05)  # factor standard deviations (Var = 1 per direction)
    np.testing.assert_allclose(np.cov(x.T), np.eye(5), atol=0.05)
    u = data_mod.unit_direction(data_mod.stream(0, "t", "ood_direction"), 5)
    np.testing.assert_allclose(mean / np.linalg.norm(mean), u, atol=0.02)


def test_ood_probe_count_defaults_to_probes():
    assert _make("gaussian_linear", {"kind": "scale"})["ood_x"].shape == (64, 5)
    assert _make("gaussian_linear", {"kind": "scale", "probes": 10})["ood_x"].shape == (10, 5)


def test_diabetes_scale_and_shift_transform_the_probes():
    base = _make("diabetes", n=[20, 100])
    p, train = base["probe_x"].values, base["train_x"].values
    scaled = _make("diabetes", {"kind": "scale", "factor": 2.0}, n=[20, 100])["ood_x"].values
    np.testing.assert_array_equal(scaled, 2.0 * p)  # about the pool mean, 0 after standardisation
    shifted = _make("diabetes", {"kind": "shift", "factor": 1.5}, n=[20, 100])["ood_x"].values
    step = shifted - p
    np.testing.assert_allclose(step, np.broadcast_to(step[0], step.shape))  # one constant shift
    u = step[0] / np.linalg.norm(step[0])
    assert np.linalg.norm(step[0]) / (train @ u).std() == pytest.approx(1.5)  # in pool sds along u


def test_digits_noise_has_the_stated_pixel_std():
    factor = 0.7
    base = _make("digits", n=[20, 1000], probes=300)
    noisy = _make("digits", {"kind": "noise", "factor": factor}, n=[20, 1000], probes=300)
    pixel_sd = base["train_x"].values.std(0)
    residual = noisy["ood_x"].values - base["probe_x"].values
    varying = pixel_sd > 0
    assert (~varying).any()  # the bundled digits have constant border pixels: they stay unchanged
    np.testing.assert_array_equal(residual[:, ~varying], 0.0)
    ratio = residual[:, varying].std(0) / pixel_sd[varying]
    assert np.median(ratio) == pytest.approx(factor, rel=0.05)
    assert abs(residual[:, varying].mean()) < 0.02


def test_diabetes_extrapolate_lies_above_the_pool():
    ds = _make("diabetes", {"kind": "extrapolate", "feature": "bmi", "probes": 41}, n=[20, 200])
    f = 2  # bmi
    ood_x = ds["ood_x"].values
    assert ood_x.shape == (41, 10)
    assert ds.attrs["ood_feature"] == "bmi"
    assert ood_x[:, f].min() > ds["train_x"].values[:, f].max()
    others = np.concatenate([ds["probe_x"].values[:, f], ds["test_x"].values[:, f]])
    assert ood_x[:, f].min() > others.max()
    # by column index too, and a tie at the boundary is refused, naming the key
    by_index = _make("diabetes", {"kind": "extrapolate", "feature": 2, "probes": 41}, n=[20, 200])
    np.testing.assert_array_equal(by_index["ood_x"].values, ood_x)
    with pytest.raises(ValueError, match=r"tasks\.t\.ood\.probes"):
        _make("diabetes", {"kind": "extrapolate", "feature": "bmi", "probes": 40}, n=[20, 200])
    with pytest.raises(ValueError, match=r"tasks\.t\.ood\.feature"):
        _make("diabetes", {"kind": "extrapolate", "feature": "height", "probes": 41}, n=[20, 200])


@pytest.mark.parametrize("kind,ood_cfg,extra", [
    ("gaussian_linear", {"kind": "scale", "factor": 2.0}, {}),
    ("gaussian_linear", {"kind": "shift", "factor": 2.0, "probes": 7}, {}),
    ("teacher_mlp", {"kind": "shift", "factor": 2.0}, {}),
    ("digits", {"kind": "noise", "factor": 1.0}, {"n": [20, 300]}),
    ("diabetes", {"kind": "scale", "factor": 2.0}, {"n": [20, 200]}),
    ("diabetes", {"kind": "shift", "factor": 2.0}, {"n": [20, 200]}),
])
def test_existing_variables_are_bit_identical(kind, ood_cfg, extra):
    without = _make(kind, None, **extra)
    with_ood = _make(kind, ood_cfg, **extra)
    assert set(with_ood.data_vars) == set(without.data_vars) | {"ood_x"}
    for name in without.data_vars:
        assert without[name].dtype == with_ood[name].dtype
        np.testing.assert_array_equal(without[name].values, with_ood[name].values, err_msg=name)
    assert {k: v for k, v in with_ood.attrs.items() if not k.startswith("ood_")} == without.attrs


def test_a_kind_the_data_set_lacks_names_the_key():
    with pytest.raises(ValueError, match=r"tasks\.t\.ood\.kind.*'noise'.*gaussian_linear"):
        _make("gaussian_linear", {"kind": "noise"})
    with pytest.raises(ValueError, match=r"tasks\.t\.ood\.probes"):
        _make("diabetes", {"kind": "shift", "probes": 500}, n=[20, 200])
