"""Full-batch training of a batched ensemble, one stopping decision per member.

Members are independent: the total loss is the sum of the members' losses, every
optimizer below acts elementwise or per member, and a member that meets its
stopping rule is frozen. So a member's weights do not depend on the batch it was
trained in (up to floating-point summation order).

Optimizers
- ``gd``: plain gradient descent with step ``lr``.
- ``adam``: full-batch Adam (beta1 0.9, beta2 0.999, eps 1e-8).
- ``preconditioned_gd``: gradient descent whose first-layer gradient is multiplied
  on the right by P = (X^T X / n)^+. P is a function of X^T X, so the update stays
  in the row space of X, exactly like plain gradient descent: from a vanishing
  initialisation a linear network still converges to the minimum-norm solution.
  But the curvature along the data directions becomes 1, which removes the
  1/lambda_min(X^T X) slowdown that makes plain gradient descent stall near n = d.
  This is exactly plain gradient descent on the network fed with whitened inputs
  (Sigma^{+1/2} x on the row space). The step of member m is
  lr / max(1, |theta_m|^2_white), where |theta|^2_white = tr(W_1 Sigma W_1^T) + sum of
  the other layers' squared weights is the squared weight norm in those whitened
  coordinates: the loss curvature of a linear network grows like it, so every
  member's step stays stable whatever the size of its solution.

Stopping rules (a member stops at the first that holds, or at max_steps):
- convergence: for linear networks trained on MSE, the relative distance of the
  end-to-end map to the least-squares solution restricted to the row space of X,
  |P grad_beta| / |beta| < tol (it is 0 exactly at the minimum-norm fit, whatever
  the optimizer); for other networks the relative gradient norm |grad| / |theta| < tol;
- fit (when ``fit_tol`` is given): the training error is at most fit_tol
  (regression: MSE over ``fit_scale``, the member's noise variance in the pipeline, else
  the variance of its noisy targets; classification: 0-1 error).

Layout: :class:`TrainSettings` says how to train, :func:`training_problem` holds the data and the
statistics the steps use, :func:`initial_state` the weights and optimizer moments; :func:`train`
loops :func:`train_step`, which takes :func:`gradients`, applies the stopping rules
(:func:`converged_by_tol`; :func:`fitted_by_fit_tol` when :func:`fit_check_due`;
:func:`reached_max_steps`; :func:`all_stopped`) and then :func:`apply_update`, one function per
optimizer (:func:`gd_update`, :func:`preconditioned_gd_update`, :func:`adam_update`).
:func:`diverged_members` judges the result afterwards. :func:`train_ensemble` is ``train`` with the
settings as keywords.

Batching across sample sizes (``sample_counts``): members with different n train in one batch on
inputs padded to the largest n; member b sees the first ``sample_counts[b]`` rows only. The sample
mask (``TrainingProblem.mask``) enters the loss and its gradients (:func:`gradients`), the fit rule
(:func:`fitted_by_fit_tol`, :func:`training_error`) and :func:`member_loss`, each a mean over the
member's own rows; the data statistics (preconditioner, X^T X / n, X^T Y / n, the targets' variance)
are computed per sample size exactly as for that n alone. The updates act per member already. Full
batch only: a minibatch order belongs to one n. With no ``sample_counts`` the unmasked code runs,
operation for operation as before.

Host synchronisation: :func:`all_stopped` is the one host sync of a step; ``train(sync_every=k)``
asks it every k steps only (on an accelerator). Member-level stopping stays exact: a stopped member
is frozen by the update's mask (weights, optimizer moments, step count, criterion), so the at most
k - 1 steps run after the last member stopped change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from alignlib.ensembles.networks import Architecture, end_to_end, forward

OPTIMIZERS = ("preconditioned_gd", "gd", "adam")


@dataclass
class TrainResult:
    params: list[torch.Tensor]
    steps: np.ndarray  # (B,) updates applied
    converged: np.ndarray  # (B,) bool: a stopping rule held before max_steps
    criterion: np.ndarray  # (B,) final value of the convergence criterion
    initial_loss: np.ndarray | None = None  # (B,) training loss at the initialisation
    final_loss: np.ndarray | None = None  # (B,) training loss of the returned weights
    diverged: np.ndarray | None = None  # (B,) bool: see diverged_members
    # with ``checkpoints``: the optimizer step count of each checkpoint, and the members' weights there
    checkpoint_steps: np.ndarray | None = None  # (C,)
    checkpoints: list[list[torch.Tensor]] | None = None  # C lists of batched parameters


def input_preconditioner(x: torch.Tensor, rtol: float = 1e-10) -> torch.Tensor:
    """(X^T X / n)^+ via an eigendecomposition, cutting eigenvalues below rtol * max.

    ``x`` is (n, d) or batched (B, n, d).
    """
    n = x.shape[-2]
    cov = x.transpose(-1, -2) @ x / n
    evals, evecs = torch.linalg.eigh(cov)
    keep = evals > rtol * evals.amax(dim=-1, keepdim=True)
    inv = torch.where(keep, 1.0 / torch.where(keep, evals, torch.ones_like(evals)), torch.zeros_like(evals))
    return (evecs * inv.unsqueeze(-2)) @ evecs.transpose(-1, -2)


def whitened_sq_norm(params, cov):
    """tr(W_1 Sigma W_1^T) + sum_{l>1} |W_l|^2 per member: the squared weight norm in whitened inputs."""
    first = torch.einsum("bhd,bde,bhe->b", params[0], cov.expand(params[0].shape[0], -1, -1), params[0])
    return first + sum(p.flatten(1).pow(2).sum(1) for p in params[1:])


def sample_mask(counts, n_samples: int, device=None) -> torch.Tensor:
    """(B, n_samples) bool: sample i belongs to member b when i < counts[b]."""
    counts = torch.as_tensor(counts, device=device)
    return torch.arange(n_samples, device=counts.device) < counts[:, None]


def mean_over_samples(values: torch.Tensor, mask: torch.Tensor | None = None, counts=None) -> torch.Tensor:
    """Per member, the mean of ``values`` (B, n) over its samples: all n without a mask, else the masked
    ones (``mask`` (B, n) bool, ``counts`` (B,) their number, in ``values``' dtype)."""
    if mask is None:
        return values.mean(-1)
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(-1) / counts


def training_error(out: torch.Tensor, y: torch.Tensor, loss: str, target_scale, mask=None,
                   counts=None) -> torch.Tensor:
    """Per member: MSE / target_scale for regression targets, 0-1 error for class labels (over the
    member's own samples with a sample ``mask``)."""
    if y.dtype == torch.long:
        return mean_over_samples((out.argmax(-1) != y).to(out.dtype), mask, counts)
    return mean_over_samples(((out - y) ** 2).sum(-1), mask, counts) / target_scale


# A member whose final training loss exceeds this many times its initial loss has diverged.
DIVERGENCE_FACTOR = 100.0


def member_loss(arch, params, x, y, loss: str, chunk: int | None = None, mask=None, counts=None) -> torch.Tensor:
    """Per member, the training loss being minimised (float64): half the mean squared error, or cross-entropy
    (over the member's own samples with a sample ``mask``)."""
    with torch.no_grad():
        out = chunked_forward(arch, params, x, chunk).double()
        counts = None if counts is None else counts.double()
        if loss == "cross_entropy":
            return mean_over_samples(torch.nn.functional.cross_entropy(out.transpose(1, 2), y, reduction="none"),
                                     mask, counts)
        return 0.5 * mean_over_samples(((out - y.double()) ** 2).sum(-1), mask, counts)


def diverged_members(initial_loss, final_loss, params, factor: float = DIVERGENCE_FACTOR) -> np.ndarray:
    """(B,) bool: a member diverged when its loss or a weight is NaN/inf, or its final loss is
    more than ``factor`` times its initial one (training that made the fit far worse)."""
    initial = torch.as_tensor(initial_loss, dtype=torch.float64)
    final = torch.as_tensor(final_loss, dtype=torch.float64)
    finite_weights = torch.stack([torch.isfinite(p.detach()).flatten(1).all(1).cpu() for p in params]).all(0)
    bad = ~torch.isfinite(initial) | ~torch.isfinite(final) | ~finite_weights
    blown_up = final > factor * initial.clamp_min(torch.finfo(torch.float64).tiny)
    return (bad | blown_up).numpy()


def steps_per_epoch(n_samples: int, batch_size: int | None) -> int:
    """Optimizer steps in one epoch: 1 for full-batch training; with minibatches n // batch_size,
    the batches one permutation of the training set gives in ``train_ensemble`` (a last batch
    shorter than batch_size is dropped, and the next epoch starts with a fresh permutation)."""
    if batch_size is None or batch_size >= n_samples:
        return 1
    return n_samples // batch_size


def checkpoint_schedule(checkpoints, n_samples: int, batch_size: int | None, unit: str = "auto") -> np.ndarray:
    """The optimizer step counts of ``checkpoints`` (sorted, distinct, >= 0).

    ``unit``: ``step`` (step counts as given), ``epoch`` (checkpoint e is e x steps_per_epoch),
    or ``auto`` (epoch with minibatches, else step; in full-batch training both are the same).
    """
    if unit not in ("auto", "step", "epoch"):
        raise ValueError(f"unknown checkpoint unit {unit!r}; known: ['auto', 'step', 'epoch']")
    at = np.asarray(list(checkpoints), dtype=np.int64)
    if at.ndim != 1 or (at < 0).any() or (np.diff(at) <= 0).any():
        raise ValueError(f"checkpoints must be sorted, distinct step or epoch counts >= 0, got {list(checkpoints)}")
    return at * (1 if unit == "step" else steps_per_epoch(n_samples, batch_size))


def _record_checkpoints(saved: list, schedule: np.ndarray, step: int, params) -> None:
    """Append copies of ``params`` once for every checkpoint of ``schedule`` at this step count."""
    while len(saved) < len(schedule) and schedule[len(saved)] <= step:
        saved.append([p.detach().clone() for p in params])


def _linear_gradients(arch, params, cov, cross, precond):
    """Loss gradients of a linear network from the sufficient statistics of the data.

    With L = (1/2n) sum |beta x_i - y_i|^2, dL/dbeta = beta Sigma - C^T where
    Sigma = X^T X / n and C = X^T Y / n; this costs O(d^2) per member, not O(n d h).
    """
    beta = end_to_end(arch, params)
    grad_beta = beta @ cov - cross.transpose(-1, -2)
    grads = torch.autograd.grad(beta, params, grad_outputs=grad_beta)
    step_beta = grad_beta @ precond
    criterion = step_beta.flatten(1).norm(dim=1) / beta.detach().flatten(1).norm(dim=1).clamp_min(1e-300)
    return list(grads), criterion


def chunked_forward(arch, params, x, chunk: int | None = None) -> torch.Tensor:
    """The network output on all of x, computed ``chunk`` samples at a time to bound memory."""
    n = x.shape[-2]
    if chunk is None or chunk >= n:
        return forward(arch, params, x)[-1]
    parts = [forward(arch, params, x[..., i:i + chunk, :])[-1] for i in range(0, n, chunk)]
    return torch.cat(parts, dim=-2)


def _generic_gradients(arch, params, x, y, loss, mask=None, counts=None):
    out = forward(arch, params, x)[-1]
    if loss == "cross_entropy":
        per_member = mean_over_samples(torch.nn.functional.cross_entropy(out.transpose(1, 2), y, reduction="none"),
                                       mask, counts)
    else:
        per_member = 0.5 * mean_over_samples(((out - y) ** 2).sum(dim=-1), mask, counts)
    grads = torch.autograd.grad(per_member.sum(), params)
    gnorm = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads))
    pnorm = torch.sqrt(sum(p.detach().flatten(1).pow(2).sum(1) for p in params))
    return list(grads), gnorm / pnorm.clamp_min(1e-300), out.detach()


@dataclass(frozen=True)
class TrainSettings:
    """How an ensemble is trained: the optimizer, its step size and the stopping rules.

    ``optimizer``: one of :data:`OPTIMIZERS`; ``lr``: its step size; ``max_steps``: the most
    updates a member gets; ``tol``: the convergence rule's threshold; ``loss``: ``mse`` or
    ``cross_entropy``; ``fit_tol``: the fit rule's threshold (None: no fit rule);
    ``batch_size``: minibatches of that size (None or >= n: full batch); ``batch_seed``: seeds the
    minibatch order, shared by all members.
    """

    optimizer: str = "preconditioned_gd"
    lr: float = 1.0
    max_steps: int = 20000
    tol: float = 1e-7
    loss: str = "mse"
    fit_tol: float | None = None
    batch_size: int | None = None
    batch_seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {list(OPTIMIZERS)}")
        if self.loss not in ("mse", "cross_entropy"):
            raise ValueError(f"unknown loss {self.loss!r}; known: ['mse', 'cross_entropy']")

    def minibatch(self, n_samples: int) -> bool:
        """Whether training on ``n_samples`` samples uses minibatches."""
        return self.batch_size is not None and self.batch_size < n_samples


@dataclass
class TrainingProblem:
    """The network and data of one batched training run, with the data statistics its steps use.

    ``precond``, ``cov``: (X^T X / n)^+ and X^T X / n (preconditioned_gd and the linear path);
    ``cross``: X^T Y / n (the linear path); ``target_scale``: the fit rule's divisor of a
    regression MSE (None: no fit rule, or class labels).
    """

    arch: Architecture
    x: torch.Tensor
    y: torch.Tensor
    minibatch: bool
    analytic: bool  # a linear network on MSE, full batch: gradients from sufficient statistics
    precond: torch.Tensor | None = None
    cov: torch.Tensor | None = None
    cross: torch.Tensor | None = None
    target_scale: torch.Tensor | None = None
    # batching across sample sizes: (B, n) bool, member b's samples, and (B,) their number (x's dtype)
    mask: torch.Tensor | None = None
    counts: torch.Tensor | None = None

    @property
    def n_samples(self) -> int:
        return self.x.shape[-2]


def check_settings(arch: Architecture, settings: TrainSettings, n_samples: int) -> None:
    """Raise ValueError when ``settings`` cannot train ``arch`` on ``n_samples`` samples."""
    if settings.optimizer == "preconditioned_gd" and (arch.bias or arch.conv):
        raise ValueError("preconditioned_gd is defined for dense networks without biases")
    if settings.minibatch(n_samples) and settings.optimizer == "preconditioned_gd":
        raise ValueError("preconditioned_gd is a full-batch method; set training.batch_size to null")


def training_problem(arch: Architecture, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
                     fit_scale=None, dtype=None, device=None, sample_counts=None) -> TrainingProblem:
    """The problem with the data statistics ``settings`` need (see ``train`` for ``fit_scale`` and
    ``sample_counts``)."""
    if sample_counts is not None:
        return _masked_problem(arch, x, y, settings, fit_scale, dtype, device, sample_counts)
    minibatch = settings.minibatch(x.shape[-2])
    problem = TrainingProblem(arch, x, y, minibatch, analytic=arch.is_linear and settings.loss == "mse"
                              and not minibatch)
    if settings.optimizer == "preconditioned_gd" or problem.analytic:
        problem.precond = input_preconditioner(x)
        problem.cov = x.transpose(-1, -2) @ x / x.shape[-2]
    if problem.analytic:
        problem.cross = torch.matmul(x.transpose(-1, -2), y) / x.shape[-2]
    if settings.fit_tol is not None and y.dtype != torch.long:
        problem.target_scale = (y.var(dim=-2, unbiased=False).sum(-1) if fit_scale is None
                                else torch.as_tensor(fit_scale, dtype=dtype, device=device)).clamp_min(1e-300)
    return problem


def sample_size_groups(counts) -> dict[int, np.ndarray]:
    """{n: indices of the members with n samples}, n ascending."""
    counts = np.asarray(counts)
    return {int(n): np.flatnonzero(counts == n) for n in np.unique(counts)}


def _masked_problem(arch, x, y, settings, fit_scale, dtype, device, sample_counts) -> TrainingProblem:
    """The problem of members with their own sample counts: the mask, and every data statistic computed
    per sample size on exactly that size's rows (the same operations as for that n alone)."""
    counts = np.asarray(sample_counts, dtype=np.int64)
    n_max, n_members = x.shape[-2], y.shape[0]
    if counts.shape != (n_members,) or counts.min() < 1 or counts.max() > n_max:
        raise ValueError(f"sample_counts must give each of the {n_members} members 1 to {n_max} samples, "
                         f"got {counts.tolist()}")
    if any(settings.minibatch(int(n)) for n in np.unique(counts)):
        raise ValueError("batching across sample sizes is for full-batch training only (a minibatch order "
                         "belongs to one n): set training.batch_size to null or train each n apart")
    groups = sample_size_groups(counts)
    problem = TrainingProblem(arch, x, y, minibatch=False, analytic=arch.is_linear and settings.loss == "mse",
                              mask=sample_mask(counts, n_max, x.device),
                              counts=torch.as_tensor(counts, dtype=x.dtype, device=x.device))

    def rows(n, idx):  # the inputs of the members idx, their first n rows
        return x[:n] if x.dim() == 2 else x[torch.as_tensor(idx, device=x.device), :n]

    def per_member(stat):  # (B, ...) from stat(n, idx) of each sample size
        out = None
        for n, idx in groups.items():
            value = stat(n, idx)
            if out is None:
                out = torch.empty((n_members, *value.shape[-2:]), dtype=value.dtype, device=value.device)
            out[torch.as_tensor(idx, device=value.device)] = value
        return out

    if settings.optimizer == "preconditioned_gd" or problem.analytic:
        problem.precond = per_member(lambda n, idx: input_preconditioner(rows(n, idx)))
        problem.cov = per_member(lambda n, idx: rows(n, idx).transpose(-1, -2) @ rows(n, idx) / n)
    if problem.analytic:
        problem.cross = per_member(lambda n, idx: torch.matmul(
            rows(n, idx).transpose(-1, -2), y[torch.as_tensor(idx, device=y.device), :n]) / n)
    if settings.fit_tol is not None and y.dtype != torch.long:
        if fit_scale is None:
            scale = torch.empty(n_members, dtype=y.dtype, device=y.device)
            for n, idx in groups.items():
                index = torch.as_tensor(idx, device=y.device)
                scale[index] = y[index, :n].var(dim=-2, unbiased=False).sum(-1)
        else:
            scale = torch.as_tensor(fit_scale, dtype=dtype, device=device)
        problem.target_scale = scale.clamp_min(1e-300)
    return problem


class MinibatchOrder:
    """Minibatch indices: one permutation of the training set per epoch from a seeded generator,
    a last batch shorter than ``batch_size`` dropped."""

    def __init__(self, n_samples: int, batch_size: int, seed: int, device):
        self.n_samples, self.batch_size, self.device = n_samples, batch_size, device
        self.rng = torch.Generator().manual_seed(int(seed))
        self.order, self.position = None, n_samples

    def next(self) -> tuple[torch.Tensor, bool]:
        """(indices of the next batch, whether a new epoch starts with it)."""
        epoch_end = self.position + self.batch_size > self.n_samples
        if epoch_end:
            self.order, self.position = torch.randperm(self.n_samples, generator=self.rng).to(self.device), 0
        idx = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return idx, epoch_end


@dataclass
class TrainState:
    """What changes while training: the weights, who is still training, and the optimizer's memory."""

    params: list[torch.Tensor]
    active: torch.Tensor  # (B,) bool: no stopping rule has held yet
    steps: torch.Tensor  # (B,) updates applied
    criterion: torch.Tensor  # (B,) the convergence criterion at the member's last active step
    moments: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None  # adam: first and second moments
    batches: MinibatchOrder | None = None
    saved: list = field(default_factory=list)  # the checkpoints recorded so far


def initial_state(problem: TrainingProblem, settings: TrainSettings, params: list[torch.Tensor]) -> TrainState:
    """Copies of ``params`` to train, every member active, and fresh optimizer moments."""
    params = [p.detach().clone().requires_grad_(True) for p in params]
    n_members, device, dtype = params[0].shape[0], params[0].device, params[0].dtype
    state = TrainState(params=params,
                       active=torch.ones(n_members, dtype=torch.bool, device=device),
                       steps=torch.zeros(n_members, dtype=torch.long, device=device),
                       criterion=torch.full((n_members,), float("inf"), dtype=dtype, device=device))
    if settings.optimizer == "adam":
        state.moments = ([torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params])
    if problem.minibatch:
        state.batches = MinibatchOrder(problem.n_samples, settings.batch_size, settings.batch_seed, device)
    return state


# ---------------------------------------------------------------------------------- gradients


def gradients(problem: TrainingProblem, settings: TrainSettings, state: TrainState):
    """(gradients, convergence criterion (B,), full-batch output or None, epoch_end) at the current weights.

    Linear networks on MSE: from the data's sufficient statistics; minibatches: on the next
    batch, with the criterion +inf (the gradient-norm rule is off); otherwise on all samples.
    """
    params = state.params
    if problem.analytic:
        grads, crit = _linear_gradients(problem.arch, params, problem.cov, problem.cross, problem.precond)
        return grads, crit.detach(), None, False
    if problem.minibatch:
        idx, epoch_end = state.batches.next()
        grads, _, _ = _generic_gradients(problem.arch, params, problem.x[..., idx, :], problem.y[:, idx],
                                         settings.loss)
        crit = torch.full((params[0].shape[0],), float("inf"), dtype=params[0].dtype, device=params[0].device)
        return grads, crit.detach(), None, epoch_end
    grads, crit, out = _generic_gradients(problem.arch, params, problem.x, problem.y, settings.loss, problem.mask,
                                          problem.counts)
    return grads, crit.detach(), out, False


# ---------------------------------------------------------------------------------- stopping rules


def converged_by_tol(criterion: torch.Tensor, tol: float) -> torch.Tensor:
    """(B,) bool: the convergence criterion is below ``tol``."""
    return criterion < tol


def fit_check_due(settings: TrainSettings, minibatch: bool, epoch_end: bool, step: int) -> bool:
    """Whether the fit rule is checked at this step: every step in full-batch training; with
    minibatches once per epoch and at the last step."""
    return settings.fit_tol is not None and (not minibatch or epoch_end or step == settings.max_steps)


def fitted_by_fit_tol(problem: TrainingProblem, settings: TrainSettings, params, out=None) -> torch.Tensor:
    """(B,) bool: the training error on the whole training set is at most ``fit_tol``.

    ``out``: the network's output on all samples when already at hand (else computed here).
    """
    if out is None:
        with torch.no_grad():
            out = chunked_forward(problem.arch, params, problem.x, settings.batch_size)
    return training_error(out, problem.y, settings.loss, problem.target_scale, problem.mask,
                          problem.counts) <= settings.fit_tol


def reached_max_steps(step: int, settings: TrainSettings) -> bool:
    """Whether this step is the last one: every member has had ``max_steps`` updates' chance."""
    return step == settings.max_steps


def all_stopped(active: torch.Tensor) -> bool:
    """Whether no member is still training (a host synchronisation on an accelerator)."""
    return not bool(active.any())


# ---------------------------------------------------------------------------------- optimizers


def _member_view(values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Per-member values (B,) shaped to broadcast against the batched parameter ``p``."""
    return values.view(-1, *([1] * (p.dim() - 1)))


def gd_update(params, grads, mask: torch.Tensor, lr: float) -> None:
    """Plain gradient descent of the members where ``mask`` is 1, in place."""
    for p, g in zip(params, grads):
        p -= _member_view(lr * mask, p) * g


def preconditioned_gd_update(params, grads, mask: torch.Tensor, lr: float, precond: torch.Tensor,
                             cov: torch.Tensor) -> None:
    """Gradient descent with the first layer's gradient times (X^T X / n)^+ and the step of member m
    lr / max(1, |theta_m|^2_white), for the members where ``mask`` is 1, in place."""
    grads[0] = grads[0] @ precond
    sq_norm = whitened_sq_norm(params, cov)
    rate = lr / sq_norm.clamp_min(1.0) * mask
    for p, g in zip(params, grads):
        p -= _member_view(rate, p) * g


def adam_update(params, grads, mask: torch.Tensor, lr: float, moments, t: int) -> None:
    """Adam step ``t`` (beta1 0.9, beta2 0.999, eps 1e-8) of the members where ``mask`` is 1, in place;
    a masked member's moments are left as they are."""
    for p, g, mi, vi in zip(params, grads, *moments):
        keep = _member_view(mask, p)
        mi.mul_(1 - 0.1 * keep).add_(0.1 * keep * g)
        vi.mul_(1 - 0.001 * keep).add_(0.001 * keep * g * g)
        update = (mi / (1 - 0.9**t)) / (torch.sqrt(vi / (1 - 0.999**t)) + 1e-8)
        p -= lr * keep * update


def apply_update(problem: TrainingProblem, settings: TrainSettings, state: TrainState, grads, step: int) -> None:
    """The optimizer's update of the active members after ``step`` steps."""
    mask = state.active.to(state.params[0].dtype)
    with torch.no_grad():
        if settings.optimizer == "preconditioned_gd":
            preconditioned_gd_update(state.params, grads, mask, settings.lr, problem.precond, problem.cov)
        elif settings.optimizer == "gd":
            gd_update(state.params, grads, mask, settings.lr)
        else:  # all members start together, so adam's step count is shared
            adam_update(state.params, grads, mask, settings.lr, state.moments, step + 1)


# ---------------------------------------------------------------------------------- the loop


def train_step(problem: TrainingProblem, settings: TrainSettings, state: TrainState, step: int,
               check_stopped: bool = True) -> bool:
    """Step ``step`` of every member: its gradients, the stopping rules, then the update of the members
    still active. Returns False when training ends here (``max_steps`` reached, or every member stopped:
    asked only with ``check_stopped``, the step's one host synchronisation)."""
    grads, crit, out, epoch_end = gradients(problem, settings, state)
    state.criterion = torch.where(state.active, crit, state.criterion)
    done = converged_by_tol(crit, settings.tol)
    if fit_check_due(settings, problem.minibatch, epoch_end, step):
        done = done | fitted_by_fit_tol(problem, settings, state.params, out)
    state.active = state.active & ~done
    if reached_max_steps(step, settings) or (check_stopped and all_stopped(state.active)):
        return False
    apply_update(problem, settings, state, grads, step)
    state.steps += state.active.long()
    return True


def train(arch: Architecture, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
          settings: TrainSettings, *, fit_scale=None, progress=None, checkpoints=None,
          checkpoint_unit: str = "auto", sample_counts=None, sync_every: int = 1) -> TrainResult:
    """Train every member on inputs x ((n, d) shared, or (B, n, d) per member) and its own targets.

    ``y``: float targets (B, n, out) for ``loss='mse'``, integer labels (B, n) for
    ``loss='cross_entropy'``. ``params`` are batched tensors (leading member axis) and are
    not modified. ``progress``, if given, is called as progress(step, n_active) now and then.

    With minibatches (``settings.batch_size`` < n) the batches come from one permutation per
    epoch, seeded by ``batch_seed`` and shared by all members (so a member's result does not
    depend on its batch). Then the gradient-norm rule is off and the fit rule is checked once
    per epoch on the whole training set.

    ``fit_scale`` (B,): what a regression training MSE is divided by in the fit rule, e.g. each
    member's noise variance, so that "fits" means "has memorised its noise"; default: the
    variance of the member's noisy targets.

    ``checkpoints`` (sorted step or epoch counts, see ``checkpoint_schedule`` for
    ``checkpoint_unit``): also return every member's weights after that many optimizer steps
    (``checkpoints``, at ``checkpoint_steps``); checkpoint 0 is the initialisation, and a member
    that has stopped (or every member, past the last step) keeps its final weights. Recording
    copies weights only, so the training itself is the same with or without checkpoints.

    ``sample_counts`` (B,): member b trains on the first ``sample_counts[b]`` rows of x and of its targets
    (the rest is padding, any finite values), full batch only; every mean over samples (loss, gradients,
    fit rule, losses) is then over the member's own rows. None: every member on all rows.

    ``sync_every`` = k: ask whether any member is still training (a host synchronisation on an
    accelerator) every k steps only; the results are the same for every k (stopped members are frozen).
    """
    n_samples = x.shape[-2]
    if sync_every < 1:
        raise ValueError(f"sync_every must be >= 1, got {sync_every}")
    check_settings(arch, settings, n_samples if sample_counts is None else int(np.min(sample_counts)))
    problem = training_problem(arch, x, y, settings, fit_scale, params[0].dtype, params[0].device, sample_counts)
    state = initial_state(problem, settings, params)
    initial_loss = member_loss(arch, state.params, x, y, settings.loss, settings.batch_size,  # for divergence
                               problem.mask, problem.counts)
    schedule = None if checkpoints is None else checkpoint_schedule(checkpoints, n_samples, settings.batch_size,
                                                                    checkpoint_unit)
    for step in range(settings.max_steps + 1):
        if schedule is not None:
            _record_checkpoints(state.saved, schedule, step, state.params)
        if not train_step(problem, settings, state, step, check_stopped=step % sync_every == 0):
            break
        if progress is not None and step % 500 == 0:
            progress(step, int(state.active.sum()))
    return _result(problem, settings, state, initial_loss, schedule)


def _result(problem: TrainingProblem, settings: TrainSettings, state: TrainState, initial_loss,
            schedule) -> TrainResult:
    """The TrainResult of a finished run: final losses, divergence, and the checkpoints past the end."""
    params = state.params
    final_loss = member_loss(problem.arch, params, problem.x, problem.y, settings.loss, settings.batch_size,
                             problem.mask, problem.counts)
    if schedule is not None:  # checkpoints after training ended: the final (frozen) weights
        _record_checkpoints(state.saved, schedule, int(schedule[-1]) if len(schedule) else 0, params)
    return TrainResult(
        params=[p.detach() for p in params],
        steps=state.steps.cpu().numpy(),
        converged=(~state.active).cpu().numpy(),
        criterion=state.criterion.cpu().numpy(),
        initial_loss=initial_loss.cpu().numpy(),
        final_loss=final_loss.cpu().numpy(),
        diverged=diverged_members(initial_loss.cpu(), final_loss.cpu(), params),
        checkpoint_steps=schedule,
        checkpoints=None if schedule is None else state.saved,
    )


def train_ensemble(arch: Architecture, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
                   fit_scale=None, progress=None, checkpoints=None, checkpoint_unit: str = "auto",
                   sample_counts=None, sync_every: int = 1, **settings) -> TrainResult:
    """``train`` with the fields of :class:`TrainSettings` as keywords (``optimizer``, ``lr``,
    ``max_steps``, ``tol``, ``loss``, ``fit_tol``, ``batch_size``, ``batch_seed``)."""
    return train(arch, params, x, y, TrainSettings(**settings), fit_scale=fit_scale, progress=progress,
                 checkpoints=checkpoints, checkpoint_unit=checkpoint_unit, sample_counts=sample_counts,
                 sync_every=sync_every)
