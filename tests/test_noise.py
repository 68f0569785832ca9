"""alignlib.ensembles.noise: realised SNR, clean probes/test sets, label flips."""
import numpy as np
import pytest

from alignlib.ensembles.data import make_task_data
from alignlib.ensembles.builder import member_training_set
from alignlib.ensembles.noise import corrupt, flip_labels, flip_probability
from conftest import validated


def _task(dataset, noise, n=(400,), **extra):
    cfg = validated({"tasks": {"t": {"snr": [0.5, 4.0], "n": list(n), "seeds": 2, "probes": 50, "test_size": 60,
                                     "dataset": dataset, "noise": {"kind": noise},
                                     "network": {"kind": "mlp", "hidden": [4]}, **extra}}})
    return cfg["tasks"]["t"], make_task_data("t", cfg["tasks"]["t"])


@pytest.mark.parametrize("snr", [0.3, 1.0, 10.0])
def test_target_gaussian_realised_snr(snr):
    cfg, data = _task({"kind": "teacher_mlp", "dim": 5}, "target_gaussian", n=(4000,))
    clean = data["train_y"].values
    _, noisy = member_training_set("t", cfg, data, snr, 4000, 0)
    realised = data.attrs["target_variance"] / (noisy - clean).var()
    assert realised == pytest.approx(snr, rel=0.06)  # sampling error of a variance from 4000 draws ~ 2 %


@pytest.mark.parametrize("snr", [0.5, 2.0, 9.0])
def test_label_flip_rate_and_never_true_class(snr):
    cfg, data = _task({"kind": "digits"}, "label_flip", n=(1000,), probes=300, test_size=497)
    clean = data["train_label"].values
    _, noisy = member_training_set("t", cfg, data, snr, 1000, 1)
    flipped = noisy != clean
    p = flip_probability(snr)
    assert (1 - flipped.mean()) / flipped.mean() == pytest.approx(snr, rel=0.25)
    assert flipped.mean() == pytest.approx(p, abs=3 * np.sqrt(p * (1 - p) / 1000))
    # uniform over the 9 other classes
    shift = (noisy[flipped] - clean[flipped]) % 10
    assert set(np.unique(shift)) == set(range(1, 10))


def test_flip_labels_never_keeps_class_when_p_is_one():
    labels = np.arange(10).repeat(50)
    flipped = flip_labels(labels, 10, 1.0, np.random.default_rng(0))
    assert not np.any(flipped == labels)
    assert np.bincount(flipped, minlength=10).min() > 20


@pytest.mark.parametrize("snr", [0.5, 5.0])
def test_input_gaussian_realised_snr_and_targets_untouched(snr):
    cfg, data = _task({"kind": "teacher_mlp", "dim": 8}, "input_gaussian", n=(3000,))
    x_clean = data["train_x"].values
    x_noisy, y = member_training_set("t", cfg, data, snr, 3000, 0)
    assert data.attrs["input_variance"] / (x_noisy - x_clean).var() == pytest.approx(snr, rel=0.05)
    np.testing.assert_array_equal(y, data["train_y"].values)


@pytest.mark.parametrize("noise,dataset", [("target_gaussian", {"kind": "diabetes"}),
                                           ("label_flip", {"kind": "digits"}),
                                           ("input_gaussian", {"kind": "teacher_mlp", "dim": 4})])
def test_probe_and_test_sets_stay_clean_and_members_differ(noise, dataset):
    cfg, data = _task(dataset, noise, n=(100,), probes=40, test_size=50)
    before = {k: data[k].values.copy() for k in data.data_vars}
    a = member_training_set("t", cfg, data, 0.5, 100, 0)
    b = member_training_set("t", cfg, data, 0.5, 100, 1)
    again = member_training_set("t", cfg, data, 0.5, 100, 0)
    for key, value in before.items():
        np.testing.assert_array_equal(data[key].values, value)  # nothing modified in place
    assert not (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))
    np.testing.assert_array_equal(a[0], again[0])
    np.testing.assert_array_equal(a[1], again[1])


def test_unknown_noise_and_bad_snr():
    with pytest.raises(ValueError, match="unknown noise process 'salt'"):
        corrupt("salt", x=np.zeros(2), targets=np.zeros(2), snr=1.0, rng=np.random.default_rng(0),
                target_variance=1.0, input_variance=1.0)
    with pytest.raises(ValueError, match="snr must be > 0"):
        corrupt("target_gaussian", x=np.zeros(2), targets=np.zeros(2), snr=0.0, rng=np.random.default_rng(0),
                target_variance=1.0, input_variance=1.0)
