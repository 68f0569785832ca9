"""alignlib.ensembles.builder: a task's members from its config (architecture, loss, training sets),
their batched training, their noise fit and their activation cube."""
import io

import numpy as np
import pytest
import torch
import xarray as xr
from tiny_linear import tiny_linear, tiny_linear_cube

from alignlib.ensembles.alignment import layer_activations
from alignlib.ensembles.builder import (
    architecture,
    loss_of,
    member_training_set,
    noise_fit,
    noise_variance_scale,
    params_of,
    train_members,
)

# --------------------------------------------------------------------------- the task's network and loss


def _dataset(target="regression", **attrs):
    return xr.Dataset({"train_x": (("sample", "feature"), np.zeros((4, 6))),
                       "train_y": (("sample", "output"), np.zeros((4, 2)))},
                      attrs=dict(target=target, classes=3, dataset="toy", **attrs))


def _cfg(**network):
    net = dict(kind="mlp", hidden=[5], activation="tanh", bias=True, channels=[4], record="post",
               conv_record="channel_mean", init_scale=1.0)
    return {"network": dict(net, **network), "training": {"loss": "auto"}}


def test_architecture_follows_the_config_and_the_data():
    mlp = architecture(_cfg(), _dataset())
    assert mlp.widths == (6, 5, 2) and mlp.activation == "tanh" and mlp.bias
    linear = architecture(_cfg(kind="linear"), _dataset())
    assert linear.is_linear and not linear.bias  # linear networks get neither an activation nor biases
    assert architecture(_cfg(), _dataset("classification")).widths == (6, 5, 3)  # one output per class
    cnn = architecture(_cfg(kind="cnn"), _dataset(image_shape=[1, 8, 8]))
    assert cnn.conv == (4,) and cnn.widths[0] == 4 * 4 * 4  # 4 channels after one 2x2 pooling of 8x8
    with pytest.raises(ValueError, match="network.kind cnn needs an image data set, not 'toy'"):
        architecture(_cfg(kind="cnn"), _dataset())


def test_loss_auto_follows_the_target_and_cross_entropy_needs_classes():
    assert loss_of(_cfg(), _dataset()) == "mse"
    assert loss_of(_cfg(), _dataset("classification")) == "cross_entropy"
    cfg = dict(_cfg(), training={"loss": "cross_entropy"})
    with pytest.raises(ValueError, match="cross_entropy needs a classification data set"):
        loss_of(cfg, _dataset())


# --------------------------------------------------------------------------- members of the tiny linear task


def test_grid_member_recreated_alone_matches_batch():
    """A member's weights depend on (task, snr, n, seed) only, not on the batch it was in."""
    cfg, data, batch = tiny_linear()  # trained by train_grid_n at n = 7 and 14
    snr, seed = 3.0, 2
    _, alone, train_err, test_err, _ = train_members("linear_regression", cfg, data, 7, [(snr, seed)], "cpu")
    for i, p in enumerate(alone.params):
        np.testing.assert_allclose(batch[f"param{i}"].sel(snr=snr, n=7, seed=seed).values, p[0].numpy(),
                                   rtol=0, atol=1e-10)
    assert float(batch["test_error"].sel(snr=snr, n=7, seed=seed)) == pytest.approx(test_err[0], abs=1e-12)
    assert bool(batch["converged"].all())


def test_noise_realisations_are_independent_and_have_requested_variance():
    cfg, data, _ = tiny_linear()
    clean = data["train_y"].values[:200, 0]
    noise = np.stack([member_training_set("linear_regression", cfg, data, 0.5, 200, k)[1][:, 0] - clean
                      for k in range(3)])
    # Var(clean) = |teacher|^2 = 1 -> noise variance 1 / 0.5 = 2
    assert noise.var(axis=1) == pytest.approx([2.0] * 3, rel=0.25)
    assert abs(np.corrcoef(noise)[0, 1]) < 0.2
    again = member_training_set("linear_regression", cfg, data, 0.5, 200, 1)[1][:, 0] - clean
    np.testing.assert_array_equal(again, noise[1])


def test_label_flip_on_a_regression_task_names_the_key():
    cfg, data, _ = tiny_linear()
    with pytest.raises(ValueError, match=r"tasks\.linear_regression\.noise\.kind: label_flip needs a classification"):
        member_training_set("linear_regression", dict(cfg, noise={"kind": "label_flip"}), data, 1.0, 7, 0)


def test_cube_holds_each_members_forward_pass():
    cfg, data, models = tiny_linear()
    cube = tiny_linear_cube()
    assert dict(cube["activation"].sizes) == {"snr": 3, "n": 2, "seed": 3, "layer": 2, "probe": 64, "unit": 20}
    assert list(cube["layer"].values) == ["hidden", "output"]
    w1, w2 = params_of(models, 3.0, 14)
    probes = data["probe_x"].values
    hidden = probes @ w1[1].T
    np.testing.assert_allclose(layer_activations(cube, "hidden").sel(snr=3.0, n=14, seed=1), hidden, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer_activations(cube, "output").sel(snr=3.0, n=14, seed=1), hidden @ w2[1].T,
                               rtol=1e-5, atol=1e-6)
    # the output layer has one real unit; the rest is NaN padding, stripped by layer_activations
    assert layer_activations(cube, "output").sizes["unit"] == 1
    assert np.isnan(cube["activation"].sel(layer="output").isel(unit=slice(1, None))).all()
    np.testing.assert_allclose(cube["end_to_end"].sel(snr=3.0, n=14, seed=1).values, w2[1] @ w1[1], rtol=1e-12)


# --------------------------------------------------------------------------- noise fit


def _regression_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 1))
    return xr.Dataset({"train_y": (("sample", "output"), y)}, attrs={"target_variance": 1.0}), y


def test_member_predicting_the_clean_target_at_snr_100_does_not_interpolate():
    """It memorises none of its noise: noise_fit ~ 1, far above tol, although its train MSE over the
    variance of the noisy targets is 1 / (1 + SNR) ~ 0.0099 (the old criterion called that a fit)."""
    snr, n = 100.0, 2000
    data, clean = _regression_data(n)
    noisy = clean + np.random.default_rng(1).normal(size=clean.shape) * np.sqrt(1.0 / snr)
    cfg = {"noise": {"kind": "target_gaussian"}}
    y = torch.as_tensor(noisy[None])
    scale = noise_variance_scale(cfg, data, [snr], y)
    mse = np.array([((clean - noisy) ** 2).sum(-1).mean()])
    fit = noise_fit(cfg, data, n, torch.as_tensor(clean[None]), y, mse, scale)
    assert fit[0] == pytest.approx(1.0, abs=0.1) and fit[0] > 0.01
    assert mse[0] / noisy.var() <= 0.0105  # what the old, clean-target-biased criterion saw
    memorised = noise_fit(cfg, data, n, y, y, np.zeros(1), scale)
    assert memorised[0] == 0.0


def test_label_flip_member_predicting_clean_labels_does_not_interpolate():
    rng = np.random.default_rng(2)
    clean = rng.integers(0, 10, size=500)
    noisy = clean.copy()
    flip = rng.random(500) < 0.2
    noisy[flip] = (clean[flip] + 1) % 10
    data = xr.Dataset({"train_label": ("sample", clean)})
    cfg = {"noise": {"kind": "label_flip"}}
    predicts_clean = torch.nn.functional.one_hot(torch.as_tensor(clean), 10).double()[None]
    err = np.array([flip.mean()])
    fit = noise_fit(cfg, data, 500, predicts_clean, torch.as_tensor(noisy[None]), err, None)
    assert fit[0] == 1.0  # not one flipped label reproduced
    memorises = torch.nn.functional.one_hot(torch.as_tensor(noisy), 10).double()[None]
    assert noise_fit(cfg, data, 500, memorises, torch.as_tensor(noisy[None]), np.zeros(1), None)[0] == 0.0


# --------------------------------------------------------------------------- batching across sample sizes

_MLP_TINY = {"snr": [3, 30], "n": [20, 30, 40], "seeds": 3, "probes": 32, "test_size": 100,
             "dataset": {"kind": "teacher_mlp", "dim": 5, "teacher_hidden": 8, "target": "regression"},
             "network": {"kind": "mlp", "hidden": [8], "activation": "relu", "bias": True, "init_scale": 1.0},
             "noise": {"kind": "target_gaussian"},
             "training": {"optimizer": "adam", "lr": 0.01, "max_steps": 150, "tol": 1e-6, "fit_tol": 1e-3}}


def _task(name, dtype):
    """(task, config, data, sample sizes) of a tiny task: the tiny config's linear and digits tasks, or a
    small ReLU regression on a teacher network."""
    from conftest import validated

    from alignlib.ensembles.data import make_task_data

    if name == "mlp_tiny":
        cfg = validated({"tasks": {name: _MLP_TINY}})["tasks"][name]
        ns = (20, 30, 40)
    else:
        cfg, _, _ = tiny_linear()
        if name == "digits_tiny":
            import yaml
            from conftest import CONFIGS

            cfg = validated(yaml.safe_load((CONFIGS / "tiny.yaml").read_text()))["tasks"][name]
            cfg["training"]["max_steps"] = 150
        ns = (7, 10, 14) if name == "linear_regression" else (20, 30, 40)
    cfg = dict(cfg, training=dict(cfg["training"], dtype=dtype))
    return name, cfg, make_task_data(name, cfg), ns


# float64: the same members to 1e-10 (only summation order differs, ~1e-15 measured); float32: to 1e-5
# relative (~1e-6 measured after 150 Adam steps), the step counts equal
_TOLERANCE = {"float64": 1e-10, "float32": 1e-5}


@pytest.mark.parametrize("name,dtype", [("linear_regression", "float64"), ("mlp_tiny", "float64"),
                                        ("digits_tiny", "float64"), ("mlp_tiny", "float32"),
                                        ("digits_tiny", "float32")])
def test_members_trained_across_n_equal_members_trained_per_n(name, dtype, single_torch_thread):
    """3 n x 2 SNRs x 3 seeds in one padded batch (grouping 'ratio') against one batch per n: weights,
    steps, convergence, train and test error, noise fit and losses."""
    from alignlib.ensembles.builder import n_buckets, trained_in_buckets

    task, cfg, data, ns = _task(name, dtype)
    members = {n: [(float(s), k) for s in cfg["snr"][:2] for k in range(3)] for n in ns}
    assert n_buckets(ns, grouping="ratio") == [list(ns)]
    log = io.StringIO()
    per_n = {n: dict(zip(m, r)) for n, m, r in trained_in_buckets(task, cfg, data, members, "cpu", log, "per_n")}
    batched = {n: dict(zip(m, r)) for n, m, r in trained_in_buckets(task, cfg, data, members, "cpu", log, "ratio")}
    assert f"[{task} n={'-'.join(map(str, ns))}] done" in log.getvalue()
    tol, stopped_early = _TOLERANCE[dtype], 0
    for n in ns:
        for member, alone in per_n[n].items():
            together = batched[n][member]
            assert set(together) == set(alone)
            for key in ("steps", "converged", "diverged"):
                assert together[key] == alone[key], (n, member, key)
            for key, value in alone.items():
                np.testing.assert_allclose(together[key], value, rtol=tol, atol=tol, err_msg=f"{n} {member} {key}")
            stopped_early += int(alone["steps"]) < cfg["training"]["max_steps"]
    assert stopped_early > 0 or name == "mlp_tiny"  # the stopping rules were exercised


def test_buckets_group_consecutive_n_up_to_twice_the_smallest():
    from alignlib.ensembles.builder import n_buckets

    ns = [25, 50, 100, 150, 200, 250, 300, 400, 600, 1000, 1300]
    assert n_buckets(ns, "cpu") == [[n] for n in ns]  # the CPU trains each n alone
    assert n_buckets(ns, grouping="ratio") == [[25, 50], [100, 150, 200], [250, 300, 400], [600, 1000], [1300]]
    assert n_buckets(ns, torch.device("meta"), members_per_n={n: 10 for n in ns}) == n_buckets(ns, grouping="ratio")
    # memory: at most max_elements (members x largest n x units) in a bucket
    assert n_buckets([100, 150, 200], grouping="ratio", members_per_n={100: 10, 150: 10, 200: 10}, units=10,
                     max_elements=10 * 3 * 150 * 10) == [[100, 150], [200]]
    # minibatch n: alone
    assert n_buckets([10, 15, 20, 30], grouping="ratio", batch_size=16) == [[10, 15], [20], [30]]
    with pytest.raises(ValueError, match="unknown grouping 'all'"):
        n_buckets(ns, grouping="all")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["linear_regression", "mlp_tiny", "digits_tiny"])
def test_members_trained_across_n_on_cuda(name):
    """On the GPU (buckets of several n, 'anyone still training?' every 50 steps): equal to per-n training on
    the GPU to 1e-10 in float64 (the CPU test's tolerance), and to the CPU's members to 1e-8 (two devices'
    float64 kernels sum differently, and 150 Adam steps carry that along)."""
    from alignlib.ensembles.builder import default_grouping, trained_in_buckets

    task, cfg, data, ns = _task(name, "float64")
    members = {n: [(float(s), k) for s in cfg["snr"][:2] for k in range(3)] for n in ns}
    assert default_grouping("cuda") == "ratio"
    log = io.StringIO()

    def grid(device, grouping):
        return {n: dict(zip(m, r)) for n, m, r in trained_in_buckets(task, cfg, data, members, device, log, grouping)}

    bucketed, per_n, cpu = grid("cuda", None), grid("cuda", "per_n"), grid("cpu", "per_n")
    for reference, tol in ((per_n, 1e-10), (cpu, 1e-8)):
        for n in ns:
            for member, expected in reference[n].items():
                got = bucketed[n][member]
                assert got["steps"] == expected["steps"] and got["converged"] == expected["converged"]
                for key, value in expected.items():
                    np.testing.assert_allclose(got[key], value, rtol=tol, atol=tol, err_msg=f"{n} {member} {key}")
