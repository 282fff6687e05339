"""Dense correspondence: warping, local matching, and the SIFT Flow matcher."""

from siftflow_nn.flow.correlation import correlation_volume
from siftflow_nn.flow.local_matching import local_match, soft_local_match
from siftflow_nn.flow.sift_flow import SIFTFlow
from siftflow_nn.flow.warp import warp, warp_valid_mask

__all__ = ["SIFTFlow", "correlation_volume", "local_match", "soft_local_match", "warp", "warp_valid_mask"]
