"""The runner: jobs on this process and spawned workers, workers that end with their parent, memory."""

import os
import signal
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from siftflow_nn.io import write_image
from siftflow_nn.metrics import runner
from siftflow_nn.metrics.layouts import Pair


class Job(NamedTuple):
    """A job for the pool that says where it ran: in this process it sleeps ``seconds`` (the workers
    take seconds to start: they then get jobs too), in a worker 10 ms, or ``die`` kills the worker,
    or ``crash`` raises there."""

    parent: int
    seconds: float = 0.0
    die: bool = False
    crash: bool = False

    def run(self):
        here = os.getpid() == self.parent
        if not here and self.die:
            os.kill(os.getpid(), signal.SIGKILL)
        if not here and self.crash:
            raise ZeroDivisionError("a bug")
        time.sleep(self.seconds if here else 0.01)
        return os.getpid()


def _outcomes(jobs, count):
    return [outcome for _, outcome in runner._run([(str(index), job) for index, job in enumerate(jobs)], count)]


def test_every_job_once_here_and_in_the_workers():
    jobs = [Job(os.getpid(), 0.1) for _ in range(300)]
    threads = torch.get_num_threads()
    outcomes = _outcomes(jobs, 3)
    assert len(outcomes) == 300
    assert os.getpid() in outcomes and len(set(outcomes)) == 3  # this process and both workers took some
    assert torch.get_num_threads() == threads


def test_a_worker_killed_ends_the_run_in_one_line():
    """Issue 22, 4.6: a worker killed by the OOM killer was a BrokenProcessPool traceback."""
    jobs = [Job(os.getpid(), 0.5, die=True) for _ in range(100)]
    with pytest.raises(runner.WorkerDied, match=r"a worker process \(pid \d+\) was killed by SIGKILL \(out of "
                                                r"memory\?\) while working on \d+$"):  # fmt: skip
        _outcomes(jobs, 2)


def test_a_bug_in_a_worker_shows_its_traceback():
    jobs = [Job(os.getpid(), 0.5, crash=True) for _ in range(100)]
    with pytest.raises(RuntimeError, match=r"(?s)a job failed in a worker process:.*ZeroDivisionError: a bug"):
        _outcomes(jobs, 2)


def _image(path, height, width):
    write_image(path, torch.zeros(1, height, width))
    return path


def test_the_pixel_budget_is_checked_before_any_work(tmp_path):
    pair = Pair("big.png", _image(tmp_path / "big.png", 300, 400), _image(tmp_path / "scan.png", 30, 40), None)
    message = (
        r"big.png: 400 x 300 = 120000 pixels, over the budget of 100000 \(--max-pixels\): scoring it needs about "
        r"0.1 GiB of memory; give --max-pixels 120000 to score it anyway"
    )
    with pytest.raises(runner.PixelBudgetError, match=message):
        runner.plan_memory([pair], 2, 100_000, None)
    plan = runner.plan_memory([pair], 4, 200_000, None)
    assert (plan.jobs, plan.largest, plan.pair_bytes) == (4, pair, runner.pair_memory(120_000))


def test_jobs_are_fitted_to_the_memory(tmp_path):
    """Issue 4.8: --jobs was not capped by memory (about 460 MB a worker)."""
    pair = Pair("a.png", _image(tmp_path / "a.png", 30, 40), _image(tmp_path / "s.png", 30, 40), None)
    need = runner.pair_memory(1200)
    assert runner.plan_memory([pair], 8, 10**6, need).jobs == 1  # this process only
    assert runner.plan_memory([pair], 8, 10**6, 3 * need + 2 * runner.PROCESS_BYTES).jobs == 3
    assert runner.plan_memory([pair], 2, 10**6, 10**12).jobs == 2
    with pytest.raises(runner.PixelBudgetError, match="a.png: scoring it needs about 0.1 GiB of memory and 0.0 GiB"):
        runner.plan_memory([pair], 1, 10**6, need // 4)
    unreadable = Pair("x.png", tmp_path / "x.png", tmp_path / "nothing.png", None)
    assert runner.plan_memory([unreadable], 1, 10, None).jobs == 1  # its pair fails when scored, naming it


def test_settings_say_how_a_row_was_computed():
    pair = Pair("64_2 copy_rec.png", Path("r"), Path("s"), Path("p"), 64, 2, rotated=True, scan_resizes=2)
    plain = runner.RunOptions("docunet")
    assert plain.settings(pair) == "layout=docunet; device=cpu; metrics=ms_ssim,ld,li_d,ad; rotated=180; scan_resizes=2"
    ocr = runner.RunOptions("docunet", ocr="uvdoc", ocr_keys=frozenset({pair.key}), tesseract="5.3.0")
    assert ocr.settings(pair).endswith("metrics=ms_ssim,ld,li_d,ad,ed,cer; rotated=180; scan_resizes=2; ocr=uvdoc; "
                                       "tesseract=5.3.0")  # fmt: skip
    assert ocr.photo_of(pair) == Path("p") and plain.photo_of(pair) is None
