"""alignlib.ensembles.training: convergence to the minimum-norm solution, batch independence, and the
parts of a run (settings, one update per optimizer, the stopping rules, minibatch order, the step)."""
import dataclasses

import numpy as np
import pytest
import torch

from alignlib.ensembles.networks import Architecture, end_to_end, init_member, stack_members
from alignlib.ensembles.training import (
    MinibatchOrder,
    TrainSettings,
    adam_update,
    all_stopped,
    converged_by_tol,
    fit_check_due,
    fitted_by_fit_tol,
    gd_update,
    initial_state,
    input_preconditioner,
    preconditioned_gd_update,
    reached_max_steps,
    train,
    train_ensemble,
    train_step,
    training_problem,
    whitened_sq_norm,
)


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


# --------------------------------------------------------------------------- settings


def test_settings_name_the_bad_value_and_are_frozen():
    with pytest.raises(ValueError, match=r"unknown optimizer 'sgd'; known: \['preconditioned_gd', 'gd', 'adam'\]"):
        TrainSettings(optimizer="sgd")
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; known: \['mse', 'cross_entropy'\]"):
        TrainSettings(loss="hinge")
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainSettings().lr = 0.1
    assert not TrainSettings().minibatch(10) and not TrainSettings(batch_size=10).minibatch(10)
    assert TrainSettings(batch_size=4).minibatch(10)


def test_settings_that_cannot_train_the_network_are_refused():
    arch = Architecture((3, 4, 1), activation="relu", bias=True)
    params = stack_members([init_member(arch, 1.0, np.random.default_rng(0))], torch.float64, "cpu")
    x, y = torch.zeros(6, 3, dtype=torch.float64), torch.zeros(1, 6, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="dense networks without biases"):
        train(arch, params, x, y, TrainSettings(optimizer="preconditioned_gd"))


# --------------------------------------------------------------------------- one update per optimizer


def _two_members():
    """Two members of a (2 -> 2 -> 1) linear network and a gradient for each parameter."""
    p = [torch.tensor([[[1.0, 2.0], [0.0, 1.0]], [[0.5, 0.0], [1.0, -1.0]]], dtype=torch.float64),
         torch.tensor([[[1.0, -1.0]], [[2.0, 0.5]]], dtype=torch.float64)]
    g = [torch.tensor([[[0.5, -1.0], [2.0, 0.0]], [[1.0, 1.0], [-3.0, 0.25]]], dtype=torch.float64),
         torch.tensor([[[4.0, 0.0]], [[-1.0, 2.0]]], dtype=torch.float64)]
    return p, g


def test_gd_moves_the_unmasked_members_by_lr_times_the_gradient():
    p, g = _two_members()
    before = [q.clone() for q in p]
    gd_update(p, g, torch.tensor([1.0, 0.0], dtype=torch.float64), 0.1)
    for q, q0, gq in zip(p, before, g):
        torch.testing.assert_close(q[0], q0[0] - 0.1 * gq[0], rtol=0, atol=1e-15)
        assert torch.equal(q[1], q0[1])  # masked: untouched


def test_adams_first_step_is_lr_times_the_sign_of_the_gradient():
    """From zero moments, step 1: m = 0.1 g, v = 0.001 g^2, so the bias-corrected step is g / (|g| + 1e-8)."""
    p, g = _two_members()
    before = [q.clone() for q in p]
    moments = ([torch.zeros_like(q) for q in p], [torch.zeros_like(q) for q in p])
    adam_update(p, g, torch.tensor([1.0, 0.0], dtype=torch.float64), 0.01, moments, t=1)
    for q, q0, gq, m, v in zip(p, before, g, *moments):
        expected = q0[0] - 0.01 * gq[0] / (gq[0].abs() + 1e-8)
        torch.testing.assert_close(q[0], expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(m[0], 0.1 * gq[0], rtol=0, atol=1e-15)
        torch.testing.assert_close(v[0], 0.001 * gq[0] ** 2, rtol=0, atol=1e-15)
        assert torch.equal(q[1], q0[1]) and not m[1].any() and not v[1].any()  # masked: weights and moments kept


def test_preconditioned_gd_step_is_lr_over_the_whitened_norm():
    """With Sigma = I (P = I) the update is plain gradient descent with step lr / max(1, |theta|^2)."""
    p, g = _two_members()
    cov = precond = torch.eye(2, dtype=torch.float64)
    sq = whitened_sq_norm(p, cov)
    np.testing.assert_allclose(sq.numpy(), [1 + 4 + 1 + 1 + 1, 0.25 + 1 + 1 + 4 + 0.25])  # |W1|^2 + |W2|^2
    small = [0.1 * q for q in p]  # |theta|^2 < 1: the step is lr itself
    expected_small = [q - 0.5 * gq for q, gq in zip(small, g)]
    preconditioned_gd_update(small, list(g), torch.ones(2, dtype=torch.float64), 0.5, precond, cov)
    for q, e in zip(small, expected_small):
        torch.testing.assert_close(q, e, rtol=0, atol=1e-15)
    expected = [q - (0.5 / sq).view(-1, 1, 1) * gq for q, gq in zip(p, g)]
    preconditioned_gd_update(p, list(g), torch.ones(2, dtype=torch.float64), 0.5, precond, cov)
    for q, e in zip(p, expected):
        torch.testing.assert_close(q, e, rtol=0, atol=1e-15)


def test_preconditioned_gd_multiplies_the_first_layer_gradient_by_the_preconditioner():
    p, g = _two_members()
    precond = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    cov = torch.eye(2, dtype=torch.float64)
    tiny = [1e-3 * q for q in p]
    expected_first = tiny[0] - 1.0 * (g[0] @ precond)
    preconditioned_gd_update(tiny, list(g), torch.ones(2, dtype=torch.float64), 1.0, precond, cov)
    torch.testing.assert_close(tiny[0], expected_first, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------- stopping rules


def test_stopping_rules_by_hand():
    assert converged_by_tol(torch.tensor([1e-8, 1e-7, 1.0]), 1e-7).tolist() == [True, False, False]  # strict
    full, mini = TrainSettings(fit_tol=0.0, max_steps=10), TrainSettings(fit_tol=0.0, max_steps=10, batch_size=2)
    assert fit_check_due(full, False, False, 3)  # full batch: every step
    assert not fit_check_due(mini, True, False, 3) and fit_check_due(mini, True, True, 3)  # minibatch: epoch ends
    assert fit_check_due(mini, True, False, 10)  # ... and the last step
    assert not fit_check_due(TrainSettings(max_steps=10), False, True, 10)  # no fit_tol: never
    assert reached_max_steps(10, full) and not reached_max_steps(9, full)
    assert all_stopped(torch.tensor([False, False])) and not all_stopped(torch.tensor([False, True]))


def test_fit_rule_divides_the_mse_by_the_scale_and_counts_label_errors():
    arch = Architecture((1, 1))  # out = w x
    x = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    params = [torch.tensor([[[1.0]], [[0.0]]], dtype=torch.float64)]
    y = torch.tensor([[[1.0], [2.5]], [[1.0], [2.0]]], dtype=torch.float64)
    # member 0: MSE (0 + 0.25) / 2 = 0.125; member 1: (1 + 4) / 2 = 2.5
    settings = TrainSettings(optimizer="gd", fit_tol=0.25)
    problem = training_problem(arch, x, y, settings, fit_scale=torch.tensor([0.5, 10.0]), dtype=torch.float64)
    assert fitted_by_fit_tol(problem, settings, params).tolist() == [True, True]  # 0.25 and 0.25: at most fit_tol
    problem = training_problem(arch, x, y, settings, dtype=torch.float64)  # default scale: the targets' variance
    np.testing.assert_allclose(problem.target_scale.numpy(), [0.5625, 0.25])
    assert fitted_by_fit_tol(problem, settings, params).tolist() == [True, False]  # 0.222 and 10
    classes = Architecture((1, 2))
    labels = torch.tensor([[0, 1], [1, 1]])
    w = [torch.tensor([[[-1.0], [1.0]], [[-1.0], [1.0]]], dtype=torch.float64)]  # predicts class 1 for x > 0
    settings = TrainSettings(optimizer="gd", loss="cross_entropy", fit_tol=0.0)
    problem = training_problem(classes, x, labels, settings, dtype=torch.float64)
    assert problem.target_scale is None
    assert fitted_by_fit_tol(problem, settings, w).tolist() == [False, True]  # member 0 gets 1 of 2 wrong


# --------------------------------------------------------------------------- minibatch order and the step


def test_minibatches_are_one_permutation_per_epoch_without_the_short_last_batch():
    order = MinibatchOrder(10, 4, seed=3, device="cpu")
    batches = [order.next() for _ in range(5)]
    assert [new for _, new in batches] == [True, False, True, False, True]
    first, second = (torch.cat([batches[k][0], batches[k + 1][0]]) for k in (0, 2))
    assert len(set(first.tolist())) == 8 and len(set(second.tolist())) == 8  # 2 of 10 dropped per epoch
    assert not torch.equal(first, second)  # a fresh permutation per epoch
    again = MinibatchOrder(10, 4, seed=3, device="cpu")
    assert all(torch.equal(again.next()[0], idx) for idx, _ in batches)  # seeded
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, perm[:8])


def test_the_last_step_applies_no_update():
    x, y = _problem(12, d=3, members=2)
    arch = Architecture((3, 4, 1))
    params = stack_members([init_member(arch, 0.1, np.random.default_rng(i)) for i in range(2)], torch.float64,
                           "cpu")
    settings = TrainSettings(optimizer="gd", lr=0.01, max_steps=1, tol=0.0)
    problem = training_problem(arch, torch.tensor(x), torch.tensor(y), settings, dtype=torch.float64)
    state = initial_state(problem, settings, params)
    assert train_step(problem, settings, state, 0)  # step 0: an update
    moved = [p.detach().clone() for p in state.params]
    assert not all(torch.equal(a, b) for a, b in zip(moved, params)) and state.steps.tolist() == [1, 1]
    assert not train_step(problem, settings, state, 1)  # step max_steps: stop, no update
    assert all(torch.equal(a, b) for a, b in zip(state.params, moved)) and state.steps.tolist() == [1, 1]
    assert torch.isfinite(state.criterion).all() and state.active.all()


@pytest.mark.parametrize("kwargs", [
    dict(optimizer="adam", lr=0.01, max_steps=40, tol=1e-6, fit_tol=1e-3, batch_size=5, batch_seed=11),
    dict(optimizer="preconditioned_gd", lr=1.0, max_steps=60, tol=1e-9),
])
def test_train_ensemble_is_train_with_those_settings(kwargs):
    x, y = _problem(12, d=3, members=3)
    arch = Architecture((3, 4, 1))
    params = stack_members([init_member(arch, 0.1, np.random.default_rng(i)) for i in range(3)], torch.float64,
                           "cpu")
    x, y = torch.tensor(x), torch.tensor(y)
    a = train_ensemble(arch, params, x, y, checkpoints=[0, 2], **kwargs)
    b = train(arch, params, x, y, TrainSettings(**kwargs), checkpoints=[0, 2])
    for pa, pb in zip(a.params + a.checkpoints[1], b.params + b.checkpoints[1]):
        assert torch.equal(pa, pb)
    np.testing.assert_array_equal(a.steps, b.steps)
    np.testing.assert_array_equal(a.final_loss, b.final_loss)


# --------------------------------------------------------------------------- batching across sample sizes


def _across_n_case(arch, loss, counts, members_seed=20):
    """Members with their own sample counts: shared inputs (max(counts), d), targets per member."""
    rng = np.random.default_rng(members_seed)
    n_max, d = max(counts), arch.widths[0]
    x = torch.tensor(rng.standard_normal((n_max, d)))
    if loss == "cross_entropy":
        y = torch.tensor(rng.integers(0, arch.widths[-1], (len(counts), n_max)))
    else:
        y = torch.tensor(rng.standard_normal((len(counts), n_max, arch.widths[-1])))
    params = stack_members([init_member(arch, 0.5, np.random.default_rng(members_seed + i))
                            for i in range(len(counts))], torch.float64, "cpu")
    return x, y, params


@pytest.mark.parametrize("arch,settings", [
    (Architecture((4, 6, 1)), TrainSettings(optimizer="preconditioned_gd", lr=1.0, max_steps=300, tol=1e-9)),
    (Architecture((4, 6, 1), activation="relu", bias=True),
     TrainSettings(optimizer="adam", lr=0.02, max_steps=120, tol=1e-6, fit_tol=1e-3)),
    (Architecture((4, 6, 3), activation="tanh", bias=True),
     TrainSettings(optimizer="adam", lr=0.05, max_steps=150, tol=1e-6, loss="cross_entropy", fit_tol=0.0)),
    (Architecture((4, 5, 1), activation="tanh"), TrainSettings(optimizer="gd", lr=0.05, max_steps=80, tol=1e-9)),
])
def test_members_of_several_sample_sizes_train_as_at_their_own_n(arch, settings):
    """Padded to the largest n with a sample mask: weights, steps, criterion and losses as when each n is
    trained alone (to 1e-10: only summation order differs); padded rows' values never matter."""
    counts = [5, 8, 8, 12, 5]
    x, y, params = _across_n_case(arch, settings.loss, counts)
    batch = train(arch, params, x, y, settings, sample_counts=counts)
    garbage = y.clone()
    for b, n in enumerate(counts):
        garbage[b, n:] = 1 if y.dtype == torch.long else 1e3
    padded_differently = train(arch, params, x, garbage, settings, sample_counts=counts)
    for pa, pb in zip(batch.params, padded_differently.params):
        assert torch.equal(pa, pb)
    for n in sorted(set(counts)):
        idx = [b for b, c in enumerate(counts) if c == n]
        alone = train(arch, [p[idx] for p in params], x[:n], y[idx, :n], settings)
        for pb, pa in zip(batch.params, alone.params):
            torch.testing.assert_close(pb[idx], pa, rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(batch.steps[idx], alone.steps)
        np.testing.assert_array_equal(batch.converged[idx], alone.converged)
        for name in ("criterion", "initial_loss", "final_loss"):
            np.testing.assert_allclose(getattr(batch, name)[idx], getattr(alone, name), rtol=1e-10, atol=1e-12)
    assert batch.steps.min() < settings.max_steps or settings.optimizer == "gd"  # some member stopped early


def test_sample_size_statistics_are_those_of_each_n_alone():
    arch = Architecture((3, 4, 1))
    x, y, _ = _across_n_case(arch, "mse", [4, 7, 7])
    settings = TrainSettings(fit_tol=0.1)
    problem = training_problem(arch, x, y, settings, dtype=torch.float64, sample_counts=[4, 7, 7])
    assert problem.mask.tolist()[0] == [True] * 4 + [False] * 3 and problem.mask[1:].all()
    alone = training_problem(arch, x[:4], y[:1, :4], settings, dtype=torch.float64)
    for name in ("precond", "cov", "cross", "target_scale"):
        assert torch.equal(getattr(problem, name)[0], getattr(alone, name)[0] if name in ("cross", "target_scale")
                           else getattr(alone, name))
    with pytest.raises(ValueError, match="full-batch training only"):
        training_problem(arch, x, y, TrainSettings(optimizer="adam", batch_size=5), sample_counts=[4, 7, 7])
    with pytest.raises(ValueError, match="1 to 7 samples"):
        training_problem(arch, x, y, settings, sample_counts=[4, 8, 7])


@pytest.mark.parametrize("sample_counts", [None, [6, 9, 9, 12]])
def test_asking_whether_anyone_trains_every_k_steps_changes_nothing(sample_counts):
    """sync_every = k: the host asks "any member still active?" every k steps; stopped members are frozen
    by the mask, so weights, steps and criterion are bit for bit those of asking every step."""
    arch = Architecture((4, 6, 3), activation="relu", bias=True)
    x, y, params = _across_n_case(arch, "cross_entropy", [12] * 4 if sample_counts is None else sample_counts)
    settings = TrainSettings(optimizer="adam", lr=0.05, max_steps=400, tol=1e-6, loss="cross_entropy", fit_tol=0.0)
    every = train(arch, params, x, y, settings, sample_counts=sample_counts, checkpoints=[0, 10, 390])
    assert every.converged.all() and every.steps.max() < 390  # all stopped well before max_steps
    for k in (7, 50):
        sparse = train(arch, params, x, y, settings, sample_counts=sample_counts, checkpoints=[0, 10, 390],
                       sync_every=k)
        for pa, pb in zip(every.params + every.checkpoints[2], sparse.params + sparse.checkpoints[2]):
            assert torch.equal(pa, pb)
        np.testing.assert_array_equal(every.steps, sparse.steps)
        np.testing.assert_array_equal(every.criterion, sparse.criterion)
    with pytest.raises(ValueError, match="sync_every"):
        train(arch, params, x, y, settings, sync_every=0)
