"""Batched training: convergence to the minimum-norm solution, batch independence, seeding."""
import numpy as np
import pytest
import torch
import xarray as xr

from alignlib.ensembles.data import make_task_data
from alignlib.ensembles.builder import member_training_set, train_grid_n, train_members
from alignlib.ensembles.networks import Architecture, end_to_end, init_member, stack_members
from alignlib.ensembles.seeding import stream
from alignlib.ensembles.training import input_preconditioner, train_ensemble


def _problem(n, d=30, members=4, snr=0.5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    teacher = rng.standard_normal(d)
    teacher /= np.linalg.norm(teacher)
    y = np.stack([x @ teacher + rng.standard_normal(n) / np.sqrt(snr) for _ in range(members)])[..., None]
    return x, y


def _train(x, y, optimizer, lr, max_steps, h=40, init_scale=1e-4, ids=None):
    arch = Architecture((x.shape[1], h, 1))
    ids = range(y.shape[0]) if ids is None else ids
    members = [init_member(arch, init_scale, np.random.default_rng(100 + i)) for i in ids]
    params = stack_members(members, torch.float64, "cpu")
    result = train_ensemble(arch, params, torch.tensor(x), torch.tensor(y), optimizer=optimizer, lr=lr,
                            max_steps=max_steps, tol=1e-8)
    beta = end_to_end(arch, result.params)[:, 0].numpy()
    return result, beta


@pytest.mark.parametrize("n", [10, 29, 30, 31, 120])
def test_preconditioned_gd_reaches_minimum_norm_solution(n):
    """Including n = d, where X^T X is nearly singular in its row space."""
    x, y = _problem(n)
    result, beta = _train(x, y, "preconditioned_gd", 1.0, 20000)
    minimum_norm = np.stack([np.linalg.pinv(x) @ yi[:, 0] for yi in y])
    assert result.converged.all()
    rel = np.linalg.norm(beta - minimum_norm, axis=1) / np.linalg.norm(minimum_norm, axis=1)
    # The init (1e-4) leaves a component outside the row space of size ~ init; nothing else.
    assert rel.max() < 1e-3


def test_plain_gd_stalls_at_interpolation_threshold_but_preconditioned_does_not():
    """Why the default optimizer is preconditioned: at n = d plain GD needs ~1/lambda_min steps."""
    x, y = _problem(30)
    lam = np.linalg.eigvalsh(x.T @ x / 30)
    assert lam.max() / lam.min() > 1e3  # the condition number that slows plain GD
    gd, beta_gd = _train(x, y, "gd", 0.02, 3000)
    pre, beta_pre = _train(x, y, "preconditioned_gd", 1.0, 3000)
    minimum_norm = np.stack([np.linalg.pinv(x) @ yi[:, 0] for yi in y])
    err_gd = np.linalg.norm(beta_gd - minimum_norm, axis=1) / np.linalg.norm(minimum_norm, axis=1)
    err_pre = np.linalg.norm(beta_pre - minimum_norm, axis=1) / np.linalg.norm(minimum_norm, axis=1)
    assert not gd.converged.any() and pre.converged.all()
    assert err_gd.min() > 0.05 and err_pre.max() < 1e-3


def test_preconditioner_is_pseudo_inverse_on_row_space():
    x = torch.tensor(np.random.default_rng(1).standard_normal((5, 8)))
    p = input_preconditioner(x)
    cov = x.T @ x / 5
    proj = torch.linalg.pinv(x) @ x
    torch.testing.assert_close(p @ cov, proj, atol=1e-10, rtol=0)
    torch.testing.assert_close(p, torch.linalg.pinv(cov), atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("optimizer,lr", [("preconditioned_gd", 1.0), ("gd", 0.05), ("adam", 1e-3)])
def test_member_trained_alone_matches_batch(optimizer, lr):
    x, y = _problem(25, members=5)
    _, beta_batch = _train(x, y, optimizer, lr, 400)
    for i in (0, 3):
        _, beta_alone = _train(x, y[i:i + 1], optimizer, lr, 400, ids=[i])
        np.testing.assert_allclose(beta_alone[0], beta_batch[i], rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def tiny_task(tiny_config):
    cfg = tiny_config["tasks"]["linear_regression"]
    return cfg, make_task_data("linear_regression", cfg)


def test_grid_member_recreated_alone_matches_batch(tiny_task):
    """A member's weights depend on (task, snr, n, seed) only, not on the batch it was in."""
    cfg, data = tiny_task
    batch = train_grid_n("linear_regression", cfg, data, 7, "cpu")
    snr, seed = 3.0, 2
    _, alone, train_err, test_err, _ = train_members("linear_regression", cfg, data, 7, [(snr, seed)], "cpu")
    for i, p in enumerate(alone.params):
        np.testing.assert_allclose(batch[f"param{i}"].sel(snr=snr, n=7, seed=seed).values, p[0].numpy(),
                                   rtol=0, atol=1e-10)
    assert float(batch["test_error"].sel(snr=snr, n=7, seed=seed)) == pytest.approx(test_err[0], abs=1e-12)
    assert bool(batch["converged"].all())


def test_noise_realisations_are_independent_and_have_requested_variance(tiny_task):
    cfg, data = tiny_task
    clean = data["train_y"].values[:200, 0]
    noise = np.stack([member_training_set("linear_regression", cfg, data, 0.5, 200, k)[1][:, 0] - clean
                      for k in range(3)])
    # Var(clean) = |teacher|^2 = 1 -> noise variance 1 / 0.5 = 2
    assert noise.var(axis=1) == pytest.approx([2.0] * 3, rel=0.25)
    assert abs(np.corrcoef(noise)[0, 1]) < 0.2
    again = member_training_set("linear_regression", cfg, data, 0.5, 200, 1)[1][:, 0] - clean
    np.testing.assert_array_equal(again, noise[1])


def test_streams_depend_on_keys_not_order():
    a = stream(0, "t", "noise", 1.0, 10, 3).standard_normal(4)
    b = stream(0, "t", "noise", 1.0, 10, 3).standard_normal(4)
    c = stream(0, "t", "noise", 1.0, 10, 4).standard_normal(4)
    d = stream(0, "t", "noise", 1.0000001, 10, 3).standard_normal(4)
    e = stream(0, "u", "noise", 1.0, 10, 3).standard_normal(4)
    np.testing.assert_array_equal(a, b)
    for other in (c, d, e):
        assert not np.allclose(a, other)


def test_data_is_reproducible_and_nested(tiny_task):
    cfg, data = tiny_task
    again = make_task_data("linear_regression", cfg)
    xr.testing.assert_identical(data, again)
    assert data.sizes["sample"] == max(cfg["n"])
    np.testing.assert_allclose(data["train_y"].values[:, 0], data["train_x"].values @ data["teacher"].values)
    assert np.linalg.norm(data["teacher"].values) == pytest.approx(1.0)


def _reference_cnn(params, x, image_shape):
    """One member's CNN written with plain (ungrouped) torch ops, for comparison."""
    (w1, b1, w2, b2, w3, b3) = params
    h = x.reshape(-1, *image_shape)
    conv = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(h, w1, b1, padding=1)), 2)
    hidden = torch.relu(conv.flatten(1) @ w2.T + b2)
    return [conv.flatten(1), hidden, hidden @ w3.T + b3]


def test_grouped_cnn_equals_per_member_cnn():
    from alignlib.ensembles.networks import forward

    arch = Architecture((3 * 4 * 4, 5, 4), activation="relu", bias=True, conv=(3,), image_shape=(2, 8, 8),
                        conv_record="flatten")
    assert arch.layer_names == ["conv1", "hidden", "output"] and arch.layer_widths == [48, 5, 4]
    rng = np.random.default_rng(0)
    members = [init_member(arch, 1.0, rng) for _ in range(3)]
    for m in members:  # non-zero biases so they are tested too
        m[1] += rng.standard_normal(m[1].shape)
        m[3] += rng.standard_normal(m[3].shape)
    params = stack_members(members, torch.float64, "cpu")
    x = torch.tensor(rng.standard_normal((7, 128)))
    outs = forward(arch, params, x)
    for i, m in enumerate(members):
        ref = _reference_cnn([torch.tensor(p) for p in m], x, (2, 8, 8))
        for got, want in zip(outs, ref):
            torch.testing.assert_close(got[i], want, rtol=1e-10, atol=1e-10)
    pooled = forward(Architecture(arch.widths, "relu", True, (3,), (2, 8, 8)), params, x)[0]
    assert pooled.shape == (3, 7, 3)  # channel_mean: one unit per channel, the mean over positions
    torch.testing.assert_close(pooled, outs[0].reshape(3, 7, 3, 16).mean(-1))
    # per-member inputs (input noise) give the same as shared inputs when they are equal
    per_member = forward(arch, params, x.expand(3, -1, -1))
    for got, want in zip(per_member, outs):
        torch.testing.assert_close(got, want)


def test_cnn_member_alone_matches_batch():
    arch = Architecture((2 * 4 * 4, 6, 10), activation="relu", bias=True, conv=(2,), image_shape=(1, 8, 8))
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.standard_normal((30, 64)))
    y = torch.tensor(rng.integers(0, 10, (3, 30)))
    members = [init_member(arch, 1.0, np.random.default_rng(i)) for i in range(3)]
    kwargs = dict(optimizer="adam", lr=0.01, max_steps=60, tol=1e-9, loss="cross_entropy", fit_tol=0.0)
    batch = train_ensemble(arch, stack_members(members, torch.float64, "cpu"), x, y, **kwargs)
    alone = train_ensemble(arch, stack_members(members[1:2], torch.float64, "cpu"), x, y[1:2], **kwargs)
    for pb, pa in zip(batch.params, alone.params):
        torch.testing.assert_close(pb[1], pa[0], rtol=0, atol=1e-10)
    assert batch.steps[1] == alone.steps[0]


def test_classification_stops_when_training_labels_are_fitted():
    arch = Architecture((5, 32, 3), activation="relu", bias=True)
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.standard_normal((12, 5)))
    y = torch.tensor(rng.integers(0, 3, (2, 12)))
    members = [init_member(arch, 1.0, np.random.default_rng(i)) for i in range(2)]
    result = train_ensemble(arch, stack_members(members, torch.float64, "cpu"), x, y, optimizer="adam", lr=0.02,
                            max_steps=5000, tol=1e-12, loss="cross_entropy", fit_tol=0.0)
    from alignlib.ensembles.networks import forward

    pred = forward(arch, result.params, x)[-1].argmax(-1)
    assert result.converged.all() and result.steps.max() < 5000
    assert torch.equal(pred, y)  # 12 random labels memorised exactly, then training stopped


def test_minibatch_training_is_batch_independent_and_fits():
    arch = Architecture((6, 32, 4), activation="relu", bias=True)
    rng = np.random.default_rng(5)
    x = torch.tensor(rng.standard_normal((40, 6)))
    y = torch.tensor(rng.integers(0, 4, (3, 40)))
    members = [init_member(arch, 1.0, np.random.default_rng(10 + i)) for i in range(3)]
    kwargs = dict(optimizer="adam", lr=0.02, max_steps=4000, tol=1e-12, loss="cross_entropy", fit_tol=0.0,
                  batch_size=16, batch_seed=7)
    batch = train_ensemble(arch, stack_members(members, torch.float64, "cpu"), x, y, **kwargs)
    alone = train_ensemble(arch, stack_members(members[2:], torch.float64, "cpu"), x, y[2:], **kwargs)
    for pb, pa in zip(batch.params, alone.params):
        torch.testing.assert_close(pb[2], pa[0], rtol=0, atol=1e-10)
    assert batch.converged.all()
    with pytest.raises(ValueError, match="full-batch"):
        train_ensemble(Architecture((6, 4, 1)), stack_members([init_member(Architecture((6, 4, 1)), 1e-3, rng)],
                       torch.float64, "cpu"), x, torch.zeros(1, 40, 1, dtype=torch.float64), batch_size=8)
