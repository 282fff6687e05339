"""siftflow_nn: the SIFT Flow dense descriptor as a differentiable PyTorch module."""

from siftflow_nn.descriptor import (
    SIFTFlowDescriptor,
    descriptor_size,
    descriptor_to_hwc,
    sift_flow_descriptor,
    to_uint8,
)

__version__ = "0.1.0"

__all__ = [
    "SIFTFlowDescriptor",
    "descriptor_size",
    "descriptor_to_hwc",
    "sift_flow_descriptor",
    "to_uint8",
]
