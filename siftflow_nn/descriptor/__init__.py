"""The SIFT Flow dense descriptor: options, fixed filters, execution paths, module and function."""

from siftflow_nn.descriptor.options import DescriptorOptions, descriptor_options
from siftflow_nn.descriptor.paths import output_dtype
from siftflow_nn.descriptor.sift_descriptor import (
    SIFTFlowDescriptor,
    compute_descriptor,
    descriptor_size,
    descriptor_to_hwc,
    sift_flow_descriptor,
    to_uint8,
)

__all__ = [
    "DescriptorOptions",
    "SIFTFlowDescriptor",
    "compute_descriptor",
    "descriptor_options",
    "descriptor_size",
    "descriptor_to_hwc",
    "output_dtype",
    "sift_flow_descriptor",
    "to_uint8",
]
