"""The Lightning example: the CLI runs the tiny config, the loss goes down, checkpoints reload."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("pytorch_lightning", reason="the lightning extra is not installed")

from siftflow_nn.flow.correlation import correlation_volume as correlation  # noqa: E402
from siftflow_nn.lightning.training import SyntheticFlowDataset, UnsupervisedFlowModule  # noqa: E402
from tests.base import BaseTester

ROOT = Path(__file__).resolve().parents[2]


def _train(tmp_path: Path, *overrides: str) -> Path:
    command = [
        sys.executable,
        str(ROOT / "examples" / "train_flow.py"),
        "fit",
        "--config",
        str(ROOT / "configs" / "flow_tiny.yaml"),
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *overrides,
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "logs" / "version_0"


class TestTraining(BaseTester):
    def test_cli_trains_lowers_the_loss_and_writes_a_checkpoint_that_reloads(self, tmp_path):
        # One fixed batch of 8 pairs, seen 8 times: the loss on it must fall.
        run = _train(
            tmp_path,
            "--trainer.max_epochs=8",
            "--trainer.log_every_n_steps=1",
            "--data.train_pairs=8",
            "--data.val_pairs=8",
            "--data.batch_size=8",
            "--data.size=32",
        )
        with open(run / "metrics.csv") as handle:
            rows = list(csv.DictReader(handle))
        losses = [float(row["train_loss"]) for row in rows if row["train_loss"]]
        assert len(losses) == 8
        assert losses[-1] < 0.95 * losses[0], losses

        checkpoints = sorted((run / "checkpoints").glob("*.ckpt"))
        assert any(path.name == "last.ckpt" for path in checkpoints)
        checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        # The frozen descriptor holds no state: only the flow network's weights are saved.
        assert checkpoint["state_dict"] and all(key.startswith("model.") for key in checkpoint["state_dict"])
        restored = UnsupervisedFlowModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
        image1, image2, _ = SyntheticFlowDataset(1, 32, seed=5)[0]
        with torch.no_grad():
            flow = restored(image1[None], image2[None])
        assert flow.shape == (1, 2, 32, 32) and torch.isfinite(flow).all()

    def test_descriptor_is_frozen_in_the_module(self):
        module = UnsupervisedFlowModule()
        optimizer = module.configure_optimizers()
        optimized = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
        assert not any(id(parameter) in optimized for parameter in module.descriptor.parameters())
        assert optimized == {id(parameter) for parameter in module.model.parameters()}
        module.train()
        assert module.model.training and not module.descriptor.training
        assert not any(key.startswith("descriptor.") for key in module.state_dict())

    def test_correlation_matches_its_definition(self):
        features1, features2 = torch.rand(1, 4, 6, 7), torch.rand(1, 4, 6, 7)
        volume = correlation(features1, features2, radius=1)
        # Channel (dy + 1) * 3 + (dx + 1) at (y, x) is <f1(y, x), f2(y + dy, x + dx)>.
        assert torch.allclose(volume[0, 5, 2, 3], (features1[0, :, 2, 3] * features2[0, :, 2, 4]).sum())
        assert torch.allclose(volume[0, 0, 2, 3], (features1[0, :, 2, 3] * features2[0, :, 1, 2]).sum())
        assert volume[0, 0, 0, 0] == 0  # outside image 2

    def test_synthetic_dataset_is_deterministic_and_consistent(self):
        dataset = SyntheticFlowDataset(4, 32, max_displacement=2.0, seed=3)
        first, again = dataset[1], dataset[1]
        assert all(torch.equal(a, b) for a, b in zip(first, again))
        image1, image2, flow = first
        assert flow.abs().max() <= 2.0 + 1e-6 and image1.shape == image2.shape == (3, 32, 32)
        with pytest.raises(IndexError):
            dataset[4]
