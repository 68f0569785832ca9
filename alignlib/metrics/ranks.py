"""Numerical rank at storage precision, shared by the CCA metrics and the precondition checks
(numpy only: importing it loads no torch)."""

from __future__ import annotations

import numpy as np

F64_EPS = float(np.finfo(np.float64).eps)


def rank_tolerance(s_max: float, shape: tuple[int, int], norm: float, rank_eps: float | None = None) -> float:
    """Singular values at or below this are not signal.

    ``s_max * max(shape) * eps64`` bounds the float64 SVD's own error (numpy.linalg.matrix_rank's
    rule). With ``rank_eps`` (the storage dtype's eps) it is at least ``rank_eps * norm``, ``norm``
    the Frobenius norm of the *stored* (uncentred) values: rounding each entry by at most
    rank_eps/2 of itself is a perturbation E with ``||E||_2 <= ||E||_F <= (rank_eps/2) norm``,
    and no singular value moves by more than ``||E||_2`` (Weyl). Unlike ``s_max * max(shape) *
    rank_eps`` this stays meaningful for float16 (eps ~ 1e-3 times 512 probes would discard
    every direction below half the leading one).
    """
    arithmetic = s_max * max(shape) * F64_EPS
    return arithmetic if rank_eps is None else max(arithmetic, rank_eps * norm)
