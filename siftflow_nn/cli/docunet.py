"""``siftflow-nn docunet``: a document-unwarping benchmark's whole table over a folder of results.

The layouts (which files a benchmark expects) are ``siftflow_nn.metrics.layouts``, the scoring
``siftflow_nn.metrics.runner``, the results file and its resume ``siftflow_nn.metrics.results``,
the means and tables ``siftflow_nn.metrics.report``: this module reads the arguments, checks
everything it can before any work, and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from siftflow_nn._progress import Progress
from siftflow_nn.cli._arguments import (
    CommandFailed,
    UsageError,
    add_device_option,
    available_memory,
    device_from,
    output_path,
    positive_int,
)
from siftflow_nn.lightning import DEFAULT_MAX_PIXELS
from siftflow_nn.metrics import layouts, report, results, runner


def register(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "docunet",
        allow_abbrev=False,
        help="a document-unwarping benchmark's MS-SSIM, LD, Li-D, AD, ED and CER over a folder of results",
        description="Score unwarped results against their scans as the benchmarks' evaluation scripts do "
        "(DocUNet's eval.m, DIR300's, the UVDoc benchmark's; or any pairs list), and print each pair's scores, "
        "every mean and the papers' table. The layout is found from the file names (--layout chooses it) and "
        "printed with how many pairs it expects and how many are there. Exit status 1 when an expected pair is "
        "missing or could not be scored.",
    )
    command.add_argument("rec_dir", metavar="REC_DIR", nargs="?", help="the unwarped results")
    command.add_argument("scan_dir", metavar="SCAN_DIR", nargs="?", help="the flat scans (the ground truth)")
    where = command.add_argument_group("what to score")
    where.add_argument(
        "--layout",
        choices=["auto", *layouts.LAYOUTS],
        default="auto",
        help="the benchmark whose file names to expect (default: found from the names)",
    )
    where.add_argument(
        "--results",
        metavar="TEMPLATE",
        help="the results' file names, {k} the scan's number and {m} the photo's: e.g. '{k}_{m} copy_rec.png' "
        "(DocTr), '{k}_{m}.png' (UVDoc), '{k}_{m} copy.png' (DewarpNet, PaperEdge); default: found from the names",
    )
    where.add_argument(
        "--pairs",
        metavar="FILE",
        help="score the pairs a CSV file lists (header result,scan or result,scan,photo; paths "
        "relative to its folder) instead of REC_DIR and SCAN_DIR",
    )
    where.add_argument(
        "--photos",
        metavar="DIR",
        help="the distorted input photos, whose sizes the uvdoc OCR protocol resizes results to (default: the "
        "layout's folder beside SCAN_DIR: crop/ for DocUNet, dist/ for DIR300, warped_textures/ for UVDoc)",
    )
    how = command.add_argument_group("how to score")
    how.add_argument(
        "--ocr", choices=["doctr", "uvdoc"], help="also ED and CER by DocTr's or UVDoc's OCR script (needs Tesseract)"
    )
    how.add_argument(
        "--subset",
        help="the scans whose results are OCR'd: all, a subset's name (DocUNet: setting1, setting2; DIR300: "
        "docgeonet; UVDoc: uvdoc) or N,N,... (default: the OCR protocol's own)",
    )
    how.add_argument(
        "--rotate-64",
        action="store_true",
        help="DocUNet: turn the results of the photos 64_1 and 64_2, which are rotated by 180 degrees "
        "against their scan, back before scoring (most papers score them as they are)",
    )
    how.add_argument(
        "--scan-resize",
        choices=["once", "uvdoc"],
        default="once",
        help="once: as eval.m; uvdoc: as UVDoc's evalScript.m, whose second photo of each scan is "
        "scored against the scan resized twice",
    )
    how.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images with more pixels, before any work (default {DEFAULT_MAX_PIXELS})",
    )
    how.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="pairs (and OCR images) worked on at once, on a share of the CPU threads each: this process and N - 1 "
        "more, as many as the memory holds (default 1)",
    )
    add_device_option(how)
    out = command.add_argument_group("outputs")
    out.add_argument(
        "--csv",
        metavar="FILE",
        help="write each pair's scores here as they come; a second run with the same FILE scores only "
        "the pairs it does not hold yet (rows computed from other files or options are refused)",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="score again the pairs whose --csv rows were computed from other files or options",
    )
    out.add_argument("--report", metavar="FILE", help="write the means and each pair's scores as Markdown (.md)")
    out.add_argument(
        "--figures",
        metavar="DIR",
        help="draw each pair's scan with its flow's length and direction, and a summary of the scores, into DIR",
    )
    command.set_defaults(handler=docunet)


class _Terminated(Exception):
    """SIGTERM, handled as Ctrl-C is: the rows written are kept."""


def docunet(args: argparse.Namespace) -> int:
    benchmark, photo_dir = _benchmark(args)
    csv_path = output_path(args.csv, [".csv"], "--csv")[0] if args.csv else None
    report_path = output_path(args.report, [".md"], "--report")[0] if args.report else None
    figures = _figures_folder(args.figures)
    device = device_from(args.device)
    if args.jobs > 1 and device.type != "cpu":
        raise UsageError(f"argument --jobs: runs pairs in parallel on the CPU; --device is {device}")
    tesseract = _tesseract(args.ocr)
    options = runner.RunOptions(
        layout=benchmark.layout.name if benchmark.layout is not None else "pairs",
        device=str(device),
        ocr=args.ocr,
        ocr_keys=_ocr_keys(args, benchmark, photo_dir),
        tesseract=tesseract,
        figures=figures,
        max_pixels=args.max_pixels,
    )
    print(benchmark.describe())
    _warn(benchmark, args)
    failures = [_missing(pair, path) for pair, path in benchmark.missing]
    for failure in failures:
        print(f"siftflow-nn: error: {failure}", file=sys.stderr)
    file = _results_file(csv_path, runner.sources(benchmark.pairs, options), args.overwrite)
    done = file.done if file is not None else {}
    todo = [pair for pair in benchmark.pairs if pair.key not in done]
    if done:
        print(f"resuming {csv_path}: {len(done)} of {benchmark.expected} pairs already scored", file=sys.stderr)
    jobs = _jobs(todo, args, device)
    if file is not None:
        file.prepare()  # a file that cannot be written fails here, before any work
    rows = dict(done)
    run = runner.BenchmarkRun(todo, options, jobs)
    start = time.perf_counter()
    progress = Progress(len(todo), "docunet", "pair")  # scored pairs: a failed one takes no time to count
    try:
        # closed on the way out, so that an interruption ends the workers at once
        with _sigterm_as_interrupt(), contextlib.closing(iter(run)) as events:
            for event in events:
                if isinstance(event, runner.Failed):
                    failures.append(event.message)
                    print(f"siftflow-nn: error: {_shown(event.message)}", file=sys.stderr)
                    continue
                rows[event.pair.key] = event.row
                if file is not None:
                    file.append(event.row)
                print(_pair_line(event), flush=True)
                progress.update(1, _shown(event.pair.key))
    except (KeyboardInterrupt, _Terminated) as interruption:
        kept = f"the {len(rows)} rows scored are kept in {csv_path}: run the same command again to resume"
        what = "interrupted" if isinstance(interruption, KeyboardInterrupt) else "terminated (SIGTERM)"
        print(f"siftflow-nn: {what}: " + (kept if file is not None else "nothing kept (no --csv)"), file=sys.stderr)
        return 130 if isinstance(interruption, KeyboardInterrupt) else 143
    except runner.WorkerDied as error:
        kept = f"the {len(rows)} rows scored are kept in {csv_path}: run again to resume"
        raise CommandFailed(f"{error}; {kept if file is not None else 'nothing kept (no --csv)'}") from None
    finally:
        progress.close()
        if file is not None:
            file.close()
    _close(benchmark, [rows[pair.key] for pair in benchmark.pairs if pair.key in rows], run, options, args,
           report_path, time.perf_counter() - start)  # fmt: skip
    if failures:
        again = f" with --csv {csv_path} to score only those" if csv_path is not None else ""
        print(f"{len(failures)} failed (listed above): fix them and run again{again}", file=sys.stderr)
        return 1
    return 0


# --- before any work -----------------------------------------------------------------------------


def _benchmark(args: argparse.Namespace) -> tuple[layouts.Benchmark, Path | None]:
    """The layout's pairs (or the pairs list's), and the photos' folder."""
    if args.pairs is not None:
        if args.rec_dir is not None or args.layout != "auto" or args.results is not None:
            raise UsageError(
                "argument --pairs: lists the pairs itself: give no REC_DIR, SCAN_DIR, --layout or --results"
            )
        for name, given in (("--rotate-64", args.rotate_64), ("--scan-resize uvdoc", args.scan_resize == "uvdoc")):
            if given:
                raise UsageError(f"argument {name.split()[0]}: applies to DocUNet's layout, not to a pairs list")
        try:
            return layouts.read_pairs_list(args.pairs), None
        except layouts.LayoutError as error:
            raise UsageError(f"argument --pairs: {error}") from None
    if args.scan_dir is None:
        raise UsageError("the arguments REC_DIR and SCAN_DIR are required (or --pairs FILE)")
    rec_dir, scan_dir = (_folder(text, name) for text, name in ((args.rec_dir, "REC_DIR"), (args.scan_dir, "SCAN_DIR")))
    try:
        if args.layout == "auto":
            if args.results is not None:
                raise UsageError("argument --results: give --layout too (docunet, dir300 or uvdoc)")
            layout, template = layouts.detect_layout(rec_dir, scan_dir)
        else:
            layout = layouts.LAYOUTS[args.layout]
            template = args.results or layout.results[0]
        if args.rotate_64 and not layout.rotated:
            raise UsageError(f"argument --rotate-64: {layout.title} has no rotated photos (DocUNet has)")
        if args.scan_resize == "uvdoc" and len(layout.photos) < 2:
            raise UsageError(f"argument --scan-resize: uvdoc changes only the second photos of a scan; "
                             f"{layout.title} has one photo a scan")  # fmt: skip
        photo_dir = Path(args.photos) if args.photos else scan_dir.parent / layout.photo_folder
        found = layouts.find_pairs(layout, template, rec_dir, scan_dir, photo_dir, args.rotate_64, args.scan_resize)
    except layouts.LayoutError as error:
        raise UsageError(str(error)) from None
    return found, photo_dir


def _folder(text: str, name: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise UsageError(f"argument {name}: {text} is not a folder")
    return path


def _figures_folder(text: str | None) -> Path | None:
    if text is None:
        return None
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"argument --figures: {text} is a file, not a folder")
    if not folder.parent.is_dir():
        raise UsageError(f"argument --figures: {text}: the folder {folder.parent} does not exist")
    if importlib.util.find_spec("matplotlib") is None:
        from siftflow_nn.metrics.figures import INSTALL_HINT

        raise UsageError(f"argument --figures: the figures need matplotlib: {INSTALL_HINT}")
    folder.mkdir(exist_ok=True)
    return folder


def _tesseract(protocol: str | None) -> str | None:
    """Tesseract's version when OCR is asked for; without it, the one-line error, before any work."""
    if protocol is None:
        return None
    from siftflow_nn.metrics.ocr import TesseractNotFoundError, tesseract_version

    try:
        return tesseract_version()
    except TesseractNotFoundError as error:
        raise CommandFailed(f"argument --ocr: {error}") from None


def _ocr_keys(args: argparse.Namespace, benchmark: layouts.Benchmark, photo_dir: Path | None) -> frozenset[str]:
    """The pairs whose results are OCR'd (the subset's scans'), checked for what the protocol reads."""
    if args.ocr is None:
        if args.subset is not None:
            raise UsageError("argument --subset: chooses the images OCR reads: give --ocr too")
        return frozenset()
    from siftflow_nn.metrics.ocr import OCR_PROTOCOLS

    protocol = OCR_PROTOCOLS[args.ocr]
    pairs = benchmark.pairs + [pair for pair, _ in benchmark.missing]
    if benchmark.layout is None:
        if args.subset not in (None, "all"):
            raise UsageError("argument --subset: a pairs list has no subsets: all its pairs are OCR'd")
        keys = frozenset(pair.key for pair in pairs)
    else:
        try:
            scans = set(benchmark.layout.ocr_scans(args.subset, protocol.subset))
        except layouts.LayoutError as error:
            raise UsageError(f"argument {error}") from None
        keys = frozenset(pair.key for pair in pairs if pair.index in scans)
    if protocol.resize_to_photo:
        if benchmark.layout is None and any(pair.photo is None for pair in pairs if pair.key in keys):
            raise UsageError(f"argument --ocr: {args.ocr} resizes each result to its distorted photo's size: "
                             f"the pairs list needs the column photo")  # fmt: skip
        if photo_dir is not None and not photo_dir.is_dir():
            looked = "" if args.photos else f" (looked for beside SCAN_DIR, the layout's {photo_dir.name}/)"
            raise UsageError(f"argument --ocr: {args.ocr} resizes each result to its distorted photo's size: "
                             f"no folder {photo_dir}{looked}; give --photos DIR")  # fmt: skip
    return keys


def _warn(benchmark: layouts.Benchmark, args: argparse.Namespace) -> None:
    layout = benchmark.layout
    if benchmark.ignored:
        names = ", ".join(_shown(name) for name in benchmark.ignored[:3]) + (
            ", ..." if len(benchmark.ignored) > 3 else ""
        )
        print(f"ignored: {len(benchmark.ignored)} images the layout does not name ({names})", file=sys.stderr)
    rotated = [pair for pair in benchmark.pairs if layout is not None and (pair.index, pair.number) in layout.rotated]
    if rotated and not args.rotate_64:
        print(
            f"warning: {' and '.join(pair.key for pair in rotated)}: DocUNet's photos 64_1 and 64_2 are rotated by "
            "180 degrees against their scan (DocScanner's and DocGeoNet's READMEs); scored as they are, as most "
            "papers do; --rotate-64 turns them back first",
            file=sys.stderr,
        )


def _results_file(path: Path | None, sources: list, overwrite: bool) -> results.ResultsFile | None:
    """The --csv file opened for the run (its resume notes printed), or None without --csv."""
    if path is None:
        return None
    try:
        file = results.ResultsFile(path, sources, overwrite)
    except results.ResultsError as error:
        raise UsageError(f"argument --csv: {error}") from None
    for note in file.notes:
        print(note, file=sys.stderr)
    return file


def _missing(pair: layouts.Pair, path: Path) -> str:
    if path == pair.scan:
        return f"{_shown(pair.key)}: its scan {path} is missing"
    return f"{path}: missing (an expected result of the scan {pair.scan.name})"


def _jobs(todo: list[layouts.Pair], args: argparse.Namespace, device) -> int:
    """``--jobs`` as the memory allows; the pixel budget checked on every image first."""
    try:
        plan = runner.plan_memory(
            todo, args.jobs, args.max_pixels, available_memory() if device.type == "cpu" else None
        )
    except runner.PixelBudgetError as error:
        raise CommandFailed(str(error)) from None
    if plan.jobs < args.jobs:
        print(
            f"--jobs {args.jobs} lowered to {plan.jobs}: a pair may take about {plan.pair_bytes / 2**30:.1f} GiB at "
            f"its peak ({plan.largest.key}) and a worker {runner.PROCESS_BYTES / 2**30:.1f} GiB more, "
            f"{plan.available / 2**30:.1f} GiB is available",
            file=sys.stderr,
        )
    return plan.jobs


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def terminated(signum, frame) -> None:
        raise _Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- printing ------------------------------------------------------------------------------------


def _shown(text: str) -> str:
    """A name as one line of a terminal: control characters (a newline) written as escapes."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def _pair_line(event: runner.Scored) -> str:
    row = event.row
    scores = f"MS-SSIM {row.ms_ssim:.6f}  LD {row.ld:.4f}  Li-D {row.li_d:.4f}  AD {row.ad:.4f}"
    if row.ed is not None:
        scores += f"  ED {row.ed:.0f}  CER {row.cer:.4f}"
    return f"{_shown(row.result):<24} {_shown(row.scan):<12} {scores}  ({event.seconds:.2f} s)"


def _close(
    benchmark: layouts.Benchmark,
    rows: list[results.Row],
    run: runner.BenchmarkRun,
    options: runner.RunOptions,
    args: argparse.Namespace,
    report_path: Path | None,
    seconds: float,
) -> None:
    """Every mean, the papers' table, the times; the report and the summary figure."""
    averages = report.means(row.scores() for row in rows)
    ocr = f"{options.ocr} protocol, Tesseract {options.tesseract}" if options.ocr else None
    for line in [*report.mean_lines(averages, benchmark.expected, ocr), "", *report.paper_table(averages)]:
        print(line)
    times = f"image metrics: {run.image_seconds:.1f} s of work for {len(run.pairs)} pairs"
    if options.ocr:
        times += f"; OCR: {run.ocr_seconds:.1f} s for {run.ocr_images} images"
    print(f"{times}; {seconds:.1f} s in all on {run.jobs} job{'s' if run.jobs > 1 else ''}", file=sys.stderr)
    table = [{"result": row.result, "scan": row.scan, **row.scores()} for row in rows]
    if report_path is not None:
        facts = [benchmark.describe(), f"options: {_options_text(args)}"]
        if ocr:
            facts.append(f"OCR: {ocr} (OCR numbers depend on Tesseract's version)")
        report.write_report(report_path, f"{benchmark.layout.title if benchmark.layout else 'Pairs'} benchmark",
                            facts, averages, table)  # fmt: skip
    if options.figures is not None and table:
        from siftflow_nn.metrics.figures import summary_figure

        summary_figure(table, options.figures / "summary.png")


def _options_text(args: argparse.Namespace) -> str:
    chosen = [f"--ocr {args.ocr}" if args.ocr else None, f"--subset {args.subset}" if args.subset else None,
              "--rotate-64" if args.rotate_64 else None,
              "--scan-resize uvdoc" if args.scan_resize == "uvdoc" else None]  # fmt: skip
    return " ".join(option for option in chosen if option) or "the evaluation script's defaults"
