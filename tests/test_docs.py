"""The README and docs/ stay short, linked and true to the code.

- README.md is a front door: at most 250 lines, none over 200 characters;
- every relative link in README.md and docs/*.md points at an existing file, and every
  ``#anchor`` at a heading of its target (docs/config.md is generated from the config schema:
  a link to it is allowed while the file is not there yet);
- every ``mathrecipes``, ``snakemake``, ``pytest`` and ``python`` command the docs show (in bash
  code blocks and inline code) uses real subcommands, options, rules, markers and files;
- every repository path named in inline code exists;
- the lists that mirror a registry name every entry of it (format adapters, synthesis
  methods, grading policies).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]
# Written by a generator from the config schema, not by hand; links to it are fine before it exists.
GENERATED = {REPO / "docs" / "config.md"}

MAX_README_LINES = 250
MAX_LINE_CHARS = 200

LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\s*$")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
COMMANDS = ("mathrecipes", "snakemake", "pytest", "python")
REPO_DIRS = ("benchmarks", "configs", "docs", "envs", "profiles", "prompts", "report", "rules",
             "scripts", "src", "tests", ".ci")  # fmt: skip
# snakemake options followed by a value (the rest are flags).
SNAKEMAKE_VALUE_OPTIONS = {
    "--cores", "-c", "--jobs", "-j", "--configfile", "--configfiles", "--config", "--profile",
    "--report", "--forcerun", "-R", "--until", "--directory", "-d",
}  # fmt: skip
SNAKEMAKE_RULE_OPTIONS = {"--forcerun", "-R", "--until"}


def _page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()) or line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@functools.cache
def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    for line in _prose_lines(page.read_text()):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = _slug(m.group(1))
            n = 0
            while (slug if n == 0 else f"{slug}-{n}") in anchors:
                n += 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(page: Path) -> list[str]:
    return [m.group(1) for line in _prose_lines(page.read_text()) for m in LINK.finditer(line)]


def _code_commands(page: Path) -> list[str]:
    """Shell commands shown in bash code blocks and in inline code, one per entry."""
    commands: list[str] = []
    lang, block = None, []
    for line in page.read_text().splitlines():
        m = FENCE.match(line.strip())
        if m and lang is None:
            lang, block = m.group(1), []
            continue
        if line.strip() == "```" and lang is not None:
            if lang in ("bash", "sh", "console"):
                commands.extend(re.sub(r"\\\n\s*", " ", "\n".join(block)).splitlines())
            lang = None
            continue
        if lang is not None:
            block.append(line)
        else:
            commands.extend(INLINE_CODE.findall(line))
    out = []
    for command in commands:
        for part in re.split(r"&&|;|\|", command):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                continue
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words = words[1:]  # leading VAR=value assignments
            if len(words) >= 2 and words[0] in COMMANDS:
                out.append(" ".join(shlex.quote(w) for w in words))
    return out


def _all_commands(program: str) -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for command in _code_commands(page):
            words = shlex.split(command)
            if words[0] == program:
                found.append((_page_id(page), words[1:]))
    return found


@functools.cache
def _help(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, *args, "--help"], capture_output=True, text=True, cwd=REPO, check=True
    )
    return out.stdout


def _mentions_option(help_text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


@functools.cache
def _rules() -> set[str]:
    files = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
    return {m for f in files for m in re.findall(r"(?m)^rule (\w+):", f.read_text())}


# ---------------------------------------------------------------------------------------------


def test_the_readme_fits_on_a_screen():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"
    long = [(i, len(line)) for i, line in enumerate(lines, 1) if len(line) > MAX_LINE_CHARS]
    assert not long, f"README.md lines over {MAX_LINE_CHARS} characters (line, length): {long}"


def test_the_readme_links_every_page_of_the_docs():
    linked = {(README.parent / link.split("#")[0]).resolve() for link in _links(README)}
    pages = {p.resolve() for p in [*DOCS, *GENERATED]}
    assert pages <= linked, f"not linked from README.md: {sorted(map(str, pages - linked))}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_relative_links_resolve(page):
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if target in GENERATED and not target.exists():
            continue
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading '#{anchor}' in {target.name}")
    assert not broken, f"{_page_id(page)}: {broken}"


def test_mathrecipes_commands_exist():
    commands = _all_commands("mathrecipes")
    assert commands, "the docs show no mathrecipes command"
    m = re.search(r"\{([\w,-]+)\}", _help("-m", "mathrecipes.cli"))
    assert m, "no subcommand list in `mathrecipes --help`"
    subcommands = set(m.group(1).split(","))
    wrong = []
    for page, args in commands:
        sub = args[0]
        if sub in ("-h", "--help"):
            continue
        if sub not in subcommands:
            wrong.append(f"{page}: mathrecipes {sub}: not a subcommand ({sorted(subcommands)})")
            continue
        sub_help = _help("-m", "mathrecipes.cli", sub)
        for word in args[1:]:
            option = word.split("=")[0]
            if option.startswith("-") and not _mentions_option(sub_help, option):
                wrong.append(f"{page}: mathrecipes {sub} has no option {option}")
    assert not wrong, wrong


def test_snakemake_commands_use_real_options_rules_and_files():
    commands = _all_commands("snakemake")
    assert commands, "the docs show no snakemake command"
    snakemake_help = _help("-m", "snakemake")
    wrong = []
    for page, args in commands:
        i = 0
        while i < len(args):
            word = args[i]
            option = word.split("=")[0]
            if word.startswith("-"):
                if not _mentions_option(snakemake_help, option):
                    wrong.append(f"{page}: snakemake has no option {option}")
                if option in SNAKEMAKE_VALUE_OPTIONS and "=" not in word:
                    i += 1
                    value = args[i] if i < len(args) else ""
                    if option in SNAKEMAKE_RULE_OPTIONS and value not in _rules():
                        wrong.append(f"{page}: snakemake {option} {value}: no such rule")
                    if option in ("--configfile", "--profile") and not (REPO / value).exists():
                        wrong.append(f"{page}: snakemake {option} {value}: no such path")
            elif word not in _rules():
                wrong.append(f"{page}: snakemake {word}: not a rule of the workflow")
            i += 1
    assert not wrong, wrong


def test_pytest_and_python_commands_name_real_markers_and_files():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    markers = {m.split(":")[0] for m in pyproject["tool"]["pytest"]["ini_options"]["markers"]}
    wrong = []
    for page, args in _all_commands("pytest"):
        i = 0
        while i < len(args):
            if args[i] == "-m" and i + 1 < len(args):
                words = set(re.findall(r"\w+", args[i + 1])) - {"and", "or", "not"}
                wrong += [f"{page}: pytest -m: unknown marker {w}" for w in words - markers]
                i += 1
            elif not args[i].startswith("-") and not (REPO / args[i].split("::")[0]).exists():
                wrong.append(f"{page}: pytest {args[i]}: no such path")
            i += 1
    for page, args in _all_commands("python"):
        if args[0].endswith(".py") and not (REPO / args[0]).exists():
            wrong.append(f"{page}: python {args[0]}: no such script")
    assert not wrong, wrong


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_repository_paths_in_inline_code_exist(page):
    missing = []
    for line in _prose_lines(page.read_text()):
        for code in INLINE_CODE.findall(line):
            for word in code.split():
                path = word.rstrip(".,:;)")
                if path.split("/")[0] not in REPO_DIRS or "/" not in path:
                    continue
                if re.search(r"[<>{}*]", path):
                    continue  # a pattern, not a path
                if not (REPO / path.split("::")[0]).exists():
                    missing.append(path)
    assert not missing, f"{_page_id(page)}: no such path: {missing}"


def test_the_format_list_names_every_format_adapter():
    from mathrecipes.sources.formats import FORMATS

    text = (REPO / "docs" / "datasets.md").read_text()
    section = text.split("\n## Format adapters\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"(?m)^- `(\w+)`", section))
    assert set(FORMATS) == listed, (set(FORMATS) - listed, listed - set(FORMATS))


def test_the_synthesis_page_has_a_section_per_method():
    from mathrecipes.synthesis import METHODS

    text = (REPO / "docs" / "synthesis.md").read_text()
    sections = set(re.findall(r"(?m)^### `(\w+)`$", text))
    assert set(METHODS) == sections, (set(METHODS) - sections, sections - set(METHODS))


def test_the_grading_page_lists_every_policy():
    from mathrecipes.grading import GradeSettings

    if hasattr(GradeSettings, "model_fields"):
        names = set(GradeSettings.model_fields)
    else:
        names = {f.name for f in dataclasses.fields(GradeSettings)}
    table = [
        line
        for line in (REPO / "docs" / "grading.md").read_text().splitlines()
        if line[:3] == "| `"
    ]
    documented = {n for line in table for n in re.findall(r"`(\w+)`", line.split("|")[1])}
    execution = {"timeout_s", "workers", "float_rounding", "numeric_precision"}
    assert names - execution == documented, (names - execution - documented, documented - names)


def test_the_grading_cases_are_numbered_as_the_tests_number_them():
    text = (REPO / "docs" / "grading.md").read_text()
    section = text.split("\n## The cases a grader must get right\n", 1)[1]
    documented = [int(n) for n in re.findall(r"(?m)^(\d+)\. \*\*", section)]
    assert documented == list(range(1, len(documented) + 1)), documented
    tests = (REPO / "tests" / "test_grading_cases.py").read_text()
    pinned = {int(n) for n in re.findall(r"(?m)^\s*C\(\s*(\d+),", tests)}
    reporting = {35, 36}  # pinned by the file's record and disagreement-report tests
    assert pinned | reporting == set(documented), (pinned | reporting) ^ set(documented)
