"""The install and packaging claims hold: Python minimums, extras, sdist contents, links.

* The Python version the README names for the pinned set (``constraints.txt``) satisfies
  the ``Requires-Python`` of every pinned package installed here at its pinned version,
  and the library's own minimum is pyproject's ``requires-python``.
* Everything ``multiloss`` imports is in its dependencies or its ``[demo]`` extra, so the
  README's main job (``pip install -e ".[demo]"``) is enough for ``multiloss demo``.
* The sdist, built in-process by setuptools from a clean copy of the checkout, carries
  the tests and every file they read, the LICENSE, and PEP 639 license metadata.
* The README's links are absolute https URLs, so they work from a package index page.
"""

from __future__ import annotations

import ast
import email.parser
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INDEX = ROOT / "docs" / "index.md"
CONSTRAINTS = ROOT / "constraints.txt"
REPOSITORY = "https://github.com/multiloss/multiloss"

# The phrases in which the README and docs/index.md state the two minimums.
LIBRARY_MINIMUM = re.compile(r"library itself needs\s+Python\s+≥\s+(\d+(?:\.\d+)*)")
PINNED_MINIMUM = re.compile(r"pinned, tested\s+set[^≥]{0,120}?needs\s+Python\s+≥\s+(\d+(?:\.\d+)*)")
ANY_MINIMUM = re.compile(r"Python\s+≥\s+(\d+(?:\.\d+)*)")
CONSTRAINTS_MINIMUM = re.compile(r"pinned set needs Python >= (\d+(?:\.\d+)*)")

# Files outside the grafted folders that the tests (or the docs build) read.
READ_BY_TESTS = (
    "CHANGELOG.md",
    "LICENSE",
    "README.md",
    "constraints.txt",
    "mkdocs.yml",
    ".ci/run",
)
GRAFTED = ("tests/", "docs/", "examples/")


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _packaging():
    pytest.importorskip("packaging")
    from packaging import requirements, specifiers, utils

    return requirements, specifiers, utils


def _one(pattern: re.Pattern[str], text: str, where: str) -> str:
    found = set(pattern.findall(text))
    assert len(found) == 1, f"{where}: expected one version for {pattern.pattern!r}, got {found}"
    return found.pop()


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"constraints.txt: {line!r} is not a == pin"
            pins[name.strip()] = pinned.strip()
    return pins


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


# --- Python minimums ---------------------------------------------------------------------


def test_the_pinned_set_runs_on_the_python_the_readme_names() -> None:
    _, specifiers, _ = _packaging()
    readme_minimum = _one(PINNED_MINIMUM, README.read_text(encoding="utf-8"), "README.md")
    checked, refused, excludes_previous = [], [], []
    major, minor = _version_tuple(readme_minimum)[:2]
    previous = f"{major}.{minor - 1}"
    for name, pinned in _pins().items():
        try:
            installed = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if not specifiers.SpecifierSet(f"=={pinned}").contains(installed.version):
            continue  # another version is installed here: its Requires-Python says nothing
        requires = specifiers.SpecifierSet(installed.metadata.get("Requires-Python") or "")
        checked.append(name)
        if not requires.contains(readme_minimum):
            refused.append(f"{name}=={pinned} (Requires-Python {requires})")
        if not requires.contains(previous):
            excludes_previous.append(name)
    if not checked:
        pytest.skip("no package of constraints.txt is installed at its pinned version")
    assert not refused, f"the README says the pinned set needs Python ≥ {readme_minimum}: {refused}"
    if len(checked) == len(_pins()):
        # The whole pinned set is here: the minimum is also tight (one pin refuses the
        # Python before it), unless it is the library's own minimum.
        library = _one(LIBRARY_MINIMUM, README.read_text(encoding="utf-8"), "README.md")
        if readme_minimum != library:
            assert excludes_previous, f"every pin installs on Python {previous}: lower the README"


def test_the_python_minimums_agree_everywhere() -> None:
    _, specifiers, _ = _packaging()
    requires_python = _toml(ROOT / "pyproject.toml")["project"]["requires-python"]
    pinned = _one(CONSTRAINTS_MINIMUM, CONSTRAINTS.read_text(encoding="utf-8"), "constraints.txt")
    for page in (README, INDEX):
        text = page.read_text(encoding="utf-8")
        library = _one(LIBRARY_MINIMUM, text, page.name)
        assert specifiers.SpecifierSet(requires_python) == specifiers.SpecifierSet(
            f">={library}"
        ), f"{page.name} says the library needs Python ≥ {library}; pyproject: {requires_python}"
        assert _one(PINNED_MINIMUM, text, page.name) == pinned, f"{page.name} vs constraints.txt"
        # Any other "Python ≥ X" is about the commands, which use the pinned set.
        library_spans = [m.span(1) for m in LIBRARY_MINIMUM.finditer(text)]
        for match in ANY_MINIMUM.finditer(text):
            if match.span(1) not in library_spans:
                assert _version_tuple(match.group(1)) >= _version_tuple(pinned), (
                    f"{page.name} says Python ≥ {match.group(1)} where the pinned set is used"
                )


# --- pyproject metadata and extras -------------------------------------------------------


def test_the_license_is_an_spdx_expression_setuptools_can_read() -> None:
    requirements, _, utils = _packaging()
    config = _toml(ROOT / "pyproject.toml")
    project = config["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    setuptools = [
        requirements.Requirement(r)
        for r in config["build-system"]["requires"]
        if utils.canonicalize_name(requirements.Requirement(r).name) == "setuptools"
    ]
    assert setuptools, "[build-system] requires no setuptools"
    # PEP 639 (an SPDX string and license-files) needs setuptools 77 or later.
    assert not setuptools[0].specifier.contains("76.99", prereleases=True)


def test_the_project_urls_point_at_the_repository() -> None:
    urls = _toml(ROOT / "pyproject.toml")["project"]["urls"]
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Changelog", "Issues"}
    for label, url in urls.items():
        assert url.startswith(REPOSITORY), f"{label}: {url}"
        if "/blob/main/" in url:
            assert (ROOT / url.split("/blob/main/", 1)[1]).is_file(), f"{label}: {url}"


def _third_party_imports() -> dict[str, str]:
    """Third-party top-level modules that multiloss imports (no relative, no stdlib): -> file."""
    found = {}
    for path in sorted((ROOT / "multiloss").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("multiloss", "__future__"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_the_demo_extra_covers_every_import_of_the_library() -> None:
    requirements, _, utils = _packaging()
    project = _toml(ROOT / "pyproject.toml")["project"]
    extras = project["optional-dependencies"]

    def expand(specs: list[str]) -> set[str]:
        names = set()
        for spec in specs:
            requirement = requirements.Requirement(spec)
            if utils.canonicalize_name(requirement.name) == "multiloss":
                for extra in requirement.extras:
                    names |= expand(extras[extra])
            else:
                names.add(utils.canonicalize_name(requirement.name))
        return names

    demo = expand(project["dependencies"]) | expand(extras["demo"])
    distributions = importlib.metadata.packages_distributions()
    imports = _third_party_imports()
    assert {"numpy", "torch", "jax", "matplotlib"} <= set(imports)
    # triton, the kernel engine's, comes with the CUDA builds of torch (a dependency of
    # those wheels) and with the [test] extra; never with [demo] or [torch] (issue 21)
    engine_only = {"triton": "test"}
    missing = {}
    for module, where in imports.items():
        if module in engine_only:
            assert module in expand(extras[engine_only[module]]), (module, where)
            continue
        provided_by = {utils.canonicalize_name(d) for d in distributions.get(module, [module])}
        if not provided_by & demo:
            missing[module] = where
    assert not missing, f"imported by multiloss but not in [demo] or the dependencies: {missing}"


def test_the_readme_commands_use_the_right_extras() -> None:
    text = README.read_text(encoding="utf-8")
    commands = re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)
    demo = [c for c in commands if "multiloss demo" in c]
    tests = [c for c in commands if "python -m pytest" in c]
    assert len(demo) == 1 and len(tests) == 1, commands
    assert '-e ".[demo]"' in demo[0] and "[test]" not in demo[0]
    assert "-c constraints.txt" in demo[0]
    # .ci/run sets up and tests exactly as the README's test command does.
    readme_steps = [step.strip() for step in tests[0].strip().split("&&")]
    ci_steps = [
        re.sub(r"\s+--quiet\b", "", line).strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.startswith((".venv/", "python3 -m venv"))
    ]
    assert ci_steps == readme_steps


# --- the sdist -----------------------------------------------------------------------------


def _checkout_files() -> list[str]:
    """Files a clean clone would have: tracked, or new and not ignored (about to be added)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
        files = [name for name in listed.split("\0") if name and (ROOT / name).is_file()]
    except (OSError, subprocess.SubprocessError):
        files = []  # no git, or not a checkout (an unpacked sdist): take the tree as it is
    if not files:
        skipped = {"__pycache__", "build", "dist", "site", "multiloss-demo", "results"}
        for path in ROOT.rglob("*"):
            parts = path.relative_to(ROOT).parts
            if (
                path.is_file()
                and path.suffix != ".pyc"
                and not skipped & set(parts)
                and not any(part.endswith(".egg-info") for part in parts)
                and not any(part.startswith(".") and part != ".ci" for part in parts)
            ):
                files.append(path.relative_to(ROOT).as_posix())
    return sorted(files)


def _needed_by_the_tests(files: list[str]) -> list[str]:
    return [
        name
        for name in files
        if name in READ_BY_TESTS
        or name.startswith(GRAFTED)
        or (name.startswith("benchmarks/") and name.count("/") == 1 and name.endswith(".py"))
    ]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict, list[str]]:
    """Build the sdist in-process from a copy of the checkout: (members, PKG-INFO, warnings)."""
    build_meta = pytest.importorskip("setuptools.build_meta")
    requirements, _, _ = _packaging()
    import setuptools

    wanted = next(
        requirements.Requirement(r)
        for r in _toml(ROOT / "pyproject.toml")["build-system"]["requires"]
        if r.startswith("setuptools")
    )
    if not wanted.specifier.contains(setuptools.__version__, prereleases=True):
        pytest.skip(f"setuptools {setuptools.__version__} here; the build needs {wanted}")

    source = tmp_path_factory.mktemp("checkout")
    for name in _checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patch.chdir(source)  # the build writes its egg-info and build/ here, not in ROOT
        patch.setattr(sys, "argv", list(sys.argv))  # build_meta overwrites sys.argv
        name = build_meta.build_sdist(str(out))
    with tarfile.open(out / name) as archive:
        members = archive.getnames()
        top = members[0].split("/")[0]
        pkg_info = archive.extractfile(f"{top}/PKG-INFO").read().decode("utf-8")
    metadata = email.parser.Parser().parsestr(pkg_info, headersonly=True)
    relative = sorted(m.split("/", 1)[1] for m in members if "/" in m)
    return relative, metadata, [str(w.message) for w in caught]


def test_the_sdist_carries_the_tests_and_what_they_read(sdist) -> None:
    members, _, _ = sdist
    needed = _needed_by_the_tests(_checkout_files())
    assert "tests/test_packaging.py" in needed and "benchmarks/run.py" in needed
    missing = sorted(set(needed) - set(members))
    assert not missing, f"the sdist lacks files the tests read: {missing}"
    for name in (*READ_BY_TESTS, "pyproject.toml", "multiloss/py.typed", "multiloss/__init__.py"):
        assert name in members, name
    assert not [m for m in members if m.endswith(".pyc") or "/__pycache__/" in m]
    assert not [m for m in members if m.startswith("benchmarks/results/")]


def test_the_sdist_metadata_has_the_license_expression(sdist) -> None:
    _, metadata, caught = sdist
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in (metadata.get_all("License-File") or [])
    assert metadata["Requires-Python"] == ">=3.10"
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert urls.get("Source") == REPOSITORY, urls
    license_warnings = [w for w in caught if "licen" in w.lower()]
    assert not license_warnings, license_warnings


# --- README links --------------------------------------------------------------------------


def _readme_links() -> list[str]:
    text = README.read_text(encoding="utf-8")
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)  # fenced code
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    inline = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    references = re.findall(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text, re.M)
    return inline + references


def test_the_readme_links_are_absolute() -> None:
    links = _readme_links()
    relative = [link for link in links if not link.startswith("https://")]
    assert not relative, f"README links that break on a package index page: {relative}"
    into_repository = {}
    for link in links:
        match = re.fullmatch(re.escape(REPOSITORY) + r"/(?:blob|tree)/main/([^#?]+)", link)
        if match:
            into_repository[match.group(1)] = link
    assert {"docs/index.md", "CHANGELOG.md"} <= set(into_repository), links
    for path, link in into_repository.items():
        assert (ROOT / path).exists(), f"{link}: no {path} in the repository"
