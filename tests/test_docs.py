"""The documentation holds together: every public name has an API entry, the tutorials and the README's
examples run, every relative link and picture exists, and the benchmarks' figure helper draws what it is given.

The site itself is built with warnings as errors in CI (``python -m sphinx -W --keep-going -b html docs
build/docs``), which also catches broken cross-references and docstrings that do not render; these tests
catch the rest without Sphinx, in the test command."""

from __future__ import annotations

import argparse
import contextlib
import doctest
import importlib
import io
import re
import sys
from pathlib import Path

import pytest

from tests.base import BaseTester

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

# The modules whose ``__all__`` the API reference must cover: the package, its public submodules, and
# the modules the tutorials use. ``siftflow_nn.lightning`` has no ``__all__`` of its own (importing it
# needs no Lightning); its three modules have.
PUBLIC_MODULES = [
    "siftflow_nn",
    "siftflow_nn.metrics",
    "siftflow_nn.metrics.layouts",
    "siftflow_nn.metrics.runner",
    "siftflow_nn.metrics.results",
    "siftflow_nn.metrics.report",
    "siftflow_nn.metrics.ocr",
    "siftflow_nn.metrics.figures",
    "siftflow_nn.metrics.training",
    "siftflow_nn.matlab",
    "siftflow_nn.export",
    "siftflow_nn.lightning",
    "siftflow_nn.lightning.training",
    "siftflow_nn.lightning.extraction",
    "siftflow_nn.lightning.reader",
    "siftflow_nn.losses",
    "siftflow_nn.synthetic",
    "siftflow_nn.io",
]
API_ENTRY = re.compile(r"^\.\. auto(?:function|class|exception|data|method|attribute)::\s+(\S+)", re.MULTILINE)
TUTORIALS = sorted(path for path in (DOCS / "tutorials").glob("*.md") if path.name != "index.md")
PAGES = sorted(DOCS.rglob("*.md"))
# [text](target) and ![alt](target), where the target is no web address and no bare anchor.
LINK = re.compile(r"!?\[[^\]]*\]\((?!https?:|mailto:|#)([^)\s]+)\)")


def _resolve(dotted: str) -> object:
    """The object a dotted name names, as autodoc finds it: attributes first (``siftflow_nn.matlab.ssim`` is
    the function the package exports, not its module), submodules where no attribute is there yet."""
    first, *rest = dotted.split(".")
    target = importlib.import_module(first)
    for position, name in enumerate(rest, start=1):
        if not hasattr(target, name):
            importlib.import_module(".".join([first, *rest[:position]]))
        target = getattr(target, name)
    return target


def _api_entries() -> dict[str, object]:
    entries = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for dotted in API_ENTRY.findall(page.read_text()):
            entries[dotted] = _resolve(dotted)
    return entries


def _heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub and MyST (``myst_heading_anchors``) give a page's headings."""
    anchors = set()
    inside_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            inside_code = not inside_code
        elif not inside_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _run_doctests(text: str, name: str) -> tuple[int, int, str]:
    """Run the ``>>>`` examples of ``text`` as pytest runs docstring examples; (failed, tried, report)."""
    test = doctest.DocTestParser().get_doctest(text, {"__name__": name}, name, name, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    runner.run(test, out=report.write)
    return runner.failures, runner.tries, report.getvalue()


class TestAPIReference(BaseTester):
    def test_every_public_name_has_an_api_entry(self):
        documented = {id(target) for target in _api_entries().values()}
        missing = []
        for module_name in PUBLIC_MODULES:
            module = importlib.import_module(module_name)
            for name in getattr(module, "__all__", []):
                if id(getattr(module, name)) not in documented:
                    missing.append(f"{module_name}.{name}")
        assert not missing, f"no entry in docs/api/*.md for {missing}: add an autodoc directive for each"

    def test_every_api_entry_names_a_public_object(self):
        public = {
            id(getattr(module, name))
            for module in map(importlib.import_module, PUBLIC_MODULES)
            for name in getattr(module, "__all__", [])
        }
        stray = [dotted for dotted, target in _api_entries().items() if id(target) not in public]
        assert not stray, f"docs/api/ documents names that no public __all__ holds: {stray}"

    def test_every_api_page_is_in_the_api_index(self):
        index = (DOCS / "api" / "index.md").read_text()
        for page in (DOCS / "api").glob("*.md"):
            if page.name != "index.md":
                assert f"\n{page.stem}\n" in index, f"docs/api/{page.name} is not in docs/api/index.md's toctree"


class TestTutorials(BaseTester):
    def test_there_are_tutorials_and_the_index_lists_them(self):
        assert TUTORIALS
        index = (DOCS / "tutorials" / "index.md").read_text()
        for tutorial in TUTORIALS:
            assert f"\n{tutorial.stem}\n" in index, f"{tutorial.name} is not in docs/tutorials/index.md's toctree"

    @pytest.mark.parametrize("tutorial", TUTORIALS, ids=[path.stem for path in TUTORIALS])
    def test_tutorial_runs(self, tutorial, monkeypatch):
        monkeypatch.chdir(ROOT)  # tutorials read tests/data/ from the repository root
        failed, tried, report = _run_doctests(tutorial.read_text(), f"docs/tutorials/{tutorial.name}")
        assert tried > 0, f"{tutorial.name} has no >>> examples: nothing of it runs"
        assert failed == 0, report

    def test_a_broken_example_fails(self):
        failed, tried, report = _run_doctests(">>> 1 + 1\n3\n", "broken")
        assert (failed, tried) == (1, 1) and "Expected:" in report


class TestReadme(BaseTester):
    def test_readme_examples_run(self, monkeypatch):
        """The README's Python blocks, in order, in one namespace (as a reader pastes them)."""
        monkeypatch.chdir(ROOT)
        blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
        assert len(blocks) >= 4, "the README shows four examples"
        namespace: dict[str, object] = {"__name__": "readme"}
        with contextlib.redirect_stdout(io.StringIO()):
            for number, block in enumerate(blocks, start=1):
                exec(compile(block, f"README.md python block {number}", "exec"), namespace)

    def test_readme_stays_a_landing_page(self):
        assert len(README.read_text().splitlines()) <= 160, "README.md is the landing page: move details into docs/"


class TestLinks(BaseTester):
    @pytest.mark.parametrize("page", [README, *PAGES], ids=lambda path: str(path.relative_to(ROOT)))
    def test_relative_links_and_pictures_exist(self, page):
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # code is not links
        for target in LINK.findall(text):
            path_part, _, anchor = target.partition("#")
            linked = (page.parent / path_part).resolve() if path_part else page
            assert linked.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
            if anchor and linked.suffix == ".md":
                assert anchor in _heading_anchors(linked), (
                    f"{page.relative_to(ROOT)}: no heading #{anchor} in {path_part}"
                )


@pytest.fixture(scope="module")
def plot():
    """benchmarks/_plot.py, imported as the scripts import it (from their folder)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        yield importlib.import_module("_plot")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


class TestPlotHelper(BaseTester):
    """benchmarks/_plot.py: the figures of the benchmarks page come from the rows the scripts print."""

    HEADER = ["step", "batch", "ours ms", "kornia ms"]
    ROWS = [[1, 1, 112.0, 1470.0], [1, 2, 221.0, float("nan")], [1, 4, 396.0, 8259.0], [2, 1, 37.1, ""]]

    def test_draws_lines_and_bars_to_any_format(self, plot, tmp_path):
        plot.plot_table(tmp_path / "lines.png", self.HEADER, self.ROWS, x="batch", y=["ours ms", "kornia ms"],
                        panel="step", log_y=True)  # fmt: skip
        assert (tmp_path / "lines.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        levels = [["ours", "0.85", "0.03", "0.99"], ["original", "0.40", "0.22", "4.94"]]
        plot.plot_table(tmp_path / "bars.svg", ["run", "top", "level 2", "finest"], levels,
                        y=["top", "level 2", "finest"], series="run", kind="bar")  # fmt: skip
        assert b"<svg" in (tmp_path / "bars.svg").read_bytes()
        assert sorted(path.name for path in tmp_path.iterdir()) == ["bars.svg", "lines.png"]  # no temporary left

    def test_the_same_rows_give_the_same_svg(self, plot, tmp_path):
        for name in ("a.svg", "b.svg"):
            plot.plot_table(tmp_path / name, self.HEADER, self.ROWS, x="batch", y="ours ms")
        assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()

    @pytest.mark.parametrize(
        "options, message",
        [
            (dict(x="batch", y="ours"), "column 'ours' is not in the table's header"),
            (dict(y="ours ms"), "kind='line' needs x"),
            (dict(x="batch", y="ours ms", kind="pie"), "kind must be 'line' or 'bar'"),
            (dict(x="batch", y=["ours ms", "kornia ms"], errors="step"), "errors must name one column per y column"),
        ],
    )
    def test_bad_options_are_named(self, plot, tmp_path, options, message):
        with pytest.raises(ValueError, match=re.escape(message)):
            plot.plot_table(tmp_path / "bad.png", self.HEADER, self.ROWS, **options)
        assert not list(tmp_path.iterdir()), "nothing is written for a bad call"

    def test_nothing_to_draw_is_an_error(self, plot, tmp_path):
        with pytest.raises(ValueError, match="no cell of"):
            plot.plot_table(tmp_path / "empty.png", self.HEADER, [[1, 1, "", "n/a"]], x="batch", y="ours ms")

    def test_plot_argument_checks_the_path_before_any_work(self, plot, tmp_path):
        parser = argparse.ArgumentParser()
        plot.add_plot_argument(parser)
        assert parser.parse_args(["--plot", str(tmp_path / "f.svg")]).plot == tmp_path / "f.svg"
        assert parser.parse_args([]).plot is None
        for bad, message in [
            ("f.txt", "a figure must end in .svg, .png, .pdf"),
            (str(tmp_path / "missing" / "f.svg"), "does not exist"),
        ]:
            with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
                plot.figure_path(bad)
