"""The public API, pinned: every name in ``siftflow_nn.__all__``, documented; and the layout's rules."""

import ast
import importlib
from pathlib import Path

import siftflow_nn as sf
from tests.base import BaseTester

PUBLIC = [
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
PACKAGE = Path(sf.__file__).parent

# Data flows one way: a folder may import from those after it, never from those before.
ORDER = ["cli", "lightning", "metrics", "losses", "flow", "descriptor", "matlab"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("siftflow_nn."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("siftflow_nn."))
    return names


class TestPublicAPI(BaseTester):
    def test_every_public_name_is_pinned_and_importable(self):
        assert sorted(sf.__all__) == PUBLIC
        for name in PUBLIC:
            assert getattr(sf, name).__doc__, f"{name} has no docstring"

    def test_the_folders_import_one_way(self):
        for path in PACKAGE.rglob("*.py"):
            relative = path.relative_to(PACKAGE)
            group = relative.parts[0].removesuffix(".py")
            if group not in ORDER:
                continue
            below = ORDER[ORDER.index(group) :]
            for imported in _imports(path) & set(ORDER):
                assert imported in below, f"{relative} imports siftflow_nn.{imported}, which comes before it"

    def test_nothing_below_imports_the_command_line(self):
        for path in PACKAGE.rglob("*.py"):
            relative = path.relative_to(PACKAGE)
            if relative.parts[0] not in ("cli", "__main__.py"):
                assert "cli" not in _imports(path), f"{relative} imports the command line"

    def test_every_module_imports_on_its_own(self):
        for path in PACKAGE.rglob("*.py"):
            module = ".".join(("siftflow_nn", *path.relative_to(PACKAGE).with_suffix("").parts))
            importlib.import_module(module.removesuffix(".__init__"))
