"""PyTorch Lightning pieces for learning optical flow with the SIFT Flow descriptor loss.

A small flow network is trained without any ground truth: it only sees image pairs, and the loss
compares image 1's descriptors with image 2's descriptors warped by the predicted flow
(:class:`~siftflow_nn.SIFTFlowWarpLoss`), plus a smoothness term. The synthetic pairs carry their
true flow, used for validation only (end-point error, against the zero-flow baseline).

Needs the ``lightning`` extra: ``pip install 'siftflow_nn[lightning]'``.
"""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from siftflow_nn.descriptor import SIFTFlowDescriptor
from siftflow_nn.flow.correlation import correlation_volume
from siftflow_nn.losses import charbonnier, descriptor_warp_loss
from siftflow_nn.metrics import end_point_error
from siftflow_nn.synthetic import synthetic_pair

__all__ = ["SyntheticFlowDataModule", "SyntheticFlowDataset", "TinyFlowNet", "UnsupervisedFlowModule", "smoothness"]


class SyntheticFlowDataset(Dataset):
    """``(image1, image2, flow)`` triples made on the fly, deterministic per index and seed.

    Image 2 is a random texture, the flow a random smooth field of at most ``max_displacement``
    pixels, and image 1 = image 2 warped back by it, so ``image2(x + flow) = image1(x)``.
    """

    def __init__(self, length: int, size: int = 64, max_displacement: float = 3.0, seed: int = 0) -> None:
        self.length, self.size, self.max_displacement, self.seed = length, size, max_displacement, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} pairs")
        seed = self.seed * 1_000_003 + 2 * index
        return synthetic_pair(self.size, self.size, self.max_displacement, channels=3, seed=seed)


class SyntheticFlowDataModule(pl.LightningDataModule):
    """Training and held-out validation pairs from :class:`SyntheticFlowDataset` (different seeds).

    Args:
        train_pairs: pairs per training epoch.
        val_pairs: held-out pairs.
        size: side of the square images.
        max_displacement: largest flow component, in pixels.
        batch_size: pairs per batch.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        train_pairs: int = 1024,
        val_pairs: int = 64,
        size: int = 64,
        max_displacement: float = 3.0,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self) -> DataLoader:
        dataset = SyntheticFlowDataset(self.hparams.train_pairs, self.hparams.size, self.hparams.max_displacement, 1)
        return DataLoader(dataset, self.hparams.batch_size, shuffle=True, num_workers=self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        dataset = SyntheticFlowDataset(self.hparams.val_pairs, self.hparams.size, self.hparams.max_displacement, 2)
        return DataLoader(dataset, self.hparams.batch_size, num_workers=self.hparams.num_workers)


class TinyFlowNet(nn.Module):
    """A small flow network on frozen SIFT Flow descriptors (about 40 k parameters).

    A learned 1x1 projection of each image's descriptors, normalised, is correlated over a
    ``(2 radius + 1)^2`` window; a soft-argmax of the correlation gives a first flow, and dilated
    convolutions over the correlation and image 1's features add a correction.

    Args:
        descriptor_dim: channels of the input descriptors (128 for the default descriptor).
        radius: search radius in pixels.
        features: channels of the learned projection.
        width: channels of the correction network.

    Shape:
        - d1, d2: ``(B, descriptor_dim, H, W)``, dense descriptors of image 1 and image 2.
        - Output: ``(B, 2, H, W)`` flow in pixels, ``image2(x + flow) ~ image1(x)``.
    """

    def __init__(self, descriptor_dim: int = 128, radius: int = 3, features: int = 16, width: int = 32) -> None:
        super().__init__()
        self.radius = radius
        self.project = nn.Conv2d(descriptor_dim, features, 1)
        self.scale = nn.Parameter(torch.tensor(10.0))  # inverse temperature of the soft-argmax
        cost = (2 * radius + 1) ** 2
        self.correct = nn.Sequential(
            nn.Conv2d(cost + features, width, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width, width, 3, padding=2, dilation=2),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width, width, 3, padding=4, dilation=4),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width, 2, 3, padding=1),
        )
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
        self.register_buffer("displacements", torch.stack([dx.flatten(), dy.flatten()]), persistent=False)

    def forward(self, d1: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        features1, features2 = F.normalize(self.project(torch.cat([d1, d2])), dim=1).chunk(2)
        cost = correlation_volume(features1, features2, self.radius)
        weights = torch.softmax(cost * self.scale, dim=1)
        soft_argmax = torch.einsum("bkhw,ck->bchw", weights, self.displacements.to(weights.dtype))
        return soft_argmax + self.correct(torch.cat([cost, features1], dim=1))


def smoothness(flow: torch.Tensor) -> torch.Tensor:
    """First-order Charbonnier smoothness of a flow: penalises differences between neighbours."""
    dx = flow[..., :, 1:] - flow[..., :, :-1]
    dy = flow[..., 1:, :] - flow[..., :-1, :]
    return charbonnier(dx).mean() + charbonnier(dy).mean()


class UnsupervisedFlowModule(pl.LightningModule):
    """Learns flow from image pairs alone, with the SIFT Flow descriptor warp loss.

    One frozen :class:`~siftflow_nn.SIFTFlowDescriptor` serves twice: as the network's feature layer
    and inside the loss (:func:`~siftflow_nn.descriptor_warp_loss`), computed once per batch. It has
    no parameters, so nothing of it is in the optimizer or the checkpoint, and it stays in eval mode
    whatever ``train()`` is called with.

    Args:
        radius, features, width: of the :class:`TinyFlowNet`.
        lr: Adam learning rate.
        smoothness_weight: weight of the flow smoothness term.
        metric: descriptor distance of the loss (see :func:`~siftflow_nn.descriptor_distance`).
        cell_size: descriptor cell size.
    """

    def __init__(
        self,
        radius: int = 3,
        features: int = 16,
        width: int = 32,
        lr: float = 3e-3,
        smoothness_weight: float = 0.1,
        metric: str = "charbonnier",
        cell_size: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.descriptor = SIFTFlowDescriptor(cell_size=cell_size).eval()
        self.model = TinyFlowNet(self.descriptor.descriptor_dim, radius, features, width)

    def train(self, mode: bool = True) -> "UnsupervisedFlowModule":
        super().train(mode)
        self.descriptor.eval()  # frozen feature extractor: never in training mode
        return self

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        """``(B, 2, H, W)`` flow from two ``(B, 3, H, W)`` images."""
        return self.model(*self._descriptors(image1, image2))

    def _descriptors(self, image1: torch.Tensor, image2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d1, d2 = self.descriptor(torch.cat([image1, image2])).chunk(2)
        return d1, d2

    def _step(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image1, image2, truth = batch
        d1, d2 = self._descriptors(image1, image2)
        flow = self.model(d1, d2)
        loss = descriptor_warp_loss(d1, d2, flow, self.hparams.metric)
        return loss + self.hparams.smoothness_weight * smoothness(flow), flow, truth

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        loss, _, _ = self._step(batch)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        loss, flow, truth = self._step(batch)
        self.log("val_loss", loss)
        self.log("val_epe", end_point_error(flow, truth), prog_bar=True)
        self.log("val_zero_flow_epe", end_point_error(torch.zeros_like(truth), truth))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr)
