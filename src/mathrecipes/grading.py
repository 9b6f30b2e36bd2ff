"""The grader: final-answer extraction plus Math-Verify, with a hard per-item timeout.

Pipeline for one (gold, completion) pair
-----------------------------------------
1. :func:`extract_answer` locates the final answer in the *completion only* (never the prompt),
   with last-match semantics over anchors in priority order: ``\\boxed{}`` / ``\\boxed 5`` /
   ``\\fbox{}``, then GSM8K ``#### X``, then answer phrases ("The answer is: X", "The final answer
   is X", "Final Answer: ...", "Answer: X").  ``<think>...</think>`` is stripped first; an
   unclosed ``<think>`` means no answer.  There is deliberately no "last number anywhere"
   fallback: a completion without an anchored answer is ``no_answer``.
2. In a worker process, gold and extracted answer are normalized (surrounding ``$``/``\\(``
   delimiters, a trailing period, digit groups written with spaces such as ``1 000`` or
   ``1\\,000``, and plain unit words after a number such as ``18 dollars``), wrapped as
   ``$...$`` and parsed by ``math_verify.parse`` (LaTeX then plain-expression extraction).
3. ``math_verify.verify`` on every (gold, prediction) pair of parsed candidates; any equal pair
   means ``correct``.
4. Text answers: if Math-Verify said "not equal" but both sides are plain words after
   unwrapping ``\\text{}``-like commands (``\\text{odd}`` vs a bare ``odd``, which sympy reads
   as ``o*d*d``), they are compared case-insensitively; a match is ``correct`` with rule
   suffix ``+text``.  This step can only turn a Math-Verify "not equal" into ``correct``.

Verdicts (:data:`VERDICTS`) and the ``rule`` column
----------------------------------------------------
``rule`` is the extraction rule (``boxed``, ``gsm8k``, ``final_answer``, ``answer_is``, ``none``,
``unclosed_think``), except where noted below.

* ``correct`` / ``incorrect``: decided by Math-Verify (or the text step, rule ``<rule>+text``).
  An exception raised inside Math-Verify while parsing the prediction or comparing is treated
  as "not equal": ``incorrect`` with rule ``error:<ExceptionType>`` (unless another candidate
  pair compared equal, which gives ``correct``).
* ``no_answer``: extraction found nothing; the prediction is not parsed.  The gold is still
  checked (cached per gold string) so that a problem with an unusable gold answer is
  ``gold_unparseable`` for *all* its samples and the accuracy denominator stays consistent.
* ``gold_unparseable``: Math-Verify gets no expression out of the gold answer (empty gold,
  ``\\frac{``, ...).  Rule ``error:<ExceptionType>`` if parsing raised, ``gold_timeout`` if
  parsing the gold alone ran past the time limit.  Never counted as ``incorrect``; accuracy
  leaves these rows out.
* ``timeout``: parsing + comparing ran past ``GradeSettings.timeout_s`` wall seconds; the
  parent killed the worker and started a new one.  A worker that dies on its own (segfault,
  ``os._exit``, OOM kill) while handling an item gives ``timeout`` with rule ``worker_crash``.

Worker processes
----------------
Math-Verify's own ``signal.alarm`` timeouts are disabled in workers (they cannot interrupt
sympy stuck in C code, e.g. the power tower ``5^{5^{5^{5}}}``); the parent's kill is the
guarantee.  Workers are plain ``python -c`` subprocesses talking over
``multiprocessing.connection`` pipes rather than ``multiprocessing`` spawn/forkserver
children: those re-execute the parent's ``__main__`` script in every child, which breaks when
the caller is a Snakemake ``script:`` (top-level code, no ``if __name__ == "__main__"`` guard).
Workers ignore SIGINT (the parent cleans them up), exit on EOF when the parent goes away, and
arm a ``SIGALRM`` backstop (default action: terminate) per item in case the parent died while
they hung.

Verdicts are deterministic (only ``seconds`` and, for items near the limit, the ``timeout``
verdict depend on the machine); results never depend on how items were scheduled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import mathrecipes

__all__ = [
    "GRADER_NAME",
    "VERDICTS",
    "GradeItem",
    "GradeSettings",
    "Verdict",
    "extract_answer",
    "grade_file",
    "grade_items",
    "grader_version",
    "summarize",
]

GRADER_NAME = "mathrecipes"
VERDICTS = ("correct", "incorrect", "no_answer", "timeout", "gold_unparseable")

# How long a worker may take to import Math-Verify and report ready before we give up.
_STARTUP_LIMIT_S = 120.0


# --------------------------------------------------------------------------------------------
# Versioning and settings
# --------------------------------------------------------------------------------------------


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def grader_version() -> str:
    """``<mathrecipes>+math-verify-<v>+latex2sympy2-<v>+sympy-<v>+grading-<sha8>``.

    The parser (latex2sympy2_extended) and sympy decide verdicts as much as math-verify does, so
    they are part of the version; ``sha8`` hashes this module's source, so any edit changes it.
    """
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]
    return (
        f"{mathrecipes.__version__}"
        f"+math-verify-{_dist_version('math-verify')}"
        f"+latex2sympy2-{_dist_version('latex2sympy2_extended')}"
        f"+sympy-{_dist_version('sympy')}"
        f"+grading-{digest}"
    )


@dataclass(frozen=True)
class GradeSettings:
    """Grading settings; also the ``grading:`` block of the workflow config."""

    timeout_s: float = 5.0  # hard per-item wall limit (parse gold + parse prediction + verify)
    workers: int = 2  # worker processes
    float_rounding: int = 6
    numeric_precision: int = 15

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


# --------------------------------------------------------------------------------------------
# Answer extraction (parent side, pure regex / string work)
# --------------------------------------------------------------------------------------------

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_BOX_CMD = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BOX_TOKEN = re.compile(r"[^\s$]+")
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
_PHRASE = re.compile(
    r"(?P<final>\bfinal\s+answer\s*(?:is\s*:?|:))"
    r"|(?P<is>\b(?:the\s+)?answer\s+is\s*:?)"
    r"|(?P<colon>\banswer\s*:)",
    re.IGNORECASE,
)
_HOPE = re.compile(r"\s*I hope it is correct.*$", re.IGNORECASE | re.DOTALL)
_SENTENCE_END = re.compile(r"\.(?=\s|$)")


def extract_answer(completion: str) -> tuple[str | None, str]:
    """Return ``(answer_text, rule)`` for a completion; ``(None, "none")`` if no anchor.

    Rules, in priority order (within a rule the *last* match wins): ``boxed`` (``\\boxed{}``
    with brace matching, ``\\boxed 5``, ``\\fbox{}``; empty boxes are skipped), ``gsm8k``
    (``#### X``), ``final_answer`` / ``answer_is`` (answer phrases; the one that appears last
    wins).  ``<think>...</think>`` blocks are removed first, as is everything before an
    orphan ``</think>`` (chat templates that put ``<think>`` in the prompt); a ``<think>`` that
    is never closed gives ``(None, "unclosed_think")``.  The answer has surrounding ``$...$``
    (and ``\\(..\\)``, ``\\[..\\]``) and a trailing period removed.
    """
    text = completion or ""
    if "<think>" in text or "</think>" in text:
        text = _THINK_BLOCK.sub(" ", text)
        if "</think>" in text:
            text = text.rsplit("</think>", 1)[1]
        if "<think>" in text:
            return None, "unclosed_think"

    for finder, rule in ((_last_boxed, "boxed"), (_last_gsm8k, "gsm8k")):
        answer = finder(text)
        if answer is not None:
            return answer, rule
    found = _last_phrase(text)
    if found is not None:
        return found
    return None, "none"


def _last_boxed(text: str) -> str | None:
    for m in reversed(list(_BOX_CMD.finditer(text))):
        content = _box_content(text, m.end())
        if content is not None:
            content = _clean_answer(content)
            if content:
                return content
    return None


def _box_content(text: str, pos: int) -> str | None:
    """Argument of a ``\\boxed`` ending at ``pos``: ``{...}`` (brace matched) or ``\\boxed 5``."""
    j = pos
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == "{":
        depth = 0
        i = j
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[j + 1 : i]
            i += 1
        return None  # unbalanced (e.g. the generation was cut off)
    if j == pos:
        return None
    m = _BOX_TOKEN.match(text, j)
    return m.group(0) if m else None


def _last_gsm8k(text: str) -> str | None:
    for m in reversed(list(_GSM8K.finditer(text))):
        answer = _clean_answer(_first_clause(m.group(1)))
        if answer:
            return answer
    return None


def _last_phrase(text: str) -> tuple[str, str] | None:
    for m in reversed(list(_PHRASE.finditer(text))):
        rest = text[m.end() :]
        line, _, after = rest.partition("\n")
        if not line.strip():  # "Final Answer:\n$$42$$"
            line = next((ln for ln in after.split("\n") if ln.strip()), "")
        answer = _clean_answer(_first_clause(line))
        if answer:
            return answer, "final_answer" if m.group("final") else "answer_is"
    return None


def _first_clause(s: str) -> str:
    """The answer at the start of a phrase tail: leading math, else up to the sentence end."""
    s = s.strip().strip("*").strip()
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(open_):
            end = _find_unescaped(s, close, len(open_))
            if end != -1:
                return s[: end + len(close)]
            break
    s = _HOPE.sub("", s)
    m = _SENTENCE_END.search(s)
    return (s[: m.start()] if m else s).strip().strip("*")


def _find_unescaped(s: str, sub: str, start: int) -> int:
    i = s.find(sub, start)
    while i > 0 and s[i - 1] == "\\" and sub == "$":
        i = s.find(sub, i + 1)
    return i


def _strip_delimiters(s: str) -> str:
    s = s.strip()
    while True:
        for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            n, m = len(open_), len(close)
            if len(s) > n + m - 1 and s.startswith(open_) and s.endswith(close):
                inner = s[n : len(s) - m]
                if "$" in close and re.search(r"(?<!\\)\$", inner):
                    continue  # "$a$ and $b$": not one math span
                s = inner.strip()
                break
        else:
            return s


def _clean_answer(s: str) -> str:
    s = _strip_delimiters(s)
    # A lone leading "$" is a currency sign ("#### $1,234"), not a math delimiter.
    if s.startswith("$") and s.count("$") == 1:
        s = s[1:].strip()
    while s.endswith("."):
        s = s[:-1].rstrip()
    return _strip_delimiters(s)


# --------------------------------------------------------------------------------------------
# Normalization shared by gold and prediction (runs in workers, but is pure Python)
# --------------------------------------------------------------------------------------------

_GROUP_SEP = r"(?:\\[,;:! ]|~|[ \t])"
_GROUPED_NUMBER = re.compile(rf"[-+]?\d{{1,3}}(?:{_GROUP_SEP}\d{{3}})+(?:\.\d+)?")
_NUMBER_WITH_WORDS = re.compile(
    r"(?P<num>[-+]?(?:\\?\$)?\d[\d,]*(?:\.\d+)?)\s+(?P<words>[A-Za-z]{2,}(?:\s+[A-Za-z]{2,})*)"
)
# Words after a number that are mathematics (or %), not units ("3 pi", "5 and 7").
_NOT_UNITS = frozenset(
    {"pi", "sqrt", "root", "and", "or", "to", "over", "times", "plus", "minus", "mod", "choose"}
    | {"divided", "by", "of", "in", "is", "ln", "log", "sin", "cos", "tan"}
    | {"percent", "pct", "percentage"}  # left to Math-Verify, which reads them as %
)
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mbox)\{(.*)\}")
_PLAIN_WORDS = re.compile(r"[A-Za-z]+(?:[ \-'][A-Za-z]+)*")


def _normalize(answer: str) -> str:
    s = _clean_answer(" ".join(answer.split()))
    if _GROUPED_NUMBER.fullmatch(s):
        s = re.sub(_GROUP_SEP, "", s)
    m = _NUMBER_WITH_WORDS.fullmatch(s)
    if m and not (set(m.group("words").lower().split()) & _NOT_UNITS):
        s = m.group("num")
    return s


def _latex_for_parse(s: str) -> str:
    # Bare answers are wrapped so LatexExtractionConfig sees one math span; text that still
    # holds its own unescaped "$" is handed over as is.
    return s if re.search(r"(?<!\\)\$", s) else f"${s}$"


def _text_form(s: str) -> str | None:
    """Case-folded words if ``s`` is plain text (``odd``, ``\\text{Evelyn}``), else None."""
    s = s.strip()
    while (m := _TEXT_WRAPPER.fullmatch(s)) is not None:
        s = m.group(1).strip()
    if len(s) >= 2 and _PLAIN_WORDS.fullmatch(s):
        return " ".join(s.casefold().split())
    return None


# --------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------


class _Engine:
    """Math-Verify wrapped with caches; lives in a worker process."""

    _GOLD_CACHE_MAX = 20_000

    def __init__(self, float_rounding: int, numeric_precision: int) -> None:
        import logging

        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        for name in ("math_verify", "latex2sympy2_extended"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._parse_fn = parse
        self._verify_fn = verify
        self._config = (LatexExtractionConfig(), ExprExtractionConfig())
        self.float_rounding = float_rounding
        self.numeric_precision = numeric_precision
        self.reset()

    def reset(self) -> None:
        # Keyed by the *raw* gold string: a hit means an earlier item of this worker already
        # reported this gold's status to the parent (see _Pool.run's timeout attribution).
        self._gold: dict[str, tuple[bool, str | None]] = {}
        self._parse_cached = functools.lru_cache(maxsize=8192)(self._parse)
        self._judge_cached = functools.lru_cache(maxsize=16384)(self._judge)

    def _parse(self, text: str) -> tuple[Any, ...]:
        return tuple(
            self._parse_fn(
                _latex_for_parse(text),
                list(self._config),
                fallback_mode="first_match",
                parsing_timeout=None,
                raise_on_error=True,
            )
        )

    def _gold_status(self, gold: str) -> tuple[bool, str | None, bool]:
        """``(ok, rule_override, was_cached)``; parsing leaves the result in the parse cache."""
        hit = self._gold.get(gold)
        if hit is not None:
            return (*hit, True)
        entry: tuple[bool, str | None]
        text = _normalize(gold)
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
        """``(verdict, how)`` for a parseable gold; ``how`` is None, ``"text"`` or ``error:*``."""
        verdict, how = self._math_verify(gold_text, pred_text)
        if verdict != "correct":
            gold_words = _text_form(gold_text)
            if gold_words is not None and gold_words == _text_form(pred_text):
                return "correct", "text"
        return verdict, how

    def _math_verify(self, gold_text: str, pred_text: str) -> tuple[str, str | None]:
        try:
            gold = self._parse_cached(gold_text)
            pred = self._parse_cached(pred_text)
        except Exception as exc:
            return "incorrect", f"error:{type(exc).__name__}"
        error = None
        for g in gold:
            for p in pred:
                try:
                    if self._verify_fn(
                        g,
                        p,
                        float_rounding=self.float_rounding,
                        numeric_precision=self.numeric_precision,
                        timeout_seconds=None,
                        raise_on_error=True,
                    ):
                        return "correct", None
                except Exception as exc:
                    error = error or f"error:{type(exc).__name__}"
        return "incorrect", error

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
        verdict, how = self._judge_cached(_normalize(gold), _normalize(answer))
        return verdict, how, True


def _worker_main(read_fd: int, write_fd: int, settings_json: str) -> None:
    """Entry point of a worker process (see ``_BOOTSTRAP``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # backstop: terminate the process
    inbox = Connection(read_fd, writable=False)
    outbox = Connection(write_fd, readable=False)
    cfg = json.loads(settings_json)
    engine = _Engine(cfg["float_rounding"], cfg["numeric_precision"])
    # Warm up lazily built regexes and the LaTeX parser so the first item is not charged for
    # it, then forget the warm-up results (the gold cache must only hold reported golds).
    engine.handle("\\frac{1}{2}", "0.5", lambda: None)
    engine.handle("\\text{one}", "1", lambda: None)
    engine.reset()
    backstop = max(10, math.ceil(3 * cfg["timeout_s"] + 5))
    outbox.send(("ready", os.getpid()))
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        idx, gold, answer = msg
        signal.alarm(backstop)
        try:
            result = engine.handle(gold, answer, lambda idx=idx: outbox.send(("gold", idx)))
        except Exception as exc:  # a bug outside Math-Verify: still an answer, not a crash
            result = ("incorrect", f"error:{type(exc).__name__}", None)
        signal.alarm(0)
        outbox.send(("done", idx, *result))


_BOOTSTRAP = (
    "import sys\n"
    "src = sys.argv[1]\n"
    "if src not in sys.path:\n"
    "    sys.path.insert(0, src)\n"
    "from mathrecipes.grading import _worker_main\n"
    "_worker_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])\n"
)


# --------------------------------------------------------------------------------------------
# Parent side: the pool
# --------------------------------------------------------------------------------------------


@dataclass
class _Job:
    idx: int
    gold: str
    sent: float
    deadline: float
    gold_parsed: bool = False


def _stderr_target() -> int | None:
    """Where worker stderr goes: the file behind ``sys.stderr`` if any, else fd 2.

    Snakemake scripts here point ``sys.stderr`` at the job's log file (``runlog.start``) without
    touching fd 2; worker tracebacks belong in that log too.
    """
    try:
        sys.stderr.flush()
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


class _Worker:
    def __init__(self, settings: GradeSettings) -> None:
        cfg = json.dumps(dataclasses.asdict(settings))
        src = str(Path(__file__).resolve().parents[1])
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, src, str(p2c_r), str(c2p_w), cfg],
                pass_fds=(p2c_r, c2p_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=_stderr_target(),
            )
        except BaseException:
            for fd in (p2c_w, c2p_r):
                os.close(fd)
            raise
        finally:
            os.close(p2c_r)
            os.close(c2p_w)
        self.inbox = Connection(c2p_r, writable=False)
        self.outbox = Connection(p2c_w, readable=False)
        self.started = time.monotonic()
        self.ready = False
        self.job: _Job | None = None

    def stop(self) -> None:
        for conn in (self.outbox, self.inbox):
            with contextlib.suppress(OSError):
                conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class _Pool:
    """N worker processes, one item in flight per worker, exact per-item deadlines."""

    def __init__(self, settings: GradeSettings, n_workers: int) -> None:
        self.settings = settings
        self.workers: list[_Worker] = []
        try:
            for _ in range(n_workers):
                self.workers.append(_Worker(settings))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        workers, self.workers = self.workers, []
        for w in workers:
            w.stop()

    def _replace(self, w: _Worker) -> None:
        w.stop()
        self.workers[self.workers.index(w)] = _Worker(self.settings)

    def run(
        self,
        queue: deque[int],
        resolve: Callable[[int], bool],
        job_of: Callable[[int], tuple[str, str | None]],
        on_done: Callable[[int, str, str | None, bool | None, float], None],
        gold_known_ok: Callable[[str], bool],
    ) -> None:
        """Grade every index in ``queue``.

        ``resolve(i)`` is asked right before dispatch and returns True when the caller could
        settle item ``i`` without a worker.  ``on_done(i, verdict, how, gold_ok, seconds)``
        receives results; ``gold_ok`` is None when unknown (timeouts, crashes).  A timeout is
        charged to the gold (``how == "gold_timeout"``) only if the worker had not reported
        parsing it and ``gold_known_ok(gold)`` is false.
        """
        timeout_s = self.settings.timeout_s
        while True:
            for k in range(len(self.workers)):
                w = self.workers[k]
                while w.ready and w.job is None and queue:
                    i = queue.popleft()
                    if resolve(i):
                        continue
                    gold, answer = job_of(i)
                    now = time.monotonic()
                    try:
                        w.outbox.send((i, gold, answer))
                    except OSError:  # died while idle: the item was never seen, retry it
                        queue.appendleft(i)
                        self._on_death(w, on_done)
                        break
                    w.job = _Job(i, gold, now, now + timeout_s)
            busy = [w for w in self.workers if w.job is not None]
            if not queue and not busy:
                return

            now = time.monotonic()
            limits = [w.job.deadline for w in busy]
            limits += [w.started + _STARTUP_LIMIT_S for w in self.workers if not w.ready]
            ready = wait([w.inbox for w in self.workers], max(0.0, min(limits) - now))
            by_conn = {id(w.inbox): w for w in self.workers}
            for conn in ready:
                self._receive(by_conn[id(conn)], on_done)

            now = time.monotonic()
            for w in list(self.workers):
                if w.job is not None and w.job.deadline <= now:
                    # Take what already arrived (a result or the gold-parsed note) first.
                    while w in self.workers and w.job is not None and w.inbox.poll(0):
                        self._receive(w, on_done)
                    if w not in self.workers or w.job is None:
                        continue
                    job = w.job
                    w.job = None
                    self._replace(w)  # kill() + wait(), then a fresh worker
                    gold_done = job.gold_parsed or gold_known_ok(job.gold)
                    how = None if gold_done else "gold_timeout"
                    on_done(job.idx, "timeout", how, None, time.monotonic() - job.sent)
                elif not w.ready and w.started + _STARTUP_LIMIT_S <= now:
                    raise RuntimeError(
                        f"grading worker did not start within {_STARTUP_LIMIT_S:.0f} s"
                    )

    def _receive(self, w: _Worker, on_done: Callable[..., None]) -> None:
        try:
            msg = w.inbox.recv()
        except (EOFError, OSError):
            self._on_death(w, on_done)
            return
        kind = msg[0]
        if kind == "ready":
            w.ready = True
        elif kind == "gold" and w.job is not None and w.job.idx == msg[1]:
            w.job.gold_parsed = True
        elif kind == "done" and w.job is not None and w.job.idx == msg[1]:
            _, idx, verdict, how, gold_ok = msg
            seconds = time.monotonic() - w.job.sent
            w.job = None
            on_done(idx, verdict, how, gold_ok, seconds)

    def _on_death(self, w: _Worker, on_done: Callable[..., None]) -> None:
        if not w.ready:
            code = w.proc.wait()
            raise RuntimeError(
                f"grading worker exited with code {code} during start-up "
                f"({sys.executable} could not import mathrecipes.grading / math_verify?)"
            )
        job = w.job
        w.job = None
        self._replace(w)
        if job is not None:
            on_done(job.idx, "timeout", "worker_crash", None, time.monotonic() - job.sent)


# --------------------------------------------------------------------------------------------
# Public grading API
# --------------------------------------------------------------------------------------------


@dataclass
class GradeItem:
    key: str  # identifies the row, e.g. "problem_id#sample"
    gold: str
    completion: str


@dataclass
class Verdict:
    key: str
    verdict: str
    extracted: str | None
    rule: str
    seconds: float


def grade_items(
    items: Sequence[GradeItem], settings: GradeSettings, progress: bool = False
) -> list[Verdict]:
    """Grade items with a pool of ``settings.workers`` processes; results in input order.

    Extraction runs here; parsing and comparison run in workers under a hard wall-clock limit
    of ``settings.timeout_s`` per item (a worker past its deadline is killed and replaced, the
    item is ``timeout``).  A worker that crashes gives ``timeout`` with rule ``worker_crash``;
    an exception inside Math-Verify gives ``incorrect`` with rule ``error:<ExceptionType>``
    (``gold_unparseable`` if it was the gold that failed).  See the module docstring for every
    verdict and rule.  ``progress=True`` shows a tqdm bar on stderr.
    """
    n = len(items)
    extracted = [extract_answer(it.completion) for it in items]
    results: list[Verdict | None] = [None] * n
    # gold string -> (ok, rule override); a known gold settles no-answer items without a worker
    gold_state: dict[str, tuple[bool, str | None]] = {}
    # (gold, answer) -> (verdict, how): identical pairs are graded once
    memo: dict[tuple[str, str], tuple[str, str | None]] = {}

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="grading", unit="item", file=sys.stderr, dynamic_ncols=True)

    def finish(i: int, verdict: str, how: str | None, seconds: float) -> None:
        answer, rule = extracted[i]
        if how == "text":
            rule = f"{rule}+text"
        elif how:
            rule = how
        results[i] = Verdict(items[i].key, verdict, answer, rule, seconds)
        if bar is not None:
            bar.update(1)

    def resolve(i: int) -> bool:
        gold, answer = items[i].gold, extracted[i][0]
        state = gold_state.get(gold)
        if state is not None and not state[0]:
            finish(i, "gold_unparseable", state[1], 0.0)
        elif state is not None and answer is None:
            finish(i, "no_answer", None, 0.0)
        elif answer is not None and (gold, answer) in memo:
            finish(i, *memo[gold, answer], 0.0)
        else:
            return False
        return True

    def job_of(i: int) -> tuple[str, str | None]:
        return items[i].gold, extracted[i][0]

    def on_done(i: int, verdict: str, how: str | None, gold_ok: bool | None, secs: float) -> None:
        gold, answer = items[i].gold, extracted[i][0]
        if verdict == "timeout" and how == "gold_timeout":
            gold_ok = False
            verdict = "gold_unparseable"
        if gold_ok is not None:
            gold_state.setdefault(gold, (gold_ok, None if gold_ok else how))
        if answer is not None and verdict != "gold_unparseable":
            memo.setdefault((gold, answer), (verdict, how))
        finish(i, verdict, how, secs)

    def gold_known_ok(gold: str) -> bool:
        return gold_state.get(gold, (False, None))[0]

    # Answered items first: their results reveal which golds parse, which then settles most
    # no-answer items without a round trip.
    queue = deque(i for i in range(n) if extracted[i][0] is not None)
    queue.extend(i for i in range(n) if extracted[i][0] is None)
    try:
        if queue:
            with _Pool(settings, min(settings.workers, len(queue))) as pool:
                pool.run(queue, resolve, job_of, on_done, gold_known_ok)
    finally:
        if bar is not None:
            bar.close()
    missing = [items[i].key for i in range(n) if results[i] is None]
    if missing:  # pragma: no cover - defensive
        raise RuntimeError(f"grading lost {len(missing)} item(s), e.g. {missing[0]!r}")
    return results  # type: ignore[return-value]


def summarize(verdicts: Iterable[str]) -> dict[str, Any]:
    """Counts per verdict, ``n`` and ``accuracy = correct / (n - gold_unparseable)``.

    ``accuracy`` is None when no row can be scored.
    """
    counts = dict.fromkeys(VERDICTS, 0)
    for v in verdicts:
        if v not in counts:
            raise ValueError(f"unknown verdict {v!r}; expected one of {', '.join(VERDICTS)}")
        counts[v] += 1
    n = sum(counts.values())
    scored = n - counts["gold_unparseable"]
    return {"n": n, **counts, "accuracy": counts["correct"] / scored if scored else None}


def grade_file(
    generations_path: str | Path,
    benchmark_path: str | Path,
    out_path: str | Path,
    settings: Mapping[str, Any] | GradeSettings,
    progress: bool = True,
) -> dict[str, Any]:
    """Grade a generations parquet against a benchmark parquet; write ``out_path``.

    Generations need ``problem_id``, ``sample``, ``completion`` (``finish_reason`` is passed
    through when present); the benchmark is a canonical record file (gold = ``answer``, joined
    on ``problem_id == id``).  The output has one row per (problem_id, sample), sorted, with
    columns problem_id, sample, gold, extracted, verdict, rule, grader, grader_version, seconds
    [, finish_reason].  Returns :func:`summarize` plus ``grader`` and ``grader_version``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mathrecipes.records import write_table

    if not isinstance(settings, GradeSettings):
        settings = GradeSettings.from_dict(settings)

    gen = pq.read_table(generations_path)
    need = [c for c in ("problem_id", "sample", "completion") if c not in gen.column_names]
    if need:
        raise ValueError(f"{generations_path}: missing column(s) {', '.join(need)}")
    bench = pq.read_table(benchmark_path)
    need = [c for c in ("id", "answer") if c not in bench.column_names]
    if need:
        raise ValueError(f"{benchmark_path}: missing column(s) {', '.join(need)}")

    gold_of: dict[str, str] = {}
    for pid, answer in zip(
        bench.column("id").to_pylist(), bench.column("answer").to_pylist(), strict=True
    ):
        pid = str(pid)
        answer = "" if answer is None else str(answer)
        if gold_of.setdefault(pid, answer) != answer:
            raise ValueError(f"{benchmark_path}: id {pid!r} appears with different answers")

    has_finish = "finish_reason" in gen.column_names
    rows = list(
        zip(
            [str(p) for p in gen.column("problem_id").to_pylist()],
            gen.column("sample").to_pylist(),
            gen.column("completion").to_pylist(),
            gen.column("finish_reason").to_pylist() if has_finish else [None] * gen.num_rows,
            strict=True,
        )
    )
    unknown = sorted({pid for pid, *_ in rows if pid not in gold_of})
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ValueError(
            f"{generations_path}: problem_id {unknown[0]!r}{more} not found in benchmark "
            f"{benchmark_path}"
        )
    if any(s is None for _, s, _, _ in rows):
        raise ValueError(f"{generations_path}: null value in column sample")
    rows.sort(key=lambda r: (r[0], int(r[1])))
    for a, b in zip(rows, rows[1:], strict=False):
        if a[0] == b[0] and int(a[1]) == int(b[1]):
            raise ValueError(f"{generations_path}: duplicate row ({a[0]!r}, sample {a[1]})")

    items = [
        GradeItem(f"{pid}#{sample}", gold_of[pid], completion or "")
        for pid, sample, completion, _ in rows
    ]
    verdicts = grade_items(items, settings, progress=progress)

    version = grader_version()
    columns: dict[str, pa.Array] = {
        "problem_id": pa.array([r[0] for r in rows], pa.string()),
        "sample": pa.array([int(r[1]) for r in rows], pa.int64()),
        "gold": pa.array([it.gold for it in items], pa.string()),
        "extracted": pa.array([v.extracted for v in verdicts], pa.string()),
        "verdict": pa.array([v.verdict for v in verdicts], pa.string()),
        "rule": pa.array([v.rule for v in verdicts], pa.string()),
        "grader": pa.array([GRADER_NAME] * len(rows), pa.string()),
        "grader_version": pa.array([version] * len(rows), pa.string()),
        "seconds": pa.array([v.seconds for v in verdicts], pa.float64()),
    }
    if has_finish:
        columns["finish_reason"] = pa.array(
            [r[3] for r in rows], gen.schema.field("finish_reason").type
        )
    write_table(pa.table(columns), out_path)

    summary = summarize(v.verdict for v in verdicts)
    summary["grader"] = GRADER_NAME
    summary["grader_version"] = version
    return summary
