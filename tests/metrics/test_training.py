"""DocUNetMetrics: the benchmark's scores as a torchmetrics Metric. Against the original scripts' own
values (tests/data/docunet_bench/refs.json), summed across a real 2-process DDP run, and logged from a
Lightning validation step."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from siftflow_nn.io import read_image
from siftflow_nn.metrics import docunet, training
from siftflow_nn.metrics.docunet import DocUNetScores
from siftflow_nn.metrics.training import DocUNetMetrics
from siftflow_nn.synthetic import document_pair
from tests.base import BaseTester
from tests.conftest import DATA

BENCH = DATA / "docunet_bench"
REFERENCE = {pair["rec"]: pair for pair in json.loads((BENCH / "refs.json").read_text())["pairs"]}


def _bench_pair(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A pair of the shared benchmark as ``imread`` gives it, ``(1, C, H, W)`` uint8 each."""
    read = [read_image(BENCH / folder / file, uint8=True, orient=False)[None]
            for folder, file in (("rec", name), ("scan", REFERENCE[name]["scan"]))]  # fmt: skip
    return read[0], read[1]


def _assert_as_the_original(values: dict[str, torch.Tensor], name: str) -> None:
    """The issue's aims against MATLAB's run: MS-SSIM within 1e-4, LD, Li-D and AD within 1%."""
    assert list(values) == ["ms_ssim", "ld", "li_d", "ad"]
    for metric, value in values.items():
        expected = REFERENCE[name][metric]
        assert value.dtype == torch.float64 and value.shape == ()
        assert abs(float(value) - expected) <= (1e-4 if metric == "ms_ssim" else 0.01 * expected), metric


def _made_up_scores(unwarped: torch.Tensor, scan: torch.Tensor) -> DocUNetScores:
    """In place of ``docunet_metrics`` where only the bookkeeping is tested: scores that tell the
    pairs apart (field k of pair i is ``(k + 1) * mean(unwarped_i) + mean(scan_i)``), at no cost."""
    first, second = unwarped.double().mean(dim=(1, 2, 3)), scan.double().mean(dim=(1, 2, 3))
    return DocUNetScores(*((index + 1) * first + second for index in range(len(DocUNetScores._fields))))


def _batches(sizes: list[int], seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.rand(size, 1, 8, 8, generator=generator), torch.rand(size, 1, 8, 8, generator=generator))
            for size in sizes]  # fmt: skip


def _expected(batches) -> dict[str, torch.Tensor]:
    """The mean over every pair of the made-up scores, by the per-pair CSV's names."""
    scores = DocUNetScores(*(torch.cat(field) for field in zip(*(_made_up_scores(*pair) for pair in batches))))
    return {name: getattr(scores, field).mean() for name, field in training.DOCUNET_METRICS.items()}


@pytest.fixture
def made_up(monkeypatch):
    monkeypatch.setattr(training, "docunet_metrics", _made_up_scores)


class TestAgainstTheOriginalScripts(BaseTester):
    def test_a_pair_of_the_shared_benchmark(self):
        metric = DocUNetMetrics()
        metric.update(*_bench_pair("2_2 copy_rec.png"))
        assert int(metric.pairs) == 1
        _assert_as_the_original(metric.compute(), "2_2 copy_rec.png")

    def test_ms_ssim_alone_needs_no_flow_and_equals_ms_ssim_docunet(self, monkeypatch):
        pairs = [document_pair(72, 54, max_displacement=2.0, seed=seed)[:2] for seed in range(3)]
        photos, scans = torch.stack([photo for photo, _ in pairs]), torch.stack([scan for _, scan in pairs])

        def no_flow(*args, **kwargs):
            raise AssertionError("MS-SSIM alone computed a SIFT flow")

        monkeypatch.setattr(docunet, "_flow", no_flow)
        metric = DocUNetMetrics(metrics=("ms_ssim",))
        metric.update(photos[:2], scans[:2])
        metric.update(list(photos[2:]), list(scans[2:]))  # a list of pairs, as docunet_metrics takes
        (name, value), *others = metric.compute().items()
        assert name == "ms_ssim" and not others
        self.assert_close(value, docunet.ms_ssim_docunet(photos, scans).mean(), rtol=1e-12, atol=1e-15)


class TestBookkeeping(BaseTester):
    def test_the_mean_is_over_pairs_however_the_batches_fall(self, made_up):
        batches = _batches([2, 1, 3])
        metric = DocUNetMetrics()
        for batch in batches:
            metric.update(*batch)
        assert int(metric.pairs) == 6
        for name, value in metric.compute().items():
            self.assert_close(value, _expected(batches)[name], rtol=1e-12, atol=0)

    def test_halves_merged_equal_the_whole(self, made_up):
        batches = _batches([2, 1, 3])
        whole, first, second = DocUNetMetrics(), DocUNetMetrics(), DocUNetMetrics()
        for batch in batches:
            whole.update(*batch)
        first.update(*batches[0])
        for batch in batches[1:]:
            second.update(*batch)
        first.merge_state(second)
        assert int(first.pairs) == 6
        merged = first.compute()
        for name, value in whole.compute().items():
            self.assert_close(merged[name], value, rtol=1e-12, atol=0)

    def test_reset_forgets_every_pair(self, made_up):
        metric = DocUNetMetrics(metrics=("ld", "ad"))
        metric.update(*_batches([3])[0])
        metric.reset()
        assert int(metric.pairs) == 0
        with (
            pytest.warns(UserWarning, match="called before the ``update``"),  # torchmetrics' own
            pytest.raises(RuntimeError, match=r"no pair was scored; call update\(unwarped, scan\) first"),
        ):
            metric.compute()
        batch = _batches([2], seed=1)
        metric.update(*batch[0])
        assert metric.compute() == {name: _expected(batch)[name] for name in ("ld", "ad")}

    def test_states_and_scores_on_the_device(self, made_up, device):
        metric = DocUNetMetrics().to(device)
        batch = [(unwarped.to(device), scan.to(device)) for unwarped, scan in _batches([2])]
        metric.update(*batch[0])
        assert all(value.device.type == device.type for value in metric.compute().values())

    def test_options_show_in_the_repr(self):
        assert repr(DocUNetMetrics(metrics=["ld", "ms_ssim"])) == "DocUNetMetrics(metrics=('ld', 'ms_ssim'))"

    @pytest.mark.parametrize(
        "metrics, error, message",
        [
            ("ld", TypeError, r"metrics must be a sequence of names such as \('ld', 'ad'\), got 'ld'"),
            ((), ValueError, "and one at least, got ()"),
            (("ld", "ld"), ValueError, "at most once"),
            (("ld", "psnr"), ValueError, r"each of ms_ssim, ld, li_d, ad .* got \('ld', 'psnr'\)"),
            ([["ld"]], ValueError, r"got \(\['ld'\],\)"),
        ],
    )
    def test_bad_metrics_are_named(self, metrics, error, message):
        with pytest.raises(error, match=message):
            DocUNetMetrics(metrics=metrics)

    def test_bad_images_are_named_before_any_work(self):
        metric = DocUNetMetrics()
        with pytest.raises(ValueError, match=r"unwarped: floating-point images must lie in \[0, 1\]"):
            metric.update(torch.full((1, 1, 30, 30), 1.5), torch.zeros(1, 1, 30, 30))
        assert int(metric.pairs) == 0


def _ddp_rank(rank: int, init_file: str, sizes_by_rank: list[list[int]], out: str) -> None:
    """One rank of a 2-process gloo run: its share of the batches, then compute (which syncs)."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        training.docunet_metrics = _made_up_scores  # in this process only
        metric = DocUNetMetrics()
        for batch in _batches(sizes_by_rank[rank], seed=rank):
            metric.update(*batch)
        torch.save({"values": metric.compute(), "local_pairs": int(metric.pairs)}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


class TestAcrossDDPRanks(BaseTester):
    def test_two_gloo_processes_compute_the_mean_over_all_pairs(self, tmp_path):
        sizes_by_rank = [[1], [2, 1]]  # uneven: the mean of the ranks' means would be wrong
        context = mp.spawn(_ddp_rank, args=(str(tmp_path / "init"), sizes_by_rank, str(tmp_path)), nprocs=2,
                           join=False)  # fmt: skip
        deadline = time.monotonic() + 300
        while not context.join(timeout=5):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail("the 2-process DDP run did not end within 300 s")
        expected = _expected(_batches(sizes_by_rank[0], seed=0) + _batches(sizes_by_rank[1], seed=1))
        for rank, pairs in ((0, 1), (1, 3)):
            result = torch.load(tmp_path / f"rank{rank}.pt")
            assert result["local_pairs"] == pairs  # the sync is undone after compute: updates go on locally
            for name, value in result["values"].items():
                self.assert_close(value, expected[name], rtol=1e-12, atol=0)


def _unwarper(pl):
    """A stand-in unwarping network (a 1 x 1 convolution, the identity at first) validated with
    DocUNetMetrics as a training script would: update in each step, log and reset at the epoch's
    end. (Lightning is imported by the one test that needs it: the DDP ranks import this module.)"""

    class Unwarper(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.network = torch.nn.Conv2d(1, 1, 1)
            torch.nn.init.ones_(self.network.weight)
            torch.nn.init.zeros_(self.network.bias)
            self.docunet = DocUNetMetrics()

        def training_step(self, batch, batch_index):
            photo, _ = batch
            return (self.network(photo) - photo).square().mean()

        def validation_step(self, batch, batch_index):
            photo, scan = batch
            self.docunet.update(self.network(photo).clamp(0, 1), scan)

        def on_validation_epoch_end(self):
            self.log_dict({f"val/{name}": value for name, value in self.docunet.compute().items()})
            self.docunet.reset()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    return Unwarper()


class TestInALightningValidationStep(BaseTester):
    def test_fast_dev_run_logs_the_benchmark_scores(self):
        rec, scan = _bench_pair("2_1 copy_rec.png")
        photo = rec.float() / 255  # a network's float output in [0, 1]; the scan stays uint8
        loader = DataLoader([(photo[0], scan[0])], batch_size=1)
        import pytorch_lightning as pl

        module = _unwarper(pl)
        trainer = pl.Trainer(fast_dev_run=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
        logged = {key.removeprefix("val/"): value for key, value in trainer.callback_metrics.items()}
        _assert_as_the_original(logged, "2_1 copy_rec.png")
        assert int(module.docunet.pairs) == 0  # reset for the next epoch


class TestWithoutTorchmetrics:
    def test_the_package_imports_and_this_module_says_what_to_install(self):
        code = (
            "import sys; sys.modules['torchmetrics'] = None; import siftflow_nn, siftflow_nn.metrics\n"
            "try:\n    import siftflow_nn.metrics.training\nexcept ImportError as error:\n    print(error)"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert (
            result.stdout == "siftflow_nn.metrics.training needs torchmetrics: pip install 'siftflow_nn[lightning]'\n"
        )
