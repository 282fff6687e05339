"""Train a small optical-flow network without ground truth, with the SIFT Flow descriptor loss.

    python examples/train_flow.py fit --config configs/flow_tiny.yaml

Image pairs are synthetic (a random texture and a random smooth warp, made on the fly), so nothing
is downloaded. The network only sees the images; the true flow is used for validation: ``val_epe``
(end-point error, pixels) against ``val_zero_flow_epe`` (the error of predicting no motion).
"""

from pytorch_lightning.cli import LightningCLI

from siftflow_nn.lightning.training import SyntheticFlowDataModule, UnsupervisedFlowModule


def main() -> None:
    LightningCLI(UnsupervisedFlowModule, SyntheticFlowDataModule)


if __name__ == "__main__":
    main()
