"""siftflow_nn: the SIFT Flow dense descriptor and matcher as differentiable PyTorch modules."""

from siftflow_nn.descriptor import (
    SIFTFlowDescriptor,
    descriptor_size,
    descriptor_to_hwc,
    sift_flow_descriptor,
    to_uint8,
)
from siftflow_nn.loss import SIFTFlowLoss, SIFTFlowWarpLoss, descriptor_distance, sift_flow_loss, sift_flow_warp_loss
from siftflow_nn.warp import warp, warp_valid_mask

__version__ = "0.1.0"

__all__ = [
    "SIFTFlowDescriptor",
    "SIFTFlowLoss",
    "SIFTFlowWarpLoss",
    "descriptor_distance",
    "descriptor_size",
    "descriptor_to_hwc",
    "sift_flow_descriptor",
    "sift_flow_loss",
    "sift_flow_warp_loss",
    "to_uint8",
    "warp",
    "warp_valid_mask",
]
