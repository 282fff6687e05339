"""appearance_change and synthetic_pair's appearance: what changes, what stays, bad input."""

import pytest
import torch

from siftflow_nn.synthetic import appearance_change, synthetic_pair, textured_image
from tests.base import BaseTester


class TestAppearanceChange(BaseTester):
    def test_deterministic_in_range_and_the_identity_at_strength_zero(self):
        image = textured_image(24, 32, seed=1)
        changed = appearance_change(image, seed=5)
        assert torch.equal(changed, appearance_change(image, seed=5))
        assert not torch.equal(changed, appearance_change(image, seed=6))
        assert changed.shape == image.shape and changed.min() >= 0 and changed.max() <= 1
        assert torch.equal(appearance_change(image, strength=0.0), image)
        assert appearance_change(image.double(), seed=5).dtype == torch.float64

    def test_changes_grow_with_strength(self):
        image = textured_image(24, 32, seed=1)
        changes = [(appearance_change(image, strength, seed=3) - image).abs().mean() for strength in (0.25, 0.5, 1)]
        assert 0 < changes[0] < changes[1] < changes[2]

    def test_a_smooth_change_of_light_keeps_the_local_order_of_intensities(self):
        # Gamma, contrast and brightness are one increasing map for the whole image, and the shading
        # changes slowly: between neighbours that differ clearly, which one is brighter stays (where
        # nothing saturates).
        image = textured_image(48, 48, channels=1, seed=2)
        changed = appearance_change(image, seed=4)
        before, after = image[0, :, 1:] - image[0, :, :-1], changed[0, :, 1:] - changed[0, :, :-1]
        unsaturated = (changed[0, :, 1:] > 0) & (changed[0, :, 1:] < 1) & (changed[0, :, :-1] > 0)
        unsaturated &= changed[0, :, :-1] < 1
        clear = (before.abs() > 0.01) & unsaturated
        assert clear.sum() > 500 and ((before * after)[clear] > 0).all()
        # ... and the change does not slide the image: a constant image stays smooth.
        flat = appearance_change(torch.full((1, 48, 48), 0.5), seed=4)
        assert (flat[:, :, 1:] - flat[:, :, :-1]).abs().max() < 0.02 and flat.std() > 0.01

    def test_synthetic_pair_changes_image1_only(self):
        plain = synthetic_pair(24, 32, max_displacement=2.0, seed=7)
        changed = synthetic_pair(24, 32, max_displacement=2.0, seed=7, appearance=1.0)
        assert torch.equal(plain[1], changed[1]) and torch.equal(plain[2], changed[2])
        self.assert_close(changed[0], appearance_change(plain[0], 1.0, seed=10))
        assert torch.equal(synthetic_pair(24, 32, max_displacement=2.0, seed=7, appearance=0.0)[0], plain[0])

    def test_rejects_bad_arguments(self):
        image = textured_image(8, 8)
        with pytest.raises(ValueError, match="strength must be a non-negative finite number, got -1"):
            appearance_change(image, strength=-1.0)
        with pytest.raises(ValueError, match="strength must be a non-negative finite number"):
            synthetic_pair(8, 8, appearance=-0.5)
        with pytest.raises(TypeError, match="strength must be a non-negative number, got str"):
            appearance_change(image, strength="1")
        expected = r"image must be a float tensor \(C, H, W\) in \[0, 1\], got a torch.float32 tensor of shape \(1, 3, "
        with pytest.raises(ValueError, match=expected):
            appearance_change(image[None])
        with pytest.raises(ValueError, match="got a torch.uint8 tensor"):
            appearance_change((image * 255).to(torch.uint8))


def test_a_varied_document_benchmark_has_a_page_size_per_scan_centred_on_the_size_asked(tmp_path):
    from siftflow_nn.io import read_image
    from siftflow_nn.synthetic import write_document_benchmark

    rec_dir, scan_dir = write_document_benchmark(tmp_path, scans=3, height=40, width=30, varied_sizes=True)
    sizes = [tuple(read_image(scan_dir / f"{index}.png").shape[-2:]) for index in (1, 2, 3)]
    assert sizes == [(36, 27), (40, 30), (44, 33)]
    assert tuple(read_image(rec_dir / "3_2 copy_rec.png").shape[-2:]) == (44, 33)
