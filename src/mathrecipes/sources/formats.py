"""Format adapters: map a raw row of a public math dataset to canonical record fields.

A :class:`Format` names one dataset layout. Its ``adapt(raw, index)`` takes one raw row (a
dict as read from a jsonl/json/parquet file or a Hugging Face ``datasets`` row) and its
0-based index in the file/split, and returns::

    {"id": ..., "problem": ..., "solution": ..., "answer": ..., "answer_type": ..., "meta": {...}}

- ``id`` is the dataset's own identifier when it has one (first of ``unique_id``, ``id``,
  ``ID``, ``uuid``, ``idx``), else the row index zero-padded to 7 digits. It carries no
  dataset prefix: the caller adds ``<dataset>/``.
- ``answer`` is the gold final answer as a string, or ``None`` when it cannot be extracted
  (the caller fails or quarantines such rows). Outer ``$...$`` are removed; otherwise the
  answer is kept as written (``"025"`` stays ``"025"``). Where the adapter changes the raw
  value (a float, a unit in parentheses), the raw value is kept in ``meta["answer_raw"]``.
- ``answer_type`` is one of :data:`mathrecipes.records.ANSWER_TYPES`
  (:func:`mathrecipes.answers.classify_answer_type`, with per-format overrides).
- ``meta`` holds the raw fields the adapter did not use (JSON-safe: images and bytes are
  dropped, NaN becomes null), plus derived fields such as ``answer_raw`` or ``n_images``.
  Long model generations (OpenR1 ``generations``/``messages``, s1K
  ``thinking_trajectories``/``attempt``, natural_reasoning ``responses``) are not copied.

The ``text`` format (:mod:`mathrecipes.sources.text`) is the exception: raw text documents
without an answer (``answer`` ``""``, ``answer_type`` ``none``), optionally cut into chunks
(several records from one row); ingest calls it with the source's ``text_field`` and
``chunk_chars``.

Add a format: write ``_adapt_<name>(raw, index) -> dict`` and register a :class:`Format` in
:data:`FORMATS`. Adapters are pure and cheap (regexes only) so they can run on every row.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mathrecipes.answers import (
    NUMERIC_TYPES,
    classify_answer_type,
    clean_gold,
    format_number,
    gsm8k_final,
    last_boxed,
    last_number,
)
from mathrecipes.records import ANSWER_TYPES, loads_meta
from mathrecipes.sources.rows import rest_meta, row_id
from mathrecipes.sources.text import adapt_text

__all__ = ["FORMATS", "Format", "answer_type_distribution", "canonical_meta", "get_format"]

S1K_SHORT_SOLUTION = 40  # s1K: a solution this short (and one line) without a box is the answer


@dataclass(frozen=True)
class Format:
    name: str
    hub_id: str | None
    hub_config: str | None
    fields: str
    adapt: Callable[[Mapping[str, Any], int], dict]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _get(raw: Mapping[str, Any], *names: str) -> Any:
    """First present, non-null field among ``names`` (datasets differ in capitalisation)."""
    for n in names:
        if n in raw and raw[n] is not None:
            return raw[n]
    return None


def _used_key(raw: Mapping[str, Any], *names: str) -> str | None:
    for n in names:
        if n in raw and raw[n] is not None:
            return n
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value)


def _typed(answer: str | None, problem: str | None = None) -> str:
    return classify_answer_type(answer, problem=problem) if answer else "text"


def _record(
    rid: str, problem: str, solution: str, answer: str | None, answer_type: str, meta: dict
) -> dict:
    return {
        "id": rid,
        "problem": problem.strip(),
        "solution": solution.strip(),
        "answer": answer if answer else None,
        "answer_type": answer_type,
        "meta": meta,
    }


def _drop_duplicate_question(raw: Mapping[str, Any], problem: str) -> list[str]:
    """Qwen harness files repeat the problem as ``question``: not worth copying to meta."""
    q = raw.get("question")
    return ["question"] if isinstance(q, str) and q.strip() == problem.strip() else []


# --------------------------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------------------------


CANONICAL_FIELDS = ("id", "problem", "solution", "answer", "answer_type", "meta")


def canonical_meta(meta_raw: Any, raw: Mapping[str, Any]) -> dict:
    """The ``meta`` of a ``canonical`` row: its ``meta`` (a JSON string or a mapping) over the
    row's other fields (``raw`` less :data:`CANONICAL_FIELDS`; ``source`` as ``orig_source``).
    Shared with the columnar path (:mod:`mathrecipes.sources.columnar`)."""
    if isinstance(meta_raw, str):
        meta = loads_meta(meta_raw)
    elif isinstance(meta_raw, Mapping):
        meta = rest_meta(meta_raw, ())
    else:
        meta = {}
    extra = rest_meta(raw, CANONICAL_FIELDS)
    if "source" in extra:
        extra["orig_source"] = extra.pop("source")
    return {**extra, **meta}


def _adapt_canonical(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("problem"))
    answer = clean_gold(_text(raw.get("answer")))
    answer_type = raw.get("answer_type")
    if answer_type not in ANSWER_TYPES:
        answer_type = _typed(answer, problem)
    meta = canonical_meta(raw.get("meta"), raw)
    rid = _text(raw.get("id")).strip() or f"{index:07d}"
    return _record(rid, problem, _text(raw.get("solution")), answer, answer_type, meta)


def _adapt_gsm8k(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("question"))
    solution = _text(raw.get("answer"))
    answer = gsm8k_final(solution)
    meta = rest_meta(raw, ("question", "answer"))
    if " ** " in solution:
        meta["style"] = "socratic"
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_math(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("problem"))
    solution = _text(raw.get("solution"))
    answer = clean_gold(last_boxed(solution))
    meta = rest_meta(raw, ("problem", "solution", "unique_id", "idx", "id"))
    for k in ("unique_id", "idx"):
        if k in raw and raw[k] is not None:
            meta.setdefault(k, raw[k])
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_math500(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("problem"))
    solution = _text(raw.get("solution"))
    answer = clean_gold(_text(raw.get("answer")))
    meta = rest_meta(raw, ("problem", "solution", "answer", "unique_id"))
    if raw.get("unique_id") is not None:
        meta["unique_id"] = raw["unique_id"]
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_minerva(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("problem"))
    solution = _text(raw.get("solution"))
    answer = clean_gold(last_boxed(solution))
    meta = rest_meta(raw, ("problem", "solution", "idx"))
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_aime(raw: Mapping[str, Any], index: int) -> dict:
    pk = _used_key(raw, "problem", "Problem", "question")
    sk = _used_key(raw, "solution", "Solution")
    ak = _used_key(raw, "answer", "Answer")
    problem = _text(raw.get(pk)) if pk else ""
    solution = _text(raw.get(sk)) if sk else ""
    value = raw.get(ak) if ak else None
    # Strings are kept as written ("025"); a missing answer falls back to the solution's box.
    answer = clean_gold(last_boxed(solution) if value is None else format_number(value))
    meta = rest_meta(raw, (pk, sk, ak, "id", "ID"), _drop_duplicate_question(raw, problem))
    if value is not None and not isinstance(value, str):
        meta["answer_raw"] = value
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_amc(raw: Mapping[str, Any], index: int) -> dict:
    return _adapt_aime(raw, index)


def _adapt_svamp(raw: Mapping[str, Any], index: int) -> dict:
    body = _text(raw.get("Body")).strip()
    question = _text(raw.get("Question")).strip()
    # As the Qwen2.5-Math / math-evaluation-harness loader: a body without a final period
    # ("... into 93 groups") gets one, so the question does not run on.
    if body and not body.endswith("."):
        body += "."
    problem = f"{body} {question}".strip()
    value = raw.get("Answer")
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+(?:\.\d+)?\s*", value):
        value = float(value)  # some Hub copies store "145.0" as a string
    answer = clean_gold(format_number(value)) if value is not None else None
    meta = rest_meta(raw, ("Body", "Question", "Answer", "ID"), ("question_concat",))
    if value is not None:
        meta["answer_raw"] = value
    rid = row_id(raw, index, ("ID", "idx", "id"))
    return _record(rid, problem, "", answer, _typed(answer, problem), meta)


def _adapt_asdiv(raw: Mapping[str, Any], index: int) -> dict:
    problem = f"{_text(raw.get('body')).strip()} {_text(raw.get('question')).strip()}".strip()
    raw_answer = _text(raw.get("answer")).strip()
    meta = rest_meta(raw, ("body", "question", "answer", "idx", "id", "ID"))
    meta["answer_raw"] = raw_answer
    if ";" in raw_answer:
        # Several values ("5 (dogs); 3 (cats)"), which the Hub copy has and the Qwen2.5-Math
        # harness drops (its 2215 of 2305 rows): no single gold answer, the row is quarantined.
        meta["answer_format"] = "multiple"
        return _record(row_id(raw, index), problem, "", None, "text", meta)
    answer: str | None = raw_answer
    answer_type: str | None = None
    m = re.fullmatch(r"(?P<num>[-+]?[\d.,/]+)\s*\((?P<unit>[^()]*)\)", raw_answer)
    if m:  # "9 (apples)": the number, the unit to meta
        answer = m.group("num").replace(",", "")
        meta["answer_unit"] = m.group("unit").strip()
    elif re.fullmatch(r"\d+\s*:\s*\d+", raw_answer):
        if raw.get("solution_type") == "Ratio" or "ratio" in problem.lower():
            # A ratio "3:4" is the fraction 3/4 (graders do not read colons); raw kept in meta.
            a, b = (x.strip() for x in raw_answer.split(":"))
            answer, answer_type = f"{a}/{b}", "fraction"
            meta["answer_format"] = "ratio"
        else:
            answer_type = "text"  # a clock time "5:45"
            meta["answer_format"] = "time"
    elif re.fullmatch(r"-\(\s*\d+\s*/\s*\d+\s*\)", raw_answer):
        answer = "-" + raw_answer[2:-1].replace(" ", "")  # "-(1/3)" -> "-1/3"
    elif re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2})?\s*[ap]\.?m\..*", raw_answer):
        answer_type = "text"
        meta["answer_format"] = "time"
    answer = clean_gold(answer)
    if answer == raw_answer:
        meta.pop("answer_raw")
    if answer_type is None:
        answer_type = _typed(answer, problem)
    return _record(row_id(raw, index), problem, "", answer, answer_type, meta)


def _adapt_college_math(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("question"))
    answer = clean_gold(_text(raw.get("answer")))
    meta = rest_meta(raw, ("question", "answer"))
    source = _text(raw.get("data_source")).removeprefix("college_math.")
    number = _text(raw.get("question_number"))
    # No id field: (textbook, exercise number) is unique and stable; fall back to the index.
    rid = f"{source}/{number}" if source and number else row_id(raw, index)
    return _record(rid, problem, "", answer, _typed(answer, problem), meta)


_OB_TYPES = {"Tuple": "tuple", "Interval": "interval", "Expression": "expression"}
_DOLLAR = re.compile(r"(?<!\\)\$")  # a math delimiter; an escaped \$ is a dollar sign
_SEPARATOR = re.compile(r"[\s,;.]*")  # text between two math spans that only separates them


def _ob_parts(final: str) -> list[str]:
    """One OlympiadBench ``final_answer`` string as its answers, ``$`` delimiters removed.

    The dataset writes several answers into one string, each in its own math span:
    ``"$69$,$84$"``, ``"$f(n)=n$, $g(n)=1$"``, sometimes with a trailing period
    (``"$(-\\infty, 0) \\cup\\{1\\}$."``) or an unbalanced ``$`` (``"$221,$8$"``). When the
    text between the spans is only separators the spans are the answers; an answer in prose
    (``"$f(x)=a x+b$, where $b$ is an arbitrary integer"``) stays one answer, ``$`` removed.
    """
    pieces = _DOLLAR.split(final.strip())
    if len(pieces) == 1:  # no math delimiters: "1,3,5", "2"
        one = clean_gold(final)
        return [one] if one else []
    text = pieces[0::2] if len(pieces) % 2 else []  # balanced: even positions are text
    if len(pieces) % 2 == 0 or all(_SEPARATOR.fullmatch(t) for t in text):
        # math spans separated by commas (or a stray $): each non-empty piece is an answer
        parts = [clean_gold(p.strip().strip(",;").strip()) for p in pieces]
        return [p for p in parts if p]
    joined = clean_gold(re.sub(r"\s+", " ", "".join(pieces)))  # prose: keep it whole
    return [joined] if joined else []


def _adapt_olympiadbench(raw: Mapping[str, Any], index: int) -> dict:
    question = _text(raw.get("question")).strip()
    context = _text(raw.get("context")).strip()
    problem = f"{context}\n\n{question}" if context else question
    sol = raw.get("solution")
    solution = "\n\n".join(_text(s) for s in sol) if isinstance(sol, (list, tuple)) else _text(sol)
    finals = raw.get("final_answer")
    if isinstance(finals, str):
        finals = [finals]
    parts = [p for f in (finals or []) for p in _ob_parts(_text(f))]
    answer = ", ".join(parts) if parts else None
    hint = _text(raw.get("answer_type"))
    if not answer:
        answer_type = "text"
    elif raw.get("is_multiple_answer") and len(parts) > 1:
        answer_type = "set"  # several final answers: all solutions, order free
    elif hint in _OB_TYPES:
        answer_type = _OB_TYPES[hint]
    else:  # Numerical, Equation, mixed "Numerical,Expression", ...
        answer_type = _typed(answer, problem)
    images = [k for k in raw if k.startswith("image_")]
    meta = rest_meta(raw, ("question", "context", "solution", "final_answer", "id"), images)
    meta["ob_answer_type"] = meta.pop("answer_type", None)
    meta["n_images"] = sum(1 for k in images if raw.get(k) is not None)
    if context:
        meta["context"] = context
    return _record(row_id(raw, index), problem, solution, answer, answer_type, meta)


def _adapt_numinamath(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("problem"))
    solution = _text(raw.get("solution"))
    answer = clean_gold(last_boxed(solution))
    meta = rest_meta(raw, ("problem", "solution"), ("messages",))
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


_NO_ANSWER = frozenset({"proof", "notfound", "not found", "none", "n/a"})


def _adapt_openr1_math(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("problem"))
    solution = _text(raw.get("solution"))
    answer = clean_gold(_text(raw.get("answer")))
    meta = {
        k: v
        for k, v in rest_meta(raw, ("problem", "solution", "answer", "uuid")).items()
        if v is None or isinstance(v, (str, int, float, bool))
    }
    gens = raw.get("generations")
    if isinstance(gens, (list, tuple)):
        meta["n_generations"] = len(gens)
    verdicts = raw.get("correctness_math_verify")
    if isinstance(verdicts, (list, tuple)):
        meta["n_correct_math_verify"] = sum(1 for v in verdicts if v)
    if answer and answer.strip().lower() in _NO_ANSWER:
        # Proof problems carry the word "proof" as their answer: nothing to check against.
        meta["answer_raw"] = answer
        answer = None
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_metamathqa(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("query"))
    solution = _text(raw.get("response"))
    answer = None
    marker = "The answer is:"
    at = solution.rfind(marker)
    if at != -1:
        tail = solution[at + len(marker) :].strip().split("\n")[0].strip()
        answer = clean_gold(tail.rstrip(".").strip()) if tail else None
        if answer and re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", answer):
            answer = answer.replace(",", "")  # GSM-style "1,000", as gsm8k_final does
    meta = rest_meta(raw, ("query", "response"))
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_limo(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("question"))
    solution = _text(raw.get("solution"))
    value = raw.get("answer")
    answer = clean_gold(format_number(value)) if value is not None else None
    if not answer:
        answer = clean_gold(last_boxed(solution))
    meta = rest_meta(raw, ("question", "solution", "answer"))
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_s1k(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("question"))
    solution = _text(raw.get("solution"))
    answer = clean_gold(last_boxed(solution))
    if not answer:
        short = solution.strip()
        if short and len(short) <= S1K_SHORT_SOLUTION and "\n" not in short:
            answer = clean_gold(short)
    meta = rest_meta(
        raw, ("question", "solution"), ("thinking_trajectories", "attempt", "cot", "text")
    )
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_natural_reasoning(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("question"))
    answer = clean_gold(_text(raw.get("reference_answer")))
    answer_type = _typed(answer, problem)
    if answer_type not in NUMERIC_TYPES:
        answer_type = "text"
    meta = rest_meta(raw, ("question", "reference_answer"), ("responses",))
    responses = raw.get("responses")
    if isinstance(responses, (list, tuple)):
        meta["n_responses"] = len(responses)
        models = sorted(
            {r.get("response_model") for r in responses if isinstance(r, Mapping)} - {None}
        )
        if models:
            meta["response_models"] = models
    return _record(row_id(raw, index), problem, "", answer, answer_type, meta)


def _adapt_deepscaler(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("problem"))
    solution = _text(raw.get("solution"))
    value = raw.get("answer")
    answer = clean_gold(format_number(value)) if value is not None else None
    meta = rest_meta(raw, ("problem", "solution", "answer"))
    if value is None or not answer:
        meta["answer_raw"] = value
    return _record(row_id(raw, index), problem, solution, answer, _typed(answer, problem), meta)


def _adapt_orca_math(raw: Mapping[str, Any], index: int) -> dict:
    problem = _text(raw.get("question"))
    solution = _text(raw.get("answer"))
    boxed = last_boxed(solution)
    answer = clean_gold(boxed) if boxed else last_number(solution)
    answer_type = _typed(answer, problem)
    if answer and answer_type not in NUMERIC_TYPES:
        number = last_number(answer)
        if number and boxed:
            answer, answer_type = number, _typed(number)
    meta = rest_meta(raw, ("question", "answer"))
    meta["answer_rule"] = "boxed" if boxed else "last_number"
    return _record(row_id(raw, index), problem, solution, answer, answer_type, meta)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_FORMAT_LIST = [
    Format(
        "canonical",
        None,
        None,
        "id, problem, solution, answer, answer_type (classified when missing), meta "
        "(dict or JSON string) as is; other fields to meta (source -> orig_source)",
        _adapt_canonical,
    ),
    Format(
        "gsm8k",
        "openai/gsm8k",
        "main",
        "question -> problem; answer -> solution; gold = text after the last '#### ' "
        "(commas removed); also the 'socratic' config (meta.style = socratic)",
        _adapt_gsm8k,
    ),
    Format(
        "math",
        "EleutherAI/hendrycks_math",
        None,
        "problem; solution; gold = last \\boxed{} of solution; level, type to meta; "
        "id = unique_id / idx when present (one Hub config per subject)",
        _adapt_math,
    ),
    Format(
        "math500",
        "HuggingFaceH4/MATH-500",
        None,
        "problem; solution; answer = gold; subject, level, unique_id (id) to meta",
        _adapt_math500,
    ),
    Format(
        "minerva",
        None,
        None,
        "problem; solution; gold = last \\boxed{} of solution; type (course) to meta; "
        "id = idx (Qwen2.5-Math evaluation/data/minerva_math)",
        _adapt_minerva,
    ),
    Format(
        "aime",
        "AI-MO/aimo-validation-aime",
        None,
        "id; problem; solution; answer kept as written ('025'); url and the rest to meta; "
        "a 'question' equal to problem is dropped",
        _adapt_aime,
    ),
    Format(
        "amc",
        "AI-MO/aimo-validation-amc",
        None,
        "id; problem; answer float -> '27' (non-integers keep their decimals), raw in "
        "meta.answer_raw; url to meta",
        _adapt_amc,
    ),
    Format(
        "olympiadbench",
        "Hothan/OlympiadBench",
        "OE_TO_maths_en_COMP",
        "context + question -> problem; solution list joined; final_answer: each string's "
        "$-delimited answers ('$69$,$84$' -> '69, 84'), all joined with ', '; answer_type "
        "from the dataset's answer_type / is_multiple_answer (-> meta.ob_answer_type); images "
        "dropped (meta.n_images)",
        _adapt_olympiadbench,
    ),
    Format(
        "svamp",
        "ChilleD/SVAMP",
        None,
        "Body (+ '.' if missing) + ' ' + Question -> problem; Answer float -> '145'; "
        "ID -> id; Equation, Type to meta",
        _adapt_svamp,
    ),
    Format(
        "asdiv",
        "EleutherAI/asdiv",
        "asdiv",
        "body + ' ' + question -> problem; answer '9 (apples)' -> '9' (unit in "
        "meta.answer_unit); ratio '3:4' -> '3/4'; clock times are text; several values "
        "'a; b' -> no answer (quarantine: the Hub's 2305 rows become the harness's 2215); "
        "formula, solution_type to meta",
        _adapt_asdiv,
    ),
    Format(
        "college_math",
        None,
        None,
        "question -> problem; answer (LaTeX, $ stripped); id = <textbook>/<question_number>; "
        "data_source, data_topic, license to meta (Qwen2.5-Math evaluation/data/college_math)",
        _adapt_college_math,
    ),
    Format(
        "numinamath",
        "AI-MO/NuminaMath-CoT",
        None,
        "problem; solution; gold = last \\boxed{} of solution; source to meta; messages "
        "dropped (duplicates problem and solution)",
        _adapt_numinamath,
    ),
    Format(
        "openr1_math",
        "open-r1/OpenR1-Math-220k",
        "default",
        "problem; solution; answer = gold ('proof' -> none); uuid -> id; scalar fields "
        "(problem_type, question_type, source, correctness_count) to meta, plus "
        "n_generations, n_correct_math_verify; generations/messages dropped",
        _adapt_openr1_math,
    ),
    Format(
        "metamathqa",
        "meta-math/MetaMathQA",
        None,
        "query -> problem; response -> solution; gold = text after the last "
        "'The answer is: '; type, original_question to meta",
        _adapt_metamathqa,
    ),
    Format(
        "limo",
        "GAIR/LIMO",
        None,
        "question -> problem; solution; answer = gold (else last \\boxed{} of solution)",
        _adapt_limo,
    ),
    Format(
        "s1k",
        "simplescaling/s1K",
        None,
        "question -> problem; solution; gold = last \\boxed{} of solution, else the "
        f"solution itself when one line of at most {S1K_SHORT_SOLUTION} characters; "
        "cot_type, source_type, metadata to meta; thinking_trajectories, attempt dropped",
        _adapt_s1k,
    ),
    Format(
        "natural_reasoning",
        "facebook/natural_reasoning",
        None,
        "question -> problem; reference_answer = gold (often empty or long); type text "
        "unless numeric; responses dropped (meta.n_responses, response_models)",
        _adapt_natural_reasoning,
    ),
    Format(
        "deepscaler",
        "agentica-project/DeepScaleR-Preview-Dataset",
        None,
        "problem; solution (may be absent); answer = gold; difficulty, type, year, ... to meta",
        _adapt_deepscaler,
    ),
    Format(
        "orca_math",
        "microsoft/orca-math-word-problems-200k",
        None,
        "question -> problem; answer (a worded solution) -> solution; gold = last "
        "\\boxed{} else the last number (trailing '(...)' remarks ignored); "
        "meta.answer_rule",
        _adapt_orca_math,
    ),
    Format(
        "text",
        None,
        None,
        "raw text without an answer (answer '', answer_type none): text_field (text) -> "
        "problem, other fields to meta; also whole .txt / .md files; chunk_chars N: chunks of "
        "at most N characters on paragraph boundaries, id <doc id>#<k>, meta doc_id, chunk, "
        "n_chunks, span. Only rewrite / extract entries may read it",
        adapt_text,
    ),
]

FORMATS: dict[str, Format] = {f.name: f for f in _FORMAT_LIST}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown format {name!r}; known formats: {', '.join(sorted(FORMATS))}"
        ) from None


def answer_type_distribution(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Count of adapted rows per ``answer_type``, most common first (ties by name)."""
    counts = Counter(r.get("answer_type") or "text" for r in rows)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
