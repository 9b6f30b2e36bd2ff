"""Grading settings and the grader's version.

:class:`GradeSettings` holds how to run (``timeout_s``, ``workers``) and the answer-equivalence
policies (per benchmark, see GRADING.md); :meth:`GradeSettings.policy_json` is written into
every grade row (column ``policy``) so that a policy change is visible in the outputs.
:func:`grader_version` names the grader's code and the libraries that decide verdicts.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mathrecipes

GRADER_NAME = "mathrecipes"
# src/mathrecipes: the grader's sources are named relative to it
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def grader_version() -> str:
    """``<mathrecipes>+math-verify-<v>+latex2sympy2-<v>+sympy-<v>+grading-<sha8>``.

    The parser (latex2sympy2_extended) and sympy decide verdicts as much as math-verify does, so
    they are part of the version; ``sha8`` is :func:`source_digest`, so an edit of any module of
    the grader changes it.
    """
    return (
        f"{mathrecipes.__version__}"
        f"+math-verify-{_dist_version('math-verify')}"
        f"+latex2sympy2-{_dist_version('latex2sympy2_extended')}"
        f"+sympy-{_dist_version('sympy')}"
        f"+grading-{source_digest()}"
    )


def source_files(package_dir: Path = _PACKAGE_DIR) -> list[Path]:
    """The grader's sources under ``package_dir`` (``src/mathrecipes``): every module of
    ``grading/`` and the LaTeX-answer module ``latex.py`` (as ``provenance.STAGE_MODULES``
    lists them for the grade stage)."""
    grading = sorted(
        p for p in (package_dir / "grading").rglob("*.py") if "__pycache__" not in p.parts
    )
    return [*grading, package_dir / "latex.py"]


def source_digest(package_dir: Path = _PACKAGE_DIR) -> str:
    """sha256 (first 8 hex digits) over the names and contents of :func:`source_files`."""
    digest = hashlib.sha256()
    for f in source_files(package_dir):
        digest.update(f.relative_to(package_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(f.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:8]


_CHOICES = {
    "percent": ("both", "fraction", "number", "mathverify"),
    "mixed_numbers": ("mixed", "product"),
    "truncated": ("extract", "no_answer"),
}
# Fields that say how to run, not how to judge: left out of the recorded policy (a timeout
# shows as the ``timeout`` verdict itself).
_EXECUTION_FIELDS = frozenset({"timeout_s", "workers"})


@dataclass(frozen=True)
class GradeSettings:
    """Grading settings; also the ``grading:`` block of the workflow config.

    Execution: ``timeout_s`` (hard per-item wall limit: parse gold + parse prediction + verify;
    the audit's plain Math-Verify pass gets its own), ``workers`` (worker processes).

    Answer-equivalence policies (per benchmark, see GRADING.md; all recorded with every verdict):

    * ``float_rounding`` / ``numeric_precision``: Math-Verify's float comparison (decimal places).
    * ``rel_tol`` / ``abs_tol``: numeric tolerance for comparisons that involve a decimal
      (``0.6054`` vs ``\\cos^{10}(\\pi/10)``), in place of ``float_rounding``; ``None`` = use
      ``float_rounding``.  Exact values are compared exactly (``10000`` vs ``10001`` never
      "agree within 1e-4"), and nothing is ever rounded to an integer.
    * ``integer_answers``: the benchmark's answers are integers (AIME): an integer-literal gold
      is compared as an integer (``016`` = ``16``); a non-integer decimal is wrong.
      ``modulo`` (needs ``integer_answers``): integers are compared modulo this number.
    * ``percent``: ``"both"`` (default): ``28\\%`` equals ``28`` and ``0.28`` (one side only may
      carry the sign; ``2800`` stays wrong); ``"fraction"``: only ``0.28``; ``"number"``: only
      ``28`` (the sign is dropped); ``"mathverify"``: Math-Verify's own rule (integer
      percentages equal the bare number, decimal ones only the fraction).
    * ``ordered_tuples``: ``None`` (default): decided by the gold's form, as Math-Verify does:
      ``(6,31,-1)`` is ordered, a bare list ``-2, 1`` and a set ``\\{1,2\\}`` are unordered;
      ``True``: bare comma lists are ordered too; ``False``: tuples are unordered too.
    * ``strip_units``: drop unit words and ``\\text{ cm}`` after numbers (``18 dollars`` = 18);
      ``False`` keeps them (physics: ``0.64N`` is not ``0.64``).
    * ``interval_inequality_asymmetry``: ``True`` (Math-Verify's default): a gold inequality
      accepts an interval prediction but a gold interval does not accept an inequality (stops
      models echoing the question); ``False``: both directions.
    * ``mixed_numbers``: ``2\\frac{1}{2}`` read as ``"mixed"`` (2.5, default) or ``"product"``
      (1); either way the row's rule carries ``+mixed_number`` (an ambiguous notation).
    * ``decimal_comma``: ``1,22`` / ``1000,99`` is a decimal comma when the gold is a single
      number and the digit groups are not thousands groups (``1,220`` stays 1220).
    * ``multiple_choice``: a gold that is a choice letter (``A``, ``(C)``, ``\\text{(B)}``) is
      compared by letter with a prediction that starts with one (``(A) 5``, ``A.``).
    * ``answer_regex``: a pattern whose last match (group 1, or the whole match) is the answer,
      tried before the built-in anchors (e.g. ``(?m)^A:\\s*(.+)$`` for "A: 18" solutions).
    * ``truncated``: for a generation that hit its token limit (``finish_reason == "length"``):
      ``"extract"`` grades an anchored answer if there is one (no answer: rule ``truncated``);
      ``"no_answer"`` makes every truncated generation ``no_answer``.
    """

    timeout_s: float = 5.0
    workers: int = 2
    float_rounding: int = 6
    numeric_precision: int = 15
    rel_tol: float | None = None
    abs_tol: float | None = None
    integer_answers: bool = False
    modulo: int | None = None
    percent: str = "both"
    ordered_tuples: bool | None = None
    strip_units: bool = True
    interval_inequality_asymmetry: bool = True
    mixed_numbers: str = "mixed"
    decimal_comma: bool = True
    multiple_choice: bool = True
    answer_regex: str | None = None
    truncated: str = "extract"

    def __post_init__(self) -> None:
        def coerce(name: str, kind: type, ok: Callable[[Any], bool], need: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"GradeSettings.{name} must be a number, got {value!r}")
            if kind is int and value != int(value):
                raise ValueError(f"GradeSettings.{name} must be an integer, got {value!r}")
            value = kind(value)
            if not ok(value):
                raise ValueError(f"GradeSettings.{name} must be {need}, got {value!r}")
            object.__setattr__(self, name, value)

        coerce("timeout_s", float, lambda v: v > 0 and math.isfinite(v), "> 0")
        coerce("workers", int, lambda v: v >= 1, ">= 1")
        coerce("float_rounding", int, lambda v: v >= 0, ">= 0")
        coerce("numeric_precision", int, lambda v: v >= 1, ">= 1")
        for name in ("rel_tol", "abs_tol"):
            if getattr(self, name) is not None:
                coerce(name, float, lambda v: v >= 0 and math.isfinite(v), ">= 0 or None")
        if self.modulo is not None:
            coerce("modulo", int, lambda v: v >= 2, ">= 2 or None")
            if not self.integer_answers:
                raise ValueError("GradeSettings.modulo needs integer_answers=True")
        for name in ("integer_answers", "strip_units", "interval_inequality_asymmetry"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GradeSettings.{name} must be true or false")
        for name in ("decimal_comma", "multiple_choice"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GradeSettings.{name} must be true or false")
        if self.ordered_tuples is not None and not isinstance(self.ordered_tuples, bool):
            raise ValueError("GradeSettings.ordered_tuples must be true, false or null")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"GradeSettings.{name} must be one of {', '.join(allowed)}, "
                    f"got {getattr(self, name)!r}"
                )
        if self.answer_regex is not None:
            if not isinstance(self.answer_regex, str):
                raise ValueError("GradeSettings.answer_regex must be a string or None")
            try:
                re.compile(self.answer_regex)
            except re.error as exc:
                raise ValueError(f"GradeSettings.answer_regex does not compile: {exc}") from exc

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GradeSettings:
        """Build from a mapping; ``None`` values mean "default", unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ValueError(
                f"unknown grading setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**{k: v for k, v in d.items() if v is not None})

    def policy(self) -> dict[str, Any]:
        """The answer-equivalence settings (all but ``timeout_s`` and ``workers``)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _EXECUTION_FIELDS
        }

    def policy_json(self) -> str:
        """:meth:`policy` as compact JSON with sorted keys (the ``policy`` column)."""
        return json.dumps(self.policy(), sort_keys=True, separators=(",", ":"))
