"""The worker side: Math-Verify with caches, hooks and the grading policies, and the worker's
entry point.

Per item a worker normalizes gold and extracted answer, parses both with ``math_verify.parse``,
applies the answer-shape rules Math-Verify lacks (``+mcq``, ``+base``, ``+decimal_comma``,
``+mixed_number``, ``+integer``) and compares every pair of parsed candidates with
``math_verify.verify`` under the :class:`~mathrecipes.grading.settings.GradeSettings` policies
(``+percent``, ``+tolerance``, ``+ordered``/``+unordered``, ``+vector``); plain words are
compared as text (``+text``). The audit's plain Math-Verify pass runs here too.

Math-Verify's own ``signal.alarm`` timeouts are disabled in workers (they cannot interrupt sympy
stuck in C code, e.g. the power tower ``5^{5^{5^{5}}}``); the parent's kill is the guarantee
(:mod:`mathrecipes.grading.pool`). :data:`BOOTSTRAP` is the ``python -c`` program that starts a
worker: it imports this module and runs :func:`worker_main`, which ignores SIGINT, exits on EOF
when the parent goes away and arms a ``SIGALRM`` backstop per item in case the parent died while
the worker hung. Math-Verify is imported only inside a worker (:class:`Engine`), never at import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import signal
import types
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from mathrecipes.grading.extraction import gold_answer
from mathrecipes.grading.normalization import (
    COMMA_GROUPED,
    base_number,
    choice_letter,
    latex_for_parse,
    mixed_number,
    named_rhs,
    normalize,
    plain_subscripts,
    single_number,
    text_form,
)

if TYPE_CHECKING:  # workers do not import pydantic (a tenth of their start-up)
    from mathrecipes.grading.settings import GradeSettings

_INTEGER = re.compile(r"[+-]?\d+")
_PLAIN_INTEGER = re.compile(r"-?\d+")
_INTEGER_LIKE = re.compile(r"[+-]?\d+(?:\.0*)?")
_DECIMAL = re.compile(r"[+-]?\d*\.\d+")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")

# The numeric-tolerance hook reads this (set per comparison by Engine): (rel_tol, abs_tol)
# or None for Math-Verify's own float_rounding; "fired" records that the tolerance turned a
# Math-Verify "not equal" into "equal".
_TOLERANCE: dict[str, Any] = {"tol": None, "fired": False, "exact_check": False}


def _install_hooks() -> None:
    """Patch two Math-Verify module globals (both are looked up at call time):

    * ``parser.parse_latex_cached``: a plain integer (``42``, ``-7``) becomes
      ``sympy.Integer`` without the ANTLR parser; the result is identical (tested), it only
      saves time, for our grader and the audit's plain Math-Verify alike;
    * ``grader.sympy_numeric_eq``: through :func:`_tolerant_eq` when a tolerance is active, and
      re-checked by :func:`_exact_close` for our grader.  ``sympy_expr_eq`` calls it for
      nested comparisons too (interval ends, tuple and matrix entries).
    """
    import math_verify.grader as mvg
    import math_verify.parser as mvp

    original = mvg.sympy_numeric_eq
    if getattr(original, "_mathrecipes_hook", False):
        return
    parse_latex = mvp.parse_latex_cached

    def parse_latex_cached(latex: str) -> Any:
        if _PLAIN_INTEGER.fullmatch(latex):
            from sympy import Integer

            return Integer(int(latex))
        return parse_latex(latex)

    parse_latex_cached.__wrapped__ = parse_latex  # type: ignore[attr-defined]
    mvp.parse_latex_cached = parse_latex_cached

    def numeric_eq(a: Any, b: Any, float_rounding: int, numeric_precision: int) -> bool:
        tol = _TOLERANCE["tol"]
        if tol is not None:
            verdict = _tolerant_eq(a, b, tol[0], tol[1], numeric_precision)
            if verdict is not None:
                if verdict and not original(a, b, float_rounding, numeric_precision):
                    _TOLERANCE["fired"] = True
                return verdict
        equal = original(a, b, float_rounding, numeric_precision)
        if equal and _TOLERANCE["exact_check"] and not _exact_close(a, b):
            return False
        return equal

    numeric_eq._mathrecipes_hook = True  # type: ignore[attr-defined]
    mvg.sympy_numeric_eq = numeric_eq


def _tolerant_eq(a: Any, b: Any, rel: float | None, abs_: float | None, prec: int) -> bool | None:
    """Tolerance comparison of two numbers of which at least one is a decimal; None when it
    does not apply (symbols, matrices, two exact values)."""
    from sympy import Basic, Float

    if not (isinstance(a, Basic) and isinstance(b, Basic)):
        return None
    try:
        a, b = a.doit(), b.doit()
        if a.free_symbols or b.free_symbols or not (a.is_number and b.is_number):
            return None
        if not (a.has(Float) or b.has(Float)):
            return None
        x, y = complex(a.evalf(prec)), complex(b.evalf(prec))
    except Exception:
        return None
    if not (math.isfinite(abs(x)) and math.isfinite(abs(y))):
        return None
    limit = max((rel or 0.0) * max(abs(x), abs(y)), abs_ or 0.0)
    # A hair of slack so that 0.003 vs 0.002 at abs_tol 1e-3 is not lost to binary floats.
    return abs(x - y) <= limit * (1 + 1e-9) + 1e-300


def _exact_close(a: Any, b: Any) -> bool:
    """False for two exact numbers that Math-Verify's absolute, chopped comparison calls equal
    although they differ relatively (``1/2004!`` vs ``2/2004!``, both "0" to 15 places)."""
    from sympy import Basic, Float

    try:
        if not (isinstance(a, Basic) and isinstance(b, Basic)):
            return True
        if a.free_symbols or b.free_symbols or a.has(Float) or b.has(Float):
            return True
        x, y = a.evalf(30), b.evalf(30)
        if not (x.is_number and y.is_number):
            return True
        # sympy numbers, not Python floats: 1/2004! underflows a float to 0.
        diff, scale = abs(x - y).evalf(30), max(abs(x).evalf(30), abs(y).evalf(30))
        if not (diff.is_finite and scale.is_finite) or scale == 0:
            return True
        return bool(diff <= scale * Float("1e-12"))
    except Exception:
        return True


class Engine:
    """Math-Verify wrapped with caches and the grading policies; lives in a worker process."""

    _GOLD_CACHE_MAX = 20_000

    def __init__(self, settings: GradeSettings) -> None:
        import logging

        from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        for name in ("math_verify", "latex2sympy2_extended"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _install_hooks()
        self.s = settings
        self._parse_fn = parse
        self._verify_fn = verify
        latex = LatexExtractionConfig()
        if not settings.strip_units:
            latex = LatexExtractionConfig(
                normalization_config=dataclasses.replace(latex.normalization_config, units=False)
            )
        assert isinstance(latex.normalization_config, NormalizationConfig)
        self._config = (latex, ExprExtractionConfig())
        tol = (settings.rel_tol, settings.abs_tol)
        self._tol = None if tol == (None, None) else tol
        self.reset()

    def reset(self) -> None:
        # Keyed by the *raw* gold string: a hit means an earlier item of this worker already
        # reported this gold's status to the parent (see Pool.run's timeout attribution).
        self._gold: dict[str, tuple[bool, str | None]] = {}
        self._parse_cached = functools.lru_cache(maxsize=8192)(self._parse)
        self._judge_cached = functools.lru_cache(maxsize=16384)(self._judge)

    # -- our grader ----------------------------------------------------------------------

    def _parse(self, text: str) -> tuple[Any, ...]:
        if _PLAIN_INTEGER.fullmatch(text):
            # What Math-Verify returns for "$42$" (checked in the tests), without the parser.
            from sympy import Integer

            return (Integer(int(text)), text)
        error: Exception | None = None
        try:
            parsed: tuple[Any, ...] = self._parse_once(text)
        except Exception as exc:
            parsed, error = (), exc
        if all(isinstance(p, str) for p in parsed):
            # latex2sympy rejects commands in subscripts (I_{\max}, R_{\odot}): retry with
            # them spelled as plain letters; both sides of a comparison get the same rewrite.
            plain = plain_subscripts(text)
            if plain != text:
                with contextlib.suppress(Exception):
                    retried = self._parse_once(plain)
                    if any(not isinstance(p, str) for p in retried):
                        return retried
        if error is not None:
            raise error
        return parsed

    def _parse_once(self, text: str) -> tuple[Any, ...]:
        return tuple(
            self._parse_fn(
                latex_for_parse(text),
                list(self._config),
                fallback_mode="first_match",
                parsing_timeout=None,
                raise_on_error=True,
            )
        )

    def gold_text(self, gold: str) -> str:
        return normalize(gold_answer(gold), self.s.strip_units)

    def _gold_status(self, gold: str) -> tuple[bool, str | None, bool]:
        """``(ok, rule_override, was_cached)``; parsing leaves the result in the parse cache."""
        hit = self._gold.get(gold)
        if hit is not None:
            return (*hit, True)
        entry: tuple[bool, str | None]
        text = self.gold_text(gold)
        if not text:
            entry = (False, None)
        else:
            try:
                parsed = self._parse_cached(text)
            except Exception as exc:
                entry = (False, f"error:{type(exc).__name__}")
            else:
                entry = (any(not isinstance(p, str) for p in parsed), None)
        if len(self._gold) >= self._GOLD_CACHE_MAX:
            self._gold.clear()
        self._gold[gold] = entry
        return (*entry, False)

    def _judge(self, gold_text: str, pred_text: str) -> tuple[str, str | None]:
        """``(verdict, how)`` for a parseable gold; ``how`` is None, ``"tag+tag"`` or
        ``error:*``."""
        s = self.s
        g, p = gold_text, pred_text
        tags: list[str] = []
        if s.multiple_choice:
            letter = choice_letter(g, gold=True)
            if letter is not None:
                answer = choice_letter(p, gold=False)
                if answer is not None:
                    return ("correct" if answer == letter else "incorrect"), "mcq"
        gold_base = base_number(g)
        if gold_base is not None:
            pred_base = base_number(p)
            if pred_base is None:  # digits without the subscript: the base is the gold's
                bare = p.strip().lower()
                pred_base = (bare.lstrip("0") or "0", gold_base[1]) if bare.isalnum() else None
            same = pred_base is not None and pred_base == gold_base
            return ("correct" if same else "incorrect"), "base"
        pred_base = base_number(p)
        if pred_base is not None and pred_base[1] != 10:
            p = str(int(pred_base[0], pred_base[1]))
            tags.append("base")
        if (
            s.decimal_comma
            and _DECIMAL_COMMA.fullmatch(p)
            and not COMMA_GROUPED.fullmatch(p)
            and single_number(g)
        ):
            p = p.replace(",", ".")
            tags.append("decimal_comma")
        mixed_g, mixed_p = mixed_number(g, s.mixed_numbers), mixed_number(p, s.mixed_numbers)
        if mixed_g is not None or mixed_p is not None:
            g, p = mixed_g or g, mixed_p or p
            tags.append("mixed_number")
        if s.integer_answers and _INTEGER.fullmatch(g):
            if _INTEGER_LIKE.fullmatch(p):
                want, got = int(g), int(p.split(".")[0])
                if s.modulo:
                    want, got = want % s.modulo, got % s.modulo
                return ("correct" if want == got else "incorrect"), "+".join([*tags, "integer"])
            if _DECIMAL.fullmatch(p):  # 16.5 for an integer answer; never rounded
                return "incorrect", "+".join([*tags, "integer"])
        verdict, how = self._math_verify(g, p)
        if verdict != "correct":
            gold_words = text_form(gold_text)
            if gold_words is not None and gold_words == text_form(pred_text):
                return "correct", "text"
            rhs = named_rhs(g)
            if rhs is not None and "=" not in p:
                # "I_{\max} = q/\sqrt{2LC}" vs "q/\sqrt{2LC}": Math-Verify's assignment rule,
                # for names it does not see as symbols (a subscripted I is read as i).
                verdict2, how2 = self._math_verify(rhs, p)
                if verdict2 == "correct":
                    verdict, how = verdict2, how2
        if how is not None and how.startswith("error:"):
            return verdict, how
        tags += how.split("+") if how else []
        return verdict, "+".join(tags) or None

    def _math_verify(self, gold_text: str, pred_text: str) -> tuple[str, str | None]:
        try:
            gold = self._parse_cached(gold_text)
            pred = self._parse_cached(pred_text)
        except Exception as exc:
            return "incorrect", f"error:{type(exc).__name__}"
        error = None
        s = self.s
        _TOLERANCE["tol"] = self._tol
        _TOLERANCE["exact_check"] = True
        try:
            for g in gold:
                for p in pred:
                    for gv, pv, tags in self._variants(gold_text, g, p):
                        _TOLERANCE["fired"] = False
                        try:
                            equal = self._verify_fn(
                                gv,
                                pv,
                                float_rounding=s.float_rounding,
                                numeric_precision=s.numeric_precision,
                                allow_set_relation_comp=not s.interval_inequality_asymmetry,
                                timeout_seconds=None,
                                raise_on_error=True,
                            )
                        except Exception as exc:
                            error = error or f"error:{type(exc).__name__}"
                            continue
                        if equal:
                            if _TOLERANCE["fired"]:
                                tags = (*tags, "tolerance")
                            return "correct", "+".join(tags) or None
        finally:
            _TOLERANCE["tol"] = None
            _TOLERANCE["exact_check"] = False
        return "incorrect", error

    def _variants(self, gold_text: str, g: Any, p: Any) -> Iterable[tuple[Any, Any, tuple]]:
        """The (gold, prediction) pairs to compare for one pair of parsed candidates, with the
        tags of the policies that produced them."""
        if isinstance(g, str) or isinstance(p, str):
            yield g, p, ()
            return
        g, p, shape_tags = _shape(g, p, gold_text, self.s.ordered_tuples)
        mode = self.s.percent
        if mode == "mathverify":
            yield g, p, shape_tags
            return
        from math_verify.grader import get_pct_val

        gv, pv = get_pct_val(g), get_pct_val(p)
        if (gv is None) == (pv is None):  # no percent, or on both sides: Math-Verify's rule
            yield g, p, shape_tags
            return
        if mode == "both":  # Math-Verify's own percent rule first (no tag), then ours
            yield g, p, shape_tags
        value = gv if gv is not None else pv
        for alt in _percent_forms(value, mode):
            pair = (alt, p) if gv is not None else (g, alt)
            yield (*pair, (*shape_tags, "percent"))

    def handle(
        self, gold: str, answer: str | None, on_gold_parsed: Callable[[], None]
    ) -> tuple[str, str | None, bool]:
        """``(verdict, how, gold_ok)`` for one item; ``on_gold_parsed`` fires after a gold
        that was not cached has been parsed (so the parent can tell gold from prediction
        timeouts)."""
        ok, how, cached = self._gold_status(gold)
        if not cached:
            on_gold_parsed()
        if not ok:
            return "gold_unparseable", how, False
        if answer is None:
            return "no_answer", None, True
        verdict, how = self._judge_cached(
            self.gold_text(gold), normalize(answer, self.s.strip_units)
        )
        return verdict, how, True

    # -- plain Math-Verify (the audit) ---------------------------------------------------

    def plain(self, gold: str, completion: str) -> tuple[str, str | None]:
        """``verify(parse(gold), parse(completion))`` with Math-Verify's defaults."""
        _TOLERANCE["tol"] = None
        gold_in = gold if "$" in gold or "\\boxed" in gold else f"${gold}$"
        try:
            g = self._parse_fn(gold_in, parsing_timeout=None)
            p = self._parse_fn(completion, parsing_timeout=None)
            equal = self._verify_fn(g, p, timeout_seconds=None)
        except Exception:
            return "incorrect", None
        extracted = None
        if p:
            extracted = p[-1] if isinstance(p[-1], str) else str(p[0])
            extracted = extracted[:500]
        return ("correct" if equal else "incorrect"), extracted


def _percent_forms(value: Any, mode: str) -> list[Any]:
    from sympy import Mul, Rational

    fraction = Mul(value, Rational(1, 100))
    return {"both": [value, fraction], "fraction": [fraction], "number": [value]}[mode]


def _sequence(x: Any) -> list[Any] | None:
    """The ordered entries of a tuple-like value: ``(a,b,c)``, a bare list, or ``(a,b)`` (which
    sympy reads as an open interval)."""
    from latex2sympy2_extended.sets import FiniteSet
    from sympy import Interval, Tuple

    if isinstance(x, Tuple):
        return list(x.args)
    if isinstance(x, FiniteSet) and hasattr(x, "_unsorted_args"):
        return list(x._unsorted_args)
    if isinstance(x, Interval) and x.left_open and x.right_open:
        return [x.start, x.end]
    return None


def _shape(g: Any, p: Any, gold_text: str, ordered: bool | None) -> tuple[Any, Any, tuple]:
    """Column vector vs tuple, and the ordered/unordered list policies."""
    from latex2sympy2_extended.sets import FiniteSet
    from sympy import FiniteSet as SympyFiniteSet
    from sympy import Matrix, MatrixBase, Tuple

    if isinstance(g, MatrixBase) != isinstance(p, MatrixBase):
        m, other = (g, p) if isinstance(g, MatrixBase) else (p, g)
        if 1 in m.shape and len(m) >= 2:
            entries = _sequence(other)
            if entries is not None and len(entries) == len(m):
                as_matrix = Matrix(m.rows, m.cols, entries)
                if m is g:
                    return g, as_matrix, ("vector",)
                return as_matrix, p, ("vector",)
        return g, p, ()
    if ordered is True and isinstance(g, FiniteSet) and not gold_text.lstrip().startswith("\\{"):
        gs, ps = _sequence(g), _sequence(p)
        if gs is not None and ps is not None and len(gs) == len(ps):
            return Tuple(*gs), Tuple(*ps), ("ordered",)
    if ordered is False and isinstance(g, Tuple):
        ps = _sequence(p)
        if ps is not None and len(ps) == len(g.args):
            return SympyFiniteSet(*g.args), SympyFiniteSet(*ps), ("unordered",)
    return g, p, ()


def worker_main(read_fd: int, write_fd: int, settings_json: str) -> None:
    """Entry point of a worker process (see ``BOOTSTRAP``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # backstop: terminate the process
    inbox = Connection(read_fd, writable=False)
    outbox = Connection(write_fd, readable=False)
    # The parent validated the settings (GradeSettings.model_dump_json): read the fields as they
    # are rather than import pydantic here.
    settings: Any = types.SimpleNamespace(**json.loads(settings_json))
    engine = Engine(settings)
    # Warm up lazily built regexes and the LaTeX parser so the first item is not charged for
    # it, then forget the warm-up results (the gold cache must only hold reported golds).
    engine.handle("\\frac{1}{2}", "0.5", lambda: None)
    engine.handle("\\text{one}", "1", lambda: None)
    engine.plain("1", "\\boxed{1}")
    engine.reset()
    backstop = max(10, math.ceil(3 * settings.timeout_s + 5))
    outbox.send(("ready", os.getpid()))
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        idx, gold, answer, want_ours, completion = msg
        if want_ours:
            signal.alarm(backstop)
            try:
                result = engine.handle(gold, answer, lambda idx=idx: outbox.send(("gold", idx)))
            except Exception as exc:  # a bug outside Math-Verify: still an answer, not a crash
                result = ("incorrect", f"error:{type(exc).__name__}", None)
            signal.alarm(0)
            outbox.send(("done", idx, *result))
        if completion is not None:
            signal.alarm(backstop)
            try:
                plain = engine.plain(gold, completion)
            except Exception:  # pragma: no cover - plain() already catches
                plain = ("incorrect", None)
            signal.alarm(0)
            outbox.send(("mv", idx, *plain))


BOOTSTRAP = (
    "import sys\n"
    "src = sys.argv[1]\n"
    "if src not in sys.path:\n"
    "    sys.path.insert(0, src)\n"
    "from mathrecipes.grading.engine import worker_main\n"
    "worker_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])\n"
)
