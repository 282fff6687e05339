"""Every input either works or says why: option types, odd tensors, outputs, and no process-wide side effects."""

import os
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import siftflow_nn as sf
from siftflow_nn.io import OutputError, write_image


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: sf.SIFTFlowDescriptor(include_boundary="no"), TypeError, "include_boundary must be a bool, got str"),
        (lambda: sf.sift_flow_descriptor(torch.rand(1, 1, 9, 9), include_boundary="no"), TypeError,
         "include_boundary must be a bool"),
        (lambda: sf.SIFTFlow(fast="no"), TypeError, "fast must be a bool, got str 'no'"),
        (lambda: sf.SIFTFlow(alpha="x"), TypeError, "alpha must be a non-negative number, got str 'x'"),
        (lambda: sf.SIFTFlow(d=-1), ValueError, "d must be a non-negative finite number, got -1"),
        (lambda: sf.local_match(torch.rand(1, 8, 5, 5), torch.rand(1, 8, 5, 5), radius=-1), ValueError,
         "radius must be a non-negative int, got -1"),
        (lambda: sf.local_match(torch.rand(1, 8, 5, 5), torch.rand(1, 8, 5, 5), radius=True), TypeError,
         "radius must be a non-negative int, got bool"),
        (lambda: sf.local_match(torch.rand(1, 8, 5, 5), torch.rand(1, 8, 5, 5), radius=2.0), TypeError,
         "radius must be a non-negative int, got float"),
        (lambda: sf.flow_to_color(torch.zeros(2, 3, 3), max_flow=0), ValueError, "max_flow must be a positive number"),
        (lambda: sf.flow_to_color(torch.zeros(2, 3, 3), max_flow=-1), ValueError, "max_flow must be a positive"),
        (lambda: sf.SIFTFlowDescriptor()(torch.rand(1, 3, 16, 16, device="meta")), ValueError,
         "image is on the meta device"),
        (lambda: write_image("x.png", torch.rand(1, 3, 8, 8)), ValueError,
         r"image must be a C x H x W tensor with C = 1, 3 or 4, got \(1, 3, 8, 8\)"),
        (lambda: sf.SiftFlowTorch(cuda=False).extract_descriptor([torch.rand(3, 20, 30)]), ValueError,
         r"images\[0\] has shape \(3, 20, 30\), which looks like C x H x W"),
    ],
)  # fmt: skip
def test_bad_values_get_a_clear_error(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_integer_like_options_from_configs_are_accepted():
    """NumPy integers and 0-d integer tensors (as configs and sweeps produce them) are ints."""
    image = torch.rand(1, 1, 20, 20)
    expected = sf.sift_flow_descriptor(image, cell_size=2, step_size=2)
    for cell_size, step in ((np.int64(2), np.int32(2)), (torch.tensor(2), torch.tensor(2)), ([np.int64(2)], 2)):
        torch.testing.assert_close(sf.sift_flow_descriptor(image, cell_size=cell_size, step_size=step), expected)
    assert sf.SIFTFlowDescriptor(cell_size=np.int64(3), include_boundary=np.bool_(False)).cell_sizes == [3]
    assert sf.SIFTFlow(num_levels=np.int64(2)).num_levels == 2


def test_descriptor_colours_of_a_map_with_nan_and_a_large_one():
    descriptor = torch.rand(16, 6, 7)
    descriptor[:, 2, 3] = float("nan")
    colours = sf.descriptor_to_color(descriptor)
    assert colours.shape == (3, 6, 7) and torch.isfinite(colours).all()
    assert colours[:, 2, 3].tolist() == [0.0, 0.0, 0.0]
    everything_nan = sf.descriptor_to_color(torch.full((8, 3, 3), float("nan")))
    assert everything_nan.abs().max() == 0


def test_outputs_into_missing_folders_name_the_users_path(tmp_path):
    target = tmp_path / "missing" / "flow.flo"
    with pytest.raises(OutputError, match=f"{target}: the folder {target.parent} does not exist"):
        sf.write_flo(target, torch.zeros(2, 3, 3))


def test_atomic_writes_leave_the_umask_alone_across_threads(tmp_path):
    """Files get 0666 minus the umask from the system, without changing the process's umask."""
    previous = os.umask(0o027)
    try:
        seen = []
        threads = [
            threading.Thread(
                target=lambda i=i: (
                    write_image(tmp_path / f"{i}.png", torch.rand(3, 4, 4)),
                    seen.append(os.umask(0o027)),
                )
            )  # fmt: skip
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(seen) == {0o027}
        assert {stat.S_IMODE((tmp_path / f"{i}.png").stat().st_mode) for i in range(8)} == {0o640}
    finally:
        os.umask(previous)


def test_compat_recycles_memory_with_public_means_only():
    import siftflow_nn.compat as compat

    source = Path(compat.__file__).read_text()
    assert "torch._C" not in source and "_storage_Use_Count" not in source
    sift_flow = sf.SiftFlowTorch(cuda=False)
    images = [np.random.randint(0, 256, (20, 24, 3), dtype=np.uint8)]
    first = sift_flow.extract_descriptor(images)
    view = first[:, :4].numpy()  # a NumPy view of a view still holds the memory
    pointer = first.data_ptr()
    del first
    second = sift_flow.extract_descriptor(images)
    assert second.data_ptr() != pointer
    pointer = second.data_ptr()
    del second, view
    assert sift_flow.extract_descriptor(images).data_ptr() == pointer  # released: recycled


def test_export_onnx_explains_what_it_needs(tmp_path):
    pytest.importorskip("onnxscript")
    from siftflow_nn.export import export_onnx, run_onnx

    with pytest.raises(ValueError, match=r"SIFTFlowLoss.forward takes 2 inputs \(image1, image2\): pass example="):
        export_onnx(sf.SIFTFlowLoss(), tmp_path / "loss.onnx")
    path = tmp_path / "descriptor.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing of ours is swallowed wholesale any more
        export_onnx(sf.SIFTFlowDescriptor(), path)
    with pytest.raises(ValueError, match="was exported with 3 channels, got 1; export again"):
        run_onnx(path, torch.rand(1, 1, 32, 32))
    with pytest.raises(OutputError, match="does not exist"):
        export_onnx(sf.SIFTFlowDescriptor(), tmp_path / "missing" / "d.onnx")
