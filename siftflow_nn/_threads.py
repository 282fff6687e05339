"""Kept for the modules not yet moved to ``_native.threads()``: the compiled kernels take their thread
count as an argument, so there is nothing to set around them."""

import contextlib

numba_threads = contextlib.nullcontext
