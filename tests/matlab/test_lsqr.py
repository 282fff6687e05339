"""lsqr against what LSQR is: its k-th iterate minimises norm(b - A x) over the Krylov space
span(A'b, (A'A) A'b, ...) of dimension k, solved here directly; and MATLAB's stopping rules."""

import numpy as np
import pytest
import torch

from siftflow_nn import matlab
from tests.base import BaseTester


def krylov_minimiser(A: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """argmin ||b - A x|| over x in K_k(A'A, A'b), through an orthonormal basis of that space."""
    vectors = [A.T @ b]
    for _ in range(k - 1):
        vectors.append(A.T @ (A @ vectors[-1]))
    basis, _ = torch.linalg.qr(torch.stack(vectors, dim=1))
    coefficients = torch.linalg.lstsq(A @ basis, b[:, None]).solution[:, 0]
    return basis @ coefficients


def random_system(m: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=generator, dtype=torch.float64)
    return A, torch.randn(m, generator=generator, dtype=torch.float64)


class TestLsqr(BaseTester):
    @pytest.mark.parametrize("k", [1, 2, 3])
    def test_the_kth_iterate_is_the_krylov_least_squares_solution(self, k):
        A, b = random_system(40, 5, seed=k)
        result = matlab.lsqr(A, b, maxit=k)
        assert result.flag == 1 and result.iterations == k  # not converged in k < n steps
        self.assert_close(result.x, krylov_minimiser(A, b, k), rtol=0, atol=1e-12)
        residual = float(torch.linalg.vector_norm(b - A @ result.x))
        assert result.relres == pytest.approx(residual / float(torch.linalg.vector_norm(b)), rel=1e-10)
        assert result.resvec.shape == (k + 1,) and float(result.resvec[-1]) == pytest.approx(residual, rel=1e-10)

    def test_defaults_solve_a_small_system_in_n_steps(self):
        A, b = random_system(30, 4, seed=7)
        result = matlab.lsqr(A, b)  # maxit = min(30, 4, 20) = 4
        assert result.flag == 0 and result.iterations == 4
        self.assert_close(result.x, torch.linalg.lstsq(A, b[:, None]).solution[:, 0], rtol=0, atol=1e-12)

    def test_each_check_looks_at_the_iterate_before_the_update(self):
        # two singular values 1e-8 apart: x_1 leaves a residual of ~1e-8 |b|, under tol, so the check
        # at step 2 keeps x_1 (MATLAB's order); the exact solution would be one more step away
        A = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0 + 1e-8], dtype=torch.float64))
        b = torch.ones(4, dtype=torch.float64)
        result = matlab.lsqr(A, b)
        assert result.flag == 0 and result.iterations == 1
        self.assert_close(result.x, krylov_minimiser(A, b, 1), rtol=0, atol=1e-15)
        assert result.relres < 1e-6 and not torch.equal(result.x, torch.linalg.solve(A, b))

    def test_a_tolerance_out_of_reach_ends_in_stagnation(self):
        A, b = random_system(12, 3, seed=3)
        result = matlab.lsqr(A, b, tol=1e-300, maxit=20)
        assert result.flag == 3 and 3 <= result.iterations < 20
        self.assert_close(result.x, torch.linalg.lstsq(A, b[:, None]).solution[:, 0], rtol=0, atol=1e-12)

    def test_the_end_of_the_bidiagonalisation_stops_with_the_solution(self):
        # A'A = 4 I: one step solves it, then alpha = 0 exactly (MATLAB's code would go on with 0 / 0)
        A = 2 * torch.eye(3, dtype=torch.float64)
        result = matlab.lsqr(A, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
        assert result.flag == 0 and result.x.tolist() == [0.5, 1.0, 1.5]
        assert bool(torch.isfinite(result.resvec).all())

    @pytest.mark.parametrize("m, n", [(0, 4), (5, 0)])
    def test_empty_systems_give_zeros(self, m, n):
        result = matlab.lsqr(torch.zeros(m, n, dtype=torch.float64), torch.zeros(m, dtype=torch.float64))
        assert result.x.shape == (n,) and result.flag == 0 and result.iterations == 0

    def test_a_zero_right_hand_side_gives_zero(self):
        A, _ = random_system(6, 2, seed=1)
        result = matlab.lsqr(A, torch.zeros(6, dtype=torch.float64))
        assert result.x.tolist() == [0.0, 0.0] and result.flag == 0 and result.relres == 0.0

    def test_on_the_device(self, device):
        A, b = random_system(20, 4, seed=5)
        result = matlab.lsqr(A.to(device), b.to(device))
        assert result.x.device.type == device.type
        self.assert_close(result.x.cpu(), matlab.lsqr(A, b).x, rtol=0, atol=1e-12)

    @pytest.mark.parametrize(
        "A, b, options, error, message",
        [
            (torch.zeros(3, 2), torch.zeros(3), {}, ValueError, r"A must be an \(m, n\) float64"),
            (torch.zeros(3, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), {}, ValueError,
             r"b must be an \(3,\) float64"),
            (torch.full((3, 2), float("nan"), dtype=torch.float64), torch.zeros(3, dtype=torch.float64), {},
             ValueError, "finite"),
            (torch.eye(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), {"tol": float("inf")},
             ValueError, "tol must be a positive finite number"),
            (torch.eye(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), {"maxit": 0}, ValueError,
             "maxit must be a positive int"),
            (torch.eye(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), {"maxit": np.int64(2)}, None,
             None),
        ],
    )  # fmt: skip
    def test_arguments(self, A, b, options, error, message):
        if error is None:
            assert matlab.lsqr(A, b, **options).flag == 0
            return
        with pytest.raises(error, match=message):
            matlab.lsqr(A, b, **options)
