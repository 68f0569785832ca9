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
"""

from __future__ import annotations

from dataclasses import dataclass

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


def training_error(out: torch.Tensor, y: torch.Tensor, loss: str, target_scale) -> torch.Tensor:
    """Per member: MSE / target_scale for regression targets, 0-1 error for class labels."""
    if y.dtype == torch.long:
        return (out.argmax(-1) != y).to(out.dtype).mean(-1)
    return ((out - y) ** 2).sum(-1).mean(-1) / target_scale


# A member whose final training loss exceeds this many times its initial loss has diverged.
DIVERGENCE_FACTOR = 100.0


def member_loss(arch, params, x, y, loss: str, chunk: int | None = None) -> torch.Tensor:
    """Per member, the training loss being minimised (float64): half the mean squared error, or cross-entropy."""
    with torch.no_grad():
        out = chunked_forward(arch, params, x, chunk).double()
        if loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(-1)
        return 0.5 * ((out - y.double()) ** 2).sum(-1).mean(-1)


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


def _generic_gradients(arch, params, x, y, loss):
    out = forward(arch, params, x)[-1]
    if loss == "cross_entropy":
        per_member = torch.nn.functional.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(-1)
    else:
        per_member = 0.5 * ((out - y) ** 2).sum(dim=-1).mean(dim=-1)
    grads = torch.autograd.grad(per_member.sum(), params)
    gnorm = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads))
    pnorm = torch.sqrt(sum(p.detach().flatten(1).pow(2).sum(1) for p in params))
    return list(grads), gnorm / pnorm.clamp_min(1e-300), out.detach()


def train_ensemble(
    arch: Architecture,
    params: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    optimizer: str = "preconditioned_gd",
    lr: float = 1.0,
    max_steps: int = 20000,
    tol: float = 1e-7,
    loss: str = "mse",
    fit_tol: float | None = None,
    fit_scale: torch.Tensor | None = None,
    batch_size: int | None = None,
    batch_seed: int = 0,
    progress=None,
    checkpoints=None,
    checkpoint_unit: str = "auto",
) -> TrainResult:
    """Train every member on inputs x ((n, d) shared, or (B, n, d) per member) and its own targets.

    ``y``: float targets (B, n, out) for ``loss='mse'``, integer labels (B, n) for
    ``loss='cross_entropy'``. ``params`` are batched tensors (leading member axis) and are
    not modified. ``progress``, if given, is called as progress(step, n_active) now and then.

    ``batch_size`` (< n): minibatches drawn from one permutation per epoch, seeded by
    ``batch_seed`` and shared by all members (so a member's result does not depend on its
    batch). Then the gradient-norm rule is off and the fit rule is checked once per epoch on
    the whole training set.

    ``fit_scale`` (B,): what a regression training MSE is divided by in the fit rule, e.g. each
    member's noise variance, so that "fits" means "has memorised its noise"; default: the
    variance of the member's noisy targets.

    ``checkpoints`` (sorted step or epoch counts, see ``checkpoint_schedule`` for
    ``checkpoint_unit``): also return every member's weights after that many optimizer steps
    (``checkpoints``, at ``checkpoint_steps``); checkpoint 0 is the initialisation, and a member
    that has stopped (or every member, past the last step) keeps its final weights. Recording
    copies weights only, so the training itself is the same with or without checkpoints.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {list(OPTIMIZERS)}")
    if loss not in ("mse", "cross_entropy"):
        raise ValueError(f"unknown loss {loss!r}; known: ['mse', 'cross_entropy']")
    if optimizer == "preconditioned_gd" and (arch.bias or arch.conv):
        raise ValueError("preconditioned_gd is defined for dense networks without biases")
    n_samples = x.shape[-2]
    minibatch = batch_size is not None and batch_size < n_samples
    if minibatch and optimizer == "preconditioned_gd":
        raise ValueError("preconditioned_gd is a full-batch method; set training.batch_size to null")
    params = [p.detach().clone().requires_grad_(True) for p in params]
    n_members = params[0].shape[0]
    device, dtype = params[0].device, params[0].dtype
    analytic = arch.is_linear and loss == "mse" and not minibatch
    if optimizer == "preconditioned_gd" or analytic:
        precond = input_preconditioner(x)
        cov = x.transpose(-1, -2) @ x / x.shape[-2]
    if analytic:
        cross = torch.matmul(x.transpose(-1, -2), y) / x.shape[-2]
    target_scale = None
    if fit_tol is not None and y.dtype != torch.long:
        target_scale = (y.var(dim=-2, unbiased=False).sum(-1) if fit_scale is None
                        else torch.as_tensor(fit_scale, dtype=dtype, device=device)).clamp_min(1e-300)
    if optimizer == "adam":
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]

    if minibatch:
        order_rng = torch.Generator().manual_seed(int(batch_seed))
        order, position = None, n_samples
    initial_loss = member_loss(arch, params, x, y, loss, batch_size)  # for divergence detection
    active = torch.ones(n_members, dtype=torch.bool, device=device)
    steps = torch.zeros(n_members, dtype=torch.long, device=device)
    criterion = torch.full((n_members,), float("inf"), dtype=dtype, device=device)
    schedule = None if checkpoints is None else checkpoint_schedule(checkpoints, n_samples, batch_size,
                                                                    checkpoint_unit)
    saved: list = []
    for step in range(max_steps + 1):
        if schedule is not None:
            _record_checkpoints(saved, schedule, step, params)
        out = None
        if analytic:
            grads, crit = _linear_gradients(arch, params, cov, cross, precond)
        elif minibatch:
            epoch_end = position + batch_size > n_samples
            if epoch_end:
                order, position = torch.randperm(n_samples, generator=order_rng).to(device), 0
            idx = order[position:position + batch_size]
            position += batch_size
            grads, _, _ = _generic_gradients(arch, params, x[..., idx, :], y[:, idx], loss)
            crit = torch.full((n_members,), float("inf"), dtype=dtype, device=device)
        else:
            grads, crit, out = _generic_gradients(arch, params, x, y, loss)
        crit = crit.detach()
        criterion = torch.where(active, crit, criterion)
        done = crit < tol
        if fit_tol is not None and (not minibatch or epoch_end or step == max_steps):
            if out is None:
                with torch.no_grad():
                    out = chunked_forward(arch, params, x, batch_size)
            done = done | (training_error(out, y, loss, target_scale) <= fit_tol)
        active = active & ~done
        if step == max_steps or not bool(active.any()):
            break
        mask = active.to(dtype)
        with torch.no_grad():
            if optimizer == "preconditioned_gd":
                grads[0] = grads[0] @ precond
                sq_norm = whitened_sq_norm(params, cov)
                rate = lr / sq_norm.clamp_min(1.0) * mask
                for p, g in zip(params, grads):
                    p -= rate.view(-1, *([1] * (p.dim() - 1))) * g
            elif optimizer == "gd":
                for p, g in zip(params, grads):
                    p -= (lr * mask).view(-1, *([1] * (p.dim() - 1))) * g
            else:
                t = step + 1  # all members start together, so the step count is shared
                for p, g, mi, vi in zip(params, grads, m, v):
                    keep = mask.view(-1, *([1] * (p.dim() - 1)))
                    mi.mul_(1 - 0.1 * keep).add_(0.1 * keep * g)
                    vi.mul_(1 - 0.001 * keep).add_(0.001 * keep * g * g)
                    update = (mi / (1 - 0.9**t)) / (torch.sqrt(vi / (1 - 0.999**t)) + 1e-8)
                    p -= lr * keep * update
        steps += active.long()
        if progress is not None and step % 500 == 0:
            progress(step, int(active.sum()))
    final_loss = member_loss(arch, params, x, y, loss, batch_size)
    if schedule is not None:  # checkpoints after training ended: the final (frozen) weights
        _record_checkpoints(saved, schedule, int(schedule[-1]) if len(schedule) else 0, params)
    return TrainResult(
        params=[p.detach() for p in params],
        steps=steps.cpu().numpy(),
        converged=(~active).cpu().numpy(),
        criterion=criterion.cpu().numpy(),
        initial_loss=initial_loss.cpu().numpy(),
        final_loss=final_loss.cpu().numpy(),
        diverged=diverged_members(initial_loss.cpu(), final_loss.cpu(), params),
        checkpoint_steps=schedule,
        checkpoints=None if schedule is None else saved,
    )
