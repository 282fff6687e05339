"""MATLAB's ``lsqr(A, b)``: Paige and Saunders' LSQR with MATLAB's defaults and stopping rules."""

import math
from typing import NamedTuple

import torch

from siftflow_nn._checks import check_positive_int, describe_value
from siftflow_nn.matlab._arguments import positive_number

__all__ = ["LSQRResult", "lsqr"]

_EPS = 2.0**-52  # MATLAB's eps
_STAGNATION_STEPS = 3  # MATLAB's maxstagsteps


class LSQRResult(NamedTuple):
    """``[x, flag, relres, iter, resvec] = lsqr(A, b, ...)``.

    - ``x``: ``(n,)`` float64, the solution;
    - ``flag``: 0 converged (``relres <= tol``, or the normal equations' residual
      ``norm(A' r) / (norm(A) norm(r)) <= tol``), 1 ``maxit`` iterations without converging,
      3 stagnated (``x`` changed by less than ``eps`` relative, 3 iterations in a row);
    - ``relres``: ``norm(b - A x) / norm(b)``, LSQR's estimate;
    - ``iterations``: the iteration ``x`` comes from (0 is ``x0 = 0``);
    - ``resvec``: ``(iterations + 1,)`` float64, the estimated ``norm(b - A x)`` of every iterate.
    """

    x: torch.Tensor
    flag: int
    relres: float
    iterations: int
    resvec: torch.Tensor


def lsqr(A: torch.Tensor, b: torch.Tensor, tol: float = 1e-6, maxit: int | None = None) -> LSQRResult:
    """MATLAB's ``lsqr(A, b, tol, maxit)`` from ``x0 = 0``, without preconditioner.

    The Golub-Kahan bidiagonalisation with plane rotations (Paige and Saunders, ACM TOMS 8, 1982),
    stopped as MATLAB stops it: at iteration ``k`` the checks look at the previous iterate, before
    the ``k``-th update, in MATLAB's order (the normal equations' residual, then ``norm(b - A x) <=
    tol norm(b)``, then stagnation), and after the last iteration the two convergence checks once
    more. With the default ``maxit = min(m, n, 20)`` a small system gets at most ``n`` updates:
    exact in exact arithmetic, but LSQR loses orthogonality in floating point, and a check can stop
    it one update earlier. So ``lsqr`` is not ``torch.linalg.lstsq``: Aligned Distortion on an
    identical pair is 9.0e-6 in MATLAB because of it.

    Where MATLAB's code would divide by zero (the bidiagonalisation ends: ``x`` is then the
    least-squares solution), this stops with flag 0 instead of going on with NaN.

    Args:
        A: ``(m, n)`` float64, dense, finite.
        b: ``(m,)`` float64, finite, on ``A``'s device.
        tol: the tolerance (MATLAB's default 1e-6).
        maxit: the most iterations; by default ``min(m, n, 20)``, as MATLAB.

    Returns:
        ``LSQRResult(x, flag, relres, iterations, resvec)``: ``x`` ``(n,)`` float64 on ``A``'s device.

    Example:
        >>> A = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> result = lsqr(A, torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64))
        >>> [round(value, 6) for value in result.x.tolist()], result.flag, result.iterations
        ([1.166667, 0.5], 0, 2)
    """
    A, b = _checked(A, b)
    tol = positive_number(tol, "tol")
    m, n = A.shape
    maxit = min(m, n, 20) if maxit is None else check_positive_int(maxit, "maxit")
    norm_b = _norm(b)
    tol_b = tol * norm_b
    x = torch.zeros(n, dtype=torch.float64, device=A.device)
    u, beta = b, norm_b
    normr = beta
    u = u / beta if beta else u
    c, s, phibar = 1.0, 0.0, beta
    v = A.T @ u
    alpha = _norm(v)
    v = v / alpha if alpha else v
    normar = alpha * beta
    if normar == 0:  # b = 0 or A' b = 0: x = 0 is the solution
        return LSQRResult(x, 0, 1.0 if norm_b else 0.0, 0, torch.tensor([beta], dtype=torch.float64))
    d = torch.zeros_like(x)
    norm_a, stagnant, flag, iterations, resvec = 0.0, 0, 1, maxit, [normr]
    for iteration in range(1, maxit + 1):
        u = A @ v - alpha * u
        beta = _norm(u)
        u = u / beta if beta else u
        norm_a = math.hypot(norm_a, alpha, beta)
        theta, rho_bar = -s * alpha, c * alpha
        rho = math.hypot(rho_bar, beta)
        c, s = rho_bar / rho, -beta / rho
        phi = c * phibar
        phibar = s * phibar
        d = (v - theta * d) / rho
        stagnant = stagnant + 1 if abs(phi) * _norm(d) < _EPS * _norm(x) else 0
        if normar / (norm_a * normr) <= tol or normr <= tol_b:  # the iterate before this update
            flag, iterations = 0, iteration - 1
            break
        if stagnant >= _STAGNATION_STEPS:
            flag, iterations = 3, iteration - 1
            break
        x = x + phi * d
        normr = abs(s) * normr
        resvec.append(normr)
        v = A.T @ u - beta * v
        alpha = _norm(v)
        v = v / alpha if alpha else v
        normar = alpha * abs(s * phi)
        if beta == 0 or alpha == 0:  # the bidiagonalisation ended: x solves the least-squares problem
            flag, iterations = 0, iteration
            break
    else:
        if normar / (norm_a * normr) <= tol or normr <= tol_b:
            flag = 0
    resvec = torch.tensor(resvec[: iterations + 1], dtype=torch.float64)
    return LSQRResult(x, flag, normr / norm_b, iterations, resvec)


def _norm(vector: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(vector))


def _checked(A, b) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(A, torch.Tensor) and A.dim() == 2 and A.dtype == torch.float64):
        raise ValueError(f"A must be an (m, n) float64 tensor, got {describe_value(A)}")
    if not (isinstance(b, torch.Tensor) and b.shape == (A.shape[0],) and b.dtype == torch.float64):
        raise ValueError(f"b must be an ({A.shape[0]},) float64 tensor to match A, got {describe_value(b)}")
    if b.device != A.device or A.device.type == "meta":
        raise ValueError(f"A and b must be on one device with data, got {A.device} and {b.device}")
    if not (bool(torch.isfinite(A).all()) and bool(torch.isfinite(b).all())):
        raise ValueError("A and b must be finite (no NaN or inf)")
    return A, b
