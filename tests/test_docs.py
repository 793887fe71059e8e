"""The documentation site builds, and the Python examples of its pages run.

* ``mkdocs build --strict`` (Material theme, mkdocstrings API pages) must pass: a broken
  link or anchor, a page missing from the nav, or a docstring mkdocstrings cannot read
  fails it.
* Every ```` ```python ```` block of ``docs/**/*.md`` and ``README.md`` is executed, the
  blocks of one page in order in one fresh namespace, so the examples never go stale. A
  page whose blocks import a backend that is not installed is skipped as a whole.
* The built HTML of the pages and the API reference holds no raw reST (``.. math::``,
  ``:func:`` roles, ``Example::`` literal markers, ``>>>`` examples turned into nested
  block quotes) and no math outside the ``arithmatex`` elements that KaTeX typesets; every
  name of each module's ``__all__`` has an entry (an element with its id) on its API page.
  The site is built once per test run, by a module-scoped fixture.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
BACKEND_MODULES = ("numpy", "torch", "jax")

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.S | re.M
)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """The ```python blocks of a page: (line of the block's first code line, code)."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        first_line = text.count("\n", 0, match.start("code")) + 1
        blocks.append((first_line, textwrap.dedent(match.group("code"))))
    return blocks


def imported_modules(code: str) -> set[str]:
    """The modules a block imports (``multiloss.<adapter>`` kept whole, others by package)."""
    modules = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            modules.add(".".join(name.split(".")[:2]) if top == "multiloss" else top)
    return modules


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


PAGES_WITH_CODE = [page for page in PAGES if python_blocks(page)]


def test_the_docs_have_examples() -> None:
    names = {_page_id(page) for page in PAGES_WITH_CODE}
    for page in ("docs/index.md", "docs/math.md", "docs/semantics.md", "docs/migration.md"):
        assert page in names, f"{page} has no ```python example"


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_page_id)
def test_page_examples_run(page: Path) -> None:
    blocks = python_blocks(page)
    needed = set().union(*(imported_modules(code) for _, code in blocks))
    for module in sorted(needed):
        pytest.importorskip(module, reason=f"{_page_id(page)} needs {module}")
    namespace: dict[str, object] = {"__name__": f"docs_example_{page.stem}"}
    for first_line, code in blocks:
        # Pad with blank lines so that a traceback points at the line of the page.
        compiled = compile("\n" * (first_line - 1) + code, str(page), "exec")
        exec(compiled, namespace)


def test_api_reference_covers_every_backend() -> None:
    """One API page per adapter module present in the package, wired into the nav."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "::: multiloss\n" in (DOCS / "api" / "multiloss.md").read_text(encoding="utf-8")
    for name in BACKEND_MODULES:
        if not _source(f"multiloss.{name}").exists():  # a module or a package
            continue
        page = DOCS / "api" / f"{name}.md"
        assert page.exists(), f"multiloss.{name} has no API page"
        assert f"::: multiloss.{name}\n" in page.read_text(encoding="utf-8")
        assert f"api/{name}.md" in config, f"api/{name}.md is not in the nav"


@dataclass(frozen=True)
class BuiltSite:
    """The result of one ``mkdocs build --strict`` into a temporary directory."""

    returncode: int
    output: str
    root: Path

    def page(self, relative: str) -> Path:
        """The built page of ``docs/<relative>`` (``use_directory_urls``: ``x.md`` ->
        ``x/index.html``)."""
        source = Path(relative)
        if source.name == "index.md":
            return self.root / source.parent / "index.html"
        return self.root / source.with_suffix("") / "index.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """The documentation site, built once for every test of this module that needs it."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.skip("mkdocs is not installed (mkdocs, mkdocs-material, mkdocstrings[python])")
    for plugin in ("material", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(plugin) is None:
            pytest.skip(f"{plugin} is not installed")
    root = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--config-file", "mkdocs.yml", "--site-dir", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    return BuiltSite(result.returncode, result.stdout + result.stderr, root)


def _built(site: BuiltSite) -> BuiltSite:
    if site.returncode != 0:
        pytest.fail(f"the site did not build (see test_site_builds_strict):\n{site.output}")
    return site


def test_site_builds_strict(site: BuiltSite) -> None:
    assert site.returncode == 0, site.output
    assert (site.root / "index.html").exists()
    numpy_api = site.page("api/numpy.md").read_text(encoding="utf-8")
    assert "with the semantics of" in numpy_api  # mkdocstrings rendered the docstrings
    parity = site.page("parity.md").read_text(encoding="utf-8")
    assert "kornia-mean" in parity


def test_site_serves_katex_itself(site: BuiltSite) -> None:
    """Math renders offline: KaTeX, its auto-render and its fonts come with the site."""
    root = _built(site).root
    page = site.page("index.md").read_text(encoding="utf-8")
    for asset in (
        "javascripts/katex/katex.min.js",
        "javascripts/katex/contrib/auto-render.min.js",
        "javascripts/katex-init.js",
        "javascripts/katex/katex.min.css",
    ):
        assert (root / asset).is_file(), f"{asset} is missing from the site"
        assert asset in page, f"{asset} is not linked from the pages"
    assert not re.search(r"""(?:src|href)=["']https?://[^"']*katex""", page, re.I), "a KaTeX CDN"
    css = (root / "javascripts/katex/katex.min.css").read_text(encoding="utf-8")
    fonts = re.findall(r"url\(([^)]+)\)", css)
    assert fonts, "katex.min.css references no fonts"
    missing = [font for font in fonts if not (root / "javascripts/katex" / font).is_file()]
    assert not missing, f"katex.min.css references fonts that are not vendored: {missing}"


# ---------------------------------------------------------------------------------------
# What the built HTML must not show: reST markup, unrendered math, collapsed examples.

REST_PATTERNS = {
    "reST directive": re.compile(r"\.\.\s+[a-z][\w-]*::"),
    "reST role": re.compile(
        r"(?<![\w:]):(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|ref|math|const|doc|term):"
        r"(?=`|\s|$)"
    ),
    "reST literal marker (Example::)": re.compile(r"(?<!\.\. )\b[A-Za-z]\w*::(?=\s|$)"),
    "doctest prompt in prose": re.compile(r">>>"),
}
MATH_PATTERNS = {
    "math outside arithmatex": re.compile(r"\$\$|\\[A-Za-z]+|\\[(\[]"),
}
PARAGRAPH_PATTERNS = {
    # A reST definition list or indented block ("Derivatives\n    Each loss ..."), which
    # Markdown runs into one paragraph.
    "indented lines run into a paragraph": re.compile(r"\S[ \t]*\n[ \t]{2,}\S"),
}
VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
    | {"track", "wbr"}
)
CODE_ELEMENTS = frozenset({"code", "pre", "script", "style", "kbd", "samp", "textarea"})
BLOCK_ELEMENTS = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "pre", "blockquote", "table", "tr", "td"}
    | {"th", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr", "section", "details", "summary"}
)


@dataclass(frozen=True)
class Prose:
    """A run of text outside code: where it starts in the page's text, and where it is."""

    offset: int
    text: str
    in_math: bool
    tag: str


class PageScanner(HTMLParser):
    """Collects a page's element ids, its text, and the runs of it that are prose (outside
    code), marked as inside an ``arithmatex`` element or not; notes block quotes nested in
    block quotes (what ``>>>`` lines become when they are not in an ``Examples:`` section)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.text = ""
        self.prose: list[Prose] = []
        self.nested_blockquotes: list[int] = []
        self._stack: list[tuple[str, bool, bool, int]] = []  # tag, in code, in math, quotes

    def _state(self) -> tuple[bool, bool, int]:
        return self._stack[-1][1:] if self._stack else (False, False, 0)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_startendtag(tag, attrs)
        if tag in BLOCK_ELEMENTS:
            self.text += "\n"
        if tag in VOID_ELEMENTS:
            return
        in_code, in_math, quotes = self._state()
        classes = (dict(attrs).get("class") or "").split()
        if tag == "blockquote":
            quotes += 1
            if quotes == 2:
                self.nested_blockquotes.append(len(self.text))
        self._stack.append(
            (tag, in_code or tag in CODE_ELEMENTS, in_math or "arithmatex" in classes, quotes)
        )

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element_id = dict(attrs).get("id")
        if element_id:
            self.ids.add(element_id)

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCK_ELEMENTS:
            self.text += "\n"
        for depth in range(len(self._stack) - 1, -1, -1):
            if self._stack[depth][0] == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        in_code, in_math, _ = self._state()
        if not in_code and data.strip():
            tag = self._stack[-1][0] if self._stack else ""
            self.prose.append(Prose(len(self.text), data, in_math, tag))
        self.text += data


def scan(page: Path) -> PageScanner:
    scanner = PageScanner()
    scanner.feed(page.read_text(encoding="utf-8"))
    scanner.close()
    return scanner


def findings(scanner: PageScanner) -> list[str]:
    """What a page shows that it should not, as ``kinds: …snippet…`` lines; matches close
    to each other make one line, whose snippet is the page's text around them (code
    included, so that a role shows its target)."""
    matches = [
        (offset, offset + 3, "example rendered as nested block quotes")
        for offset in scanner.nested_blockquotes
    ]
    for run in scanner.prose:
        patterns = dict(REST_PATTERNS)
        if not run.in_math:
            patterns.update(MATH_PATTERNS)
        if run.tag == "p":
            patterns.update(PARAGRAPH_PATTERNS)
        for kind, pattern in patterns.items():
            for match in pattern.finditer(run.text):
                matches.append((run.offset + match.start(), run.offset + match.end(), kind))
    regions: list[tuple[int, int, list[str]]] = []
    for start, end, kind in sorted(matches):
        if regions and start <= regions[-1][1] + 40:
            first, last, kinds = regions[-1]
            regions[-1] = (first, max(last, end), kinds if kind in kinds else [*kinds, kind])
        else:
            regions.append((start, end, [kind]))
    lines = []
    for start, end, kinds in regions:
        snippet = " ".join(scanner.text[max(0, start - 30) : end + 50].split())
        snippet = snippet[:160]
        lines.append(f"{', '.join(kinds)}: …{snippet}…")
    return lines


RENDERED_PAGES = sorted(str(page.relative_to(DOCS)) for page in DOCS.rglob("*.md"))
SNIPPETS_PER_PAGE = 5


def test_rendered_pages_show_no_rest_or_raw_math(site: BuiltSite) -> None:
    """The to-do list of the docstring conversion: every page and snippet where the built
    HTML still shows reST markup or math that KaTeX will not typeset."""
    _built(site)
    report = []
    for relative in RENDERED_PAGES:
        page = site.page(relative)
        assert page.exists(), f"docs/{relative} was not built to {page}"
        found = findings(scan(page))
        if found:
            shown = [f"    - {line}" for line in found[:SNIPPETS_PER_PAGE]]
            if len(found) > SNIPPETS_PER_PAGE:
                shown.append(f"    - … and {len(found) - SNIPPETS_PER_PAGE} more")
            report.append(f"  docs/{relative} ({len(found)}):\n" + "\n".join(shown))
    assert not report, "raw reST or unrendered math in the built site:\n" + "\n".join(report)


FILLER = "<p>" + "Ordinary prose. " * 8 + "</p>"


def test_scanner_sees_what_it_should() -> None:
    """The scanner itself: code and typeset math are exempt, prose is not."""
    scanner = PageScanner()
    scanner.feed(
        "<p>See :func:<code>f</code>.</p><pre><code>.. math:: \\sum $$</code></pre>"
        f"{FILLER}<p>Example::</p>"
        f'{FILLER}<div class="arithmatex">\\[\\sum_k q_k\\]</div>'
        '<p>x \\frac 1 2<br><span class="arithmatex">\\(\\alpha\\)</span></p>'
        f"{FILLER}<blockquote><blockquote><p>import numpy</p></blockquote></blockquote>"
        f"{FILLER}<p>Derivatives\n    Each loss</p>"
    )
    found = findings(scanner)
    assert [line.split(": …")[0] for line in found] == [
        "reST role",
        "reST literal marker (Example::)",
        "math outside arithmatex",
        "example rendered as nested block quotes",
        "indented lines run into a paragraph",
    ], found
    assert found[0].startswith("reST role: …See :func:f.")


# ---------------------------------------------------------------------------------------
# Every public name has an entry on its module's API page.


def _source(module: str) -> Path:
    path = ROOT / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def public_names(module: str) -> list[str]:
    """A module's ``__all__``: read from its source when it is a literal (no framework
    import needed), else from the imported module."""
    for node in ast.parse(_source(module).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:
                break
    return list(pytest.importorskip(module).__all__)


API_PAGES = {
    "multiloss": "api/multiloss.md",
    "multiloss.numpy": "api/numpy.md",
    "multiloss.torch": "api/torch.md",
    "multiloss.jax": "api/jax.md",
}


@pytest.mark.parametrize("module", list(API_PAGES))
def test_api_page_has_an_entry_for_every_public_name(site: BuiltSite, module: str) -> None:
    if not _source(module).exists():
        pytest.skip(f"{module} is not in the package")
    ids = scan(_built(site).page(API_PAGES[module])).ids
    missing = [name for name in public_names(module) if f"{module}.{name}" not in ids]
    assert not missing, (
        f"docs/{API_PAGES[module]} has no entry (an element with id '{module}.<name>') for "
        f"{len(missing)} name(s) of {module}.__all__: {', '.join(missing)}"
    )
