"""siftflow_nn: the SIFT Flow dense descriptor and matcher as differentiable PyTorch modules."""

from siftflow_nn.compat import SiftFlowTorch
from siftflow_nn.descriptor import (
    SIFTFlowDescriptor,
    descriptor_size,
    descriptor_to_hwc,
    sift_flow_descriptor,
    to_uint8,
)
from siftflow_nn.flow import SIFTFlow, local_match, soft_local_match, warp, warp_valid_mask
from siftflow_nn.lightning.reader import DescriptorStore, ShardError, open_descriptors
from siftflow_nn.losses import (
    SIFTFlowLoss,
    SIFTFlowWarpLoss,
    descriptor_distance,
    descriptor_warp_loss,
    sift_flow_loss,
    sift_flow_warp_loss,
)
from siftflow_nn.metrics import end_point_error
from siftflow_nn.viz import descriptor_to_color, flow_to_color, read_flo, write_flo

__version__ = "0.1.0"

__all__ = [
    "DescriptorStore",
    "SIFTFlow",
    "SIFTFlowDescriptor",
    "SIFTFlowLoss",
    "SIFTFlowWarpLoss",
    "ShardError",
    "SiftFlowTorch",
    "descriptor_distance",
    "descriptor_size",
    "descriptor_to_color",
    "descriptor_to_hwc",
    "descriptor_warp_loss",
    "end_point_error",
    "flow_to_color",
    "local_match",
    "open_descriptors",
    "read_flo",
    "sift_flow_descriptor",
    "sift_flow_loss",
    "sift_flow_warp_loss",
    "soft_local_match",
    "to_uint8",
    "warp",
    "warp_valid_mask",
    "write_flo",
]
