"""Fidelity to the original, in numbers: every reference case of tests/data/reference.

Prints, per group of cases (float64 transcription / Ce Liu's C++) and precision, the worst share
of stored (uint8) entries equal to the reference and the largest uint8 and float differences, over
the descriptors whose channel choice does not depend on rounding (the reference's ``tied`` mask).
The tests (tests/descriptor/test_reference.py) hold every case to >= 99.9% equal, difference <= 1, float 1e-5.

    python benchmarks/fidelity.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from _common import print_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import siftflow_nn as sf  # noqa: E402
from tests.descriptor.test_reference import CASES, _descriptor, _load  # noqa: E402  (one reading of the data)


def main() -> None:
    rows = []
    for group, names in [("float64 transcription", [n for n in CASES if "/" not in n]),
                         ("C++ original", [n for n in CASES if n.startswith("cpp/")])]:  # fmt: skip
        for dtype in (torch.float32, torch.float64):
            worst_equal, worst_u8, worst_float, compared, total = 1.0, 0, 0.0, 0, 0
            for name in names:
                case = _load(name)
                ours = _descriptor(case, dtype)
                untied = ~case["tied"]
                compared, total = compared + int(untied.sum()), total + untied.size
                if not untied.any():
                    continue
                difference = np.abs(sf.to_uint8(ours).numpy().astype(np.int16) - case["desc_u8"].astype(np.int16))
                worst_equal = min(worst_equal, float((difference[untied] == 0).mean()))
                worst_u8 = max(worst_u8, int(difference[untied].max()))
                if "desc" in case:
                    worst_float = max(worst_float, float(np.abs(ours.double().numpy() - case["desc"])[untied].max()))
            float_column = f"{worst_float:.1e}" if group.startswith("float64") else "-"
            name = str(dtype).removeprefix("torch.")
            rows.append(
                [group, name, len(names), f"{compared / total:.3f}", f"{worst_equal:.5f}", worst_u8, float_column]
            )
    print_table(
        "Fidelity to the original imSIFT (untied descriptors)",
        [
            "reference",
            "dtype",
            "cases",
            "share compared",
            "worst share equal (uint8)",
            "max uint8 diff",
            "max float diff",
        ],  # fmt: skip
        rows,
    )


if __name__ == "__main__":
    main()
