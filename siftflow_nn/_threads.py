"""Numba's parallel kernels run on as many threads as torch's ops (``torch.set_num_threads``)."""

import torch


class numba_threads:
    """Run numba's parallel loops inside on as many threads as torch uses.

    Numba starts one thread per core otherwise: two processes scoring pairs side by side (or a
    caller that asked torch for one thread) would then oversubscribe the cores, which costs several
    times the time. Both may run on the same OpenMP runtime, where numba's launch sets the thread
    count that torch reads back: torch's count is restored on the way out.
    """

    def __enter__(self) -> None:
        import numba

        self._numba = numba
        self._torch_threads = torch.get_num_threads()
        self._numba_threads = numba.get_num_threads()
        numba.set_num_threads(max(1, min(self._torch_threads, numba.config.NUMBA_NUM_THREADS)))

    def __exit__(self, *exc: object) -> None:
        self._numba.set_num_threads(self._numba_threads)
        torch.set_num_threads(self._torch_threads)
