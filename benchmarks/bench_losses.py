"""The loss study: which data term teaches the example's flow network best, and what a change of light does.

The example's network and optimiser (``UnsupervisedFlowModule`` with ``configs/flow_tiny.yaml``'s
model options: a ``TinyFlowNet`` on frozen SIFT Flow descriptors, Adam, the config's learning rate
and smoothness weight) is trained without ground truth on ``synthetic_pair`` images, once per data
term, with everything else fixed:

- ``Charbonnier``: photometric L1, ``sqrt(e^2 + eps^2) - eps`` of image 1 minus image 2 warped back
  by the flow (kornia's ``charbonnier_loss`` at the scale ``eps = 1e-3``), mean over channels;
- ``census``: the soft ternary census transform and soft Hamming distance of UnFlow / ARFlow
  (:func:`siftflow_nn.losses.census_loss`, 7 x 7 window) of image 1 and warped image 2;
- ``SSIM``: ``(1 - SSIM) / 2`` of image 1 and warped image 2 (kornia's ``ssim_loss``, 3 x 3 window);
- ``SIFT Flow descriptor``: the example's own loss, the descriptor distance of image 1's
  descriptors and image 2's warped ones (:func:`siftflow_nn.descriptor_warp_loss`, the config's
  metric).

Each is masked where the flow leaves image 2, and the module's smoothness term is added with one
weight for all. The data terms come in their own units (the descriptor distance sums 128 channels,
the others average), so one weight is a different balance for each: the study runs the config's
weight (0.1, chosen for the descriptor loss) and a tenth of it.

Two conditions: (a) image 1 is image 2 warped, nothing else; (b) image 1 is also seen in another
light (:func:`siftflow_nn.synthetic.appearance_change`: gamma, contrast, brightness, smooth
shading). Every loss sees the same training pairs in the same order for a seed and starts from the
same network, 3 seeds (the initialisation and the batch order); the table gives the end-point error
on held-out pairs of the same condition (mean and standard deviation over the seeds, a 3-pixel
border left out; the untrained network's and the zero flow's for scale) and the median wall time of
a training step (descriptors, network, loss, backward, Adam), losses interleaved.

    python benchmarks/bench_losses.py [--quick] [--device cuda] [--plot docs/figures/bench_losses.png]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from _common import print_table, synchronize
from kornia.losses import charbonnier_loss, ssim_loss

from siftflow_nn import descriptor_warp_loss, end_point_error, warp, warp_valid_mask
from siftflow_nn.lightning.training import UnsupervisedFlowModule, smoothness
from siftflow_nn.losses import census_loss
from siftflow_nn.synthetic import synthetic_pair

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "flow_tiny.yaml"
CHARBONNIER_EPS = 1e-3  # the library's charbonnier default (and UnFlow's epsilon)
CENSUS_PATCH = 7  # UnFlow's window
SSIM_WINDOW = 3  # ARFlow's and Monodepth's 3 x 3 SSIM
CONDITIONS = {"no appearance change": 0.0, "appearance change": 1.0}
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def masked_mean(per_pixel: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``(B, H, W)`` values over the ``(B, 1, H, W)`` valid points."""
    weights = valid[:, 0].to(per_pixel.dtype)
    return (per_pixel * weights).sum() / weights.sum()


def charbonnier_term(image1: torch.Tensor, warped: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    # kornia's penalty is sqrt(e^2 + 1) - 1, an L2 for image differences below 1; at the scale eps
    # it is eps * (sqrt((e / eps)^2 + 1) - 1) = sqrt(e^2 + eps^2) - eps, the smooth L1 wanted.
    eps = CHARBONNIER_EPS
    return masked_mean(eps * charbonnier_loss(image1 / eps, warped / eps).mean(dim=1), valid)


def census_term(image1: torch.Tensor, warped: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return census_loss(image1, warped, mask=valid, patch_size=CENSUS_PATCH)


def ssim_term(image1: torch.Tensor, warped: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return masked_mean(ssim_loss(image1, warped, SSIM_WINDOW, reduction="none").mean(dim=1), valid)


PHOTOMETRIC: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "charbonnier": charbonnier_term,
    "census": census_term,
    "ssim": ssim_term,
}
LABELS = {"charbonnier": "Charbonnier (L1)", "census": "census", "ssim": "SSIM", "descriptor": "SIFT Flow descriptor"}


def training_loss(module: UnsupervisedFlowModule, loss: str, image1: torch.Tensor, image2: torch.Tensor):
    """The module's forward pass and ``loss``'s data term plus the module's smoothness term."""
    d1, d2 = module.descriptor(torch.cat([image1, image2])).chunk(2)
    flow = module.model(d1, d2)
    if loss in PHOTOMETRIC:
        data = PHOTOMETRIC[loss](image1, warp(image2, flow), warp_valid_mask(flow))
    else:  # exactly the example's training step
        data = descriptor_warp_loss(d1, d2, flow, module.hparams.metric)
    return data + module.hparams.smoothness_weight * smoothness(flow)


def make_pairs(count: int, size: int, max_displacement: float, appearance: float, first_seed: int) -> Batch:
    """``count`` synthetic pairs stacked: ``(N, 3, S, S)`` images and ``(N, 2, S, S)`` true flows."""
    pairs = [
        synthetic_pair(size, size, max_displacement, seed=first_seed + 4 * index, appearance=appearance)
        for index in range(count)
    ]
    return tuple(torch.stack(parts) for parts in zip(*pairs))


def held_out_epe(module: UnsupervisedFlowModule, held_out: Batch, args: argparse.Namespace) -> float:
    """End-point error of ``module``'s flow over the held-out pairs (a ``margin`` left out)."""
    module.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(held_out[0]), args.batch_size):
            image1, image2, truth = (part[start : start + args.batch_size].to(args.device) for part in held_out)
            total += float(end_point_error(module(image1, image2), truth, args.margin)) * len(truth)
    return total / len(held_out[0])


def new_module(seed: int, args: argparse.Namespace, model_options: dict) -> UnsupervisedFlowModule:
    """The example's module as ``seed`` initialises it: every loss starts from the same network."""
    torch.manual_seed(seed)
    return UnsupervisedFlowModule(**model_options).to(args.device)


def train_and_score(
    loss: str, seed: int, train: Batch, held_out: Batch, args: argparse.Namespace, model_options: dict
) -> tuple[float, float]:
    """Held-out EPE after ``args.steps`` steps, and the median milliseconds of a step."""
    device = torch.device(args.device)
    module = new_module(seed, args, model_options).train()
    optimizer = module.configure_optimizers()
    order = torch.Generator().manual_seed(seed)
    epochs = -(-args.steps * args.batch_size // len(train[0]))
    indices = torch.cat([torch.randperm(len(train[0]), generator=order) for _ in range(epochs)])
    step_seconds = []
    for step in range(args.steps):
        batch = indices[step * args.batch_size : (step + 1) * args.batch_size]
        image1, image2 = (part[batch].to(device) for part in train[:2])
        synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad()
        value = training_loss(module, loss, image1, image2)
        value.backward()
        optimizer.step()
        synchronize(device)
        step_seconds.append(time.perf_counter() - start)
        if not torch.isfinite(value):
            raise RuntimeError(f"{loss}, seed {seed}: the loss is {value.item()} at step {step}")
    # The first step pays for first-call set-up (allocations, kernel selection): the median skips it.
    return held_out_epe(module, held_out, args), 1000 * statistics.median(step_seconds[1:] or step_seconds)


def spread(values: list[float]) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {deviation:.2f}"


def plot(path: str, args: argparse.Namespace, results: dict, references: dict, milliseconds: dict) -> None:
    """A panel per smoothness weight: EPE per loss and condition (mean, one standard deviation over
    the seeds, each seed a dot), the untrained network's and the zero flow's EPE as lines; and the
    time per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(args.smoothness_weights)
    figure, axes = plt.subplots(
        1, panels + 1, figsize=(4.6 * panels + 3.6, 3.9), gridspec_kw={"width_ratios": [2] * panels + [1.1]}
    )
    labels, width = [LABELS[loss] for loss in args.losses], 0.38
    for axis, weight in zip(axes, args.smoothness_weights):
        for offset, (condition, colour) in enumerate(zip(CONDITIONS, ("tab:blue", "tab:orange"))):
            xs = [index + (offset - 0.5) * width for index in range(len(args.losses))]
            values = [results[loss, condition, weight] for loss in args.losses]
            deviations = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            axis.bar(xs, [statistics.mean(v) for v in values], width, yerr=deviations, capsize=3, color=colour,
                     alpha=0.8, label=condition)  # fmt: skip
            for x, seeds in zip(xs, values):
                axis.plot([x] * len(seeds), seeds, "k.", markersize=3)
            untrained, zero = references[condition]
            axis.axhline(statistics.mean(untrained), color=colour, linestyle=":", linewidth=1.2)
            axis.axhline(zero, color="gray", linestyle="--", linewidth=1)
        axis.set_xticks(range(len(labels)), labels, fontsize=7)
        axis.set_title(f"smoothness weight {weight:g}", fontsize=9)
        axis.set_ylim(0, 1.15 * max(zero for _, zero in references.values()))
    axes[0].plot([], [], "k:", linewidth=1.2, label="untrained network")
    axes[0].plot([], [], "--", color="gray", linewidth=1, label="zero flow")
    axes[0].set_ylabel("held-out end-point error (px)")
    axes[0].legend(fontsize=7, loc="upper right")
    timing = axes[-1]
    timing.barh(labels, [milliseconds[loss] for loss in args.losses], color="tab:gray")
    timing.invert_yaxis()
    timing.tick_params(labelsize=7)
    timing.set_xlabel(f"ms per training step ({args.device})", fontsize=8)
    figure.suptitle(
        f"{args.size} x {args.size} synthetic pairs, {args.steps} steps of {args.batch_size}, {args.seeds} seeds",
        fontsize=9,
    )
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    print(f"\nfigure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is present")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=80, help="training steps of every run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=32, help="side of the square images")
    parser.add_argument("--train-pairs", type=int, default=64)
    parser.add_argument("--held-out-pairs", type=int, default=32)
    parser.add_argument("--margin", type=int, default=3, help="border left out of the EPE (pixels)")
    parser.add_argument("--losses", nargs="+", choices=LABELS, default=list(LABELS), help="a subset to train")
    parser.add_argument("--smoothness-weights", nargs="+", type=float, metavar="W",
                        help="each the same for every loss; default: the config's and a tenth of it")  # fmt: skip
    parser.add_argument("--plot", metavar="FILE", help="draw the figure (needs matplotlib)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 steps, 1 seed, 4 held-out pairs")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.train_pairs, args.held_out_pairs = 1, 2, 8, 4
    started = time.perf_counter()
    config = yaml.safe_load(CONFIG.read_text())
    model_options, max_displacement = config["model"], float(config["data"]["max_displacement"])
    if args.smoothness_weights is None:
        args.smoothness_weights = [model_options["smoothness_weight"], model_options["smoothness_weight"] / 10]
    print(
        f"{args.size} x {args.size} pairs, flow up to {max_displacement} px; {args.train_pairs} training and "
        f"{args.held_out_pairs} held-out pairs; {args.steps} steps of {args.batch_size}; {args.seeds} seeds; "
        f"model {model_options}, smoothness weights {args.smoothness_weights}; {args.device}, "
        f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results: dict[tuple[str, str, float], list[float]] = {}
    milliseconds: dict[str, list[float]] = {loss: [] for loss in args.losses}
    references: dict[str, tuple[list[float], float]] = {}  # the untrained network's EPE by seed, the zero flow's
    for condition, appearance in CONDITIONS.items():
        train = make_pairs(args.train_pairs, args.size, max_displacement, appearance, first_seed=1)
        held_out = make_pairs(args.held_out_pairs, args.size, max_displacement, appearance, first_seed=1_000_001)
        untrained = [held_out_epe(new_module(seed, args, model_options), held_out, args) for seed in range(args.seeds)]
        zero_flow = float(end_point_error(torch.zeros_like(held_out[2]), held_out[2], args.margin))
        references[condition] = untrained, zero_flow
        for weight in args.smoothness_weights:
            options = {**model_options, "smoothness_weight": weight}
            # Seed by seed, every loss in turn: a change in the machine's load falls on all of them alike.
            for seed in range(args.seeds):
                for loss in args.losses:
                    epe, step_ms = train_and_score(loss, seed, train, held_out, args, options)
                    results.setdefault((loss, condition, weight), []).append(epe)
                    milliseconds[loss].append(step_ms)
            for loss in args.losses:
                epes = [round(value, 3) for value in results[loss, condition, weight]]
                print(f"  {condition}, smoothness {weight:g}, {LABELS[loss]}: EPE by seed {epes}", flush=True)
    median_ms = {loss: statistics.median(values) for loss, values in milliseconds.items()}
    header = ["loss", *(f"{condition}, smoothness {weight:g}" for weight in args.smoothness_weights
                        for condition in CONDITIONS), f"ms / step ({args.device})"]  # fmt: skip
    columns = [(condition, weight) for weight in args.smoothness_weights for condition in CONDITIONS]
    rows = [[LABELS[loss], *(spread(results[loss, c, w]) for c, w in columns), median_ms[loss]] for loss in args.losses]
    rows.append(["untrained network", *(spread(references[c][0]) for c, _ in columns), "-"])
    rows.append(["zero flow", *(f"{references[c][1]:.2f}" for c, _ in columns), "-"])
    print_table(f"Held-out EPE (px) after {args.steps} steps, mean ± sd over {args.seeds} seeds", header, rows)
    if args.plot:
        plot(args.plot, args, results, references, median_ms)
    print(f"\ntotal {time.perf_counter() - started:.0f} s (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
