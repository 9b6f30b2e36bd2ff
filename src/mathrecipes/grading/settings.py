"""Grading settings and the grader's version.

:class:`GradeSettings` holds how to run (``timeout_s``, ``workers``) and the answer-equivalence
policies (per benchmark, see docs/grading.md); :meth:`GradeSettings.policy_json` is written into
every grade row (column ``policy``) so that a policy change is visible in the outputs. It is a
pydantic model, and the workflow config's ``grading`` block is made of it
(:class:`GradePolicy`, :meth:`GradeSettings.field`): one place for every key's default, bounds
and description. This module imports neither Math-Verify nor the pool.

:func:`grader_version` names the grader's code and the libraries that decide verdicts.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)

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


def _number(value: Any) -> Any:
    """A number as given (``None`` passes, for the optional keys): not a bool or a string."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("must be a number")
    return value


def _pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"does not compile: {exc}") from exc
    return value


# A float (an int is taken) and an int (an integral float is taken), never a bool or a string.
Number = Annotated[float, BeforeValidator(_number)]
Integer = Annotated[int, BeforeValidator(_number)]
Pattern = Annotated[str, Field(strict=True), AfterValidator(_pattern)]

# Fields that say how to run, not how to judge: left out of the recorded policy (a timeout
# shows as the ``timeout`` verdict itself).
EXECUTION_FIELDS = ("timeout_s", "workers")


class GradeSettings(BaseModel):
    """Grading settings: how to run and the answer-equivalence policies (per benchmark, see
    docs/grading.md; all recorded with every verdict).

    Numbers are numbers (an int is taken for a float, an integral float for an int; a bool or a
    string is an error), flags are true or false. :meth:`from_dict` is the entry point for a
    mapping (the config's settings of one benchmark, the command line's ``--policy``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: Number = Field(
        5.0,
        gt=0,
        allow_inf_nan=False,
        description="hard wall-clock limit per item in seconds (parse gold, parse prediction, "
        "compare; the audit's plain Math-Verify pass gets its own): past it the item is timeout",
    )
    workers: Integer = Field(
        2,
        ge=1,
        description="worker processes (in the workflow: the grading job's threads); never part "
        "of a result",
    )
    float_rounding: Integer = Field(
        6, ge=0, description="Math-Verify's float comparison: the decimal places compared"
    )
    numeric_precision: Integer = Field(
        15, ge=1, description="Math-Verify's precision (significant digits) for evaluating numbers"
    )
    rel_tol: Number | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="relative tolerance for comparisons that involve a decimal (0.6054 vs "
        "cos^10(pi/10)), in place of float_rounding; null: float_rounding. Exact values are "
        "compared exactly (10000 vs 10001 never agree within 1e-4) and nothing is rounded to an "
        "integer",
    )
    abs_tol: Number | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="absolute tolerance, as rel_tol (with both, the larger limit)",
    )
    integer_answers: bool = Field(
        False,
        strict=True,
        description="the answers are integers (AIME): an integer gold is compared as an integer "
        "(016 = 16); a non-integer decimal is wrong",
    )
    modulo: Integer | None = Field(
        None, ge=2, description="with integer_answers: integers are compared modulo this number"
    )
    percent: Literal["both", "fraction", "number", "mathverify"] = Field(
        "both",
        description="both: 28% equals 28 and 0.28 (one side only may carry the sign; 2800 stays "
        "wrong); fraction: only 0.28; number: only 28 (the sign is dropped); mathverify: "
        "Math-Verify's own rule (integer percentages equal the bare number, decimal ones only "
        "the fraction)",
    )
    ordered_tuples: bool | None = Field(
        None,
        strict=True,
        description="null: decided by the gold's form, as Math-Verify does ((6,31,-1) is "
        "ordered, a bare list -2, 1 and a set {1,2} are unordered); true: bare lists are "
        "ordered too; false: tuples are unordered too",
    )
    strip_units: bool = Field(
        True,
        strict=True,
        description="drop unit words and \\text{ cm} after numbers (18 dollars = 18); false "
        "keeps them (physics: 0.64N is not 0.64)",
    )
    interval_inequality_asymmetry: bool = Field(
        True,
        strict=True,
        description="true (Math-Verify's default): a gold inequality accepts an interval "
        "prediction but a gold interval does not accept an inequality (stops models echoing "
        "the question); false: both directions",
    )
    mixed_numbers: Literal["mixed", "product"] = Field(
        "mixed",
        description="2\\frac{1}{2} read as mixed (2.5) or product (1); either way the rule "
        "carries +mixed_number (an ambiguous notation)",
    )
    decimal_comma: bool = Field(
        True,
        strict=True,
        description="1,22 is a decimal comma when the gold is a single number and the digit "
        "groups are not thousands groups (1,220 stays 1220)",
    )
    multiple_choice: bool = Field(
        True,
        strict=True,
        description="a gold that is a choice letter (A, (C), \\text{(B)}) is compared by letter "
        "with a prediction that starts with one ((A) 5, A.)",
    )
    answer_regex: Pattern | None = Field(
        None,
        description="a pattern whose last match (group 1, or the whole match) is the answer, "
        "tried before the built-in anchors, e.g. (?m)^A:\\s*(.+)$ for 'A: 18' solutions",
    )
    truncated: Literal["extract", "no_answer"] = Field(
        "extract",
        description="a generation that hit its token limit: extract grades an anchored answer if "
        "there is one (no answer: rule truncated); no_answer makes every such generation "
        "no_answer",
    )

    @model_validator(mode="after")
    def _modulo_needs_integers(self) -> GradeSettings:
        if self.modulo is not None and not self.integer_answers:
            raise ValueError("modulo needs integer_answers: true")
        return self

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GradeSettings:
        """Validate a mapping; ``None`` values mean "default". An unknown key or a bad value is
        a ``ValueError`` that names the key."""
        known = cls.model_fields
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ValueError(
                f"unknown grading setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        try:
            return cls.model_validate({k: v for k, v in d.items() if v is not None})
        except ValidationError as exc:
            raise ValueError(_problems(exc)) from None

    @classmethod
    def field(cls, name: str) -> Any:
        """The field ``name`` (default, bounds, checks and description), for a spec that offers
        the same key: ``timeout_s: float = GradeSettings.field("timeout_s")``."""
        return copy.copy(cls.model_fields[name])

    def policy(self) -> dict[str, Any]:
        """The answer-equivalence settings (all but ``timeout_s`` and ``workers``)."""
        return self.model_dump(exclude=set(EXECUTION_FIELDS))

    def policy_json(self) -> str:
        """:meth:`policy` as compact JSON with sorted keys (the ``policy`` column)."""
        return json.dumps(self.policy(), sort_keys=True, separators=(",", ":"))


def _problems(exc: ValidationError) -> str:
    """The errors of a validation, one ``key: message (got value)`` each, joined by ``; ``."""
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        got = f" (got {err['input']!r})" if key else ""
        out.append(f"grading setting {key}: {msg}{got}" if key else msg)
    return "; ".join(out)


class _Overrides(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def overrides(self) -> dict[str, Any]:
        """The keys that were given, with their values (a given null included), in the order
        of :class:`GradeSettings`' fields; the others are left out, whatever their default."""
        return self.model_dump(exclude_unset=True)


def _optional(name: str) -> tuple[Any, Any]:
    """GradeSettings' field ``name`` that also takes null (the default, as in ``from_dict``)."""
    info = GradeSettings.model_fields[name]
    kind = info.annotation | None
    if info.metadata:  # bounds and checks, on the value when one is given
        kind = Annotated[kind, *info.metadata]
    return kind, Field(info.default, description=info.description)


# Made from GradeSettings' fields, so that a policy key is written once.
GradePolicy = create_model(
    "GradePolicy",
    __base__=_Overrides,
    __module__=__name__,
    __doc__="""Answer-equivalence settings given in a config (``grading.policy``,
    ``grading.benchmarks.<name>``): any of :class:`GradeSettings`' policy keys, each checked as
    there; a key not given, or given as null, keeps its default.""",
    **{
        name: _optional(name) for name in GradeSettings.model_fields if name not in EXECUTION_FIELDS
    },
)
