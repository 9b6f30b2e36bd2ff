"""The ``text`` format: raw text documents (no problem, no answer) as canonical records.

A document is one row of a jsonl / json / parquet file or a Hugging Face dataset (its text in
the column ``text_field``, default ``text``), or one whole ``.txt`` / ``.md`` file
(:func:`read_text_document`). Its record has the text as ``problem``, an empty ``solution``,
no answer (``answer`` ``""``, ``answer_type`` ``none``: :data:`mathrecipes.records.NO_ANSWER`)
and the row's other fields in ``meta``. The id is the row's own (``id``, ``uuid``, ... as for
every format), else its index; a file's id is its path below the glob's folder, without the
suffix (``textbook/ch1`` for ``docs/textbook/ch1.md`` read as ``docs/**/*.md``).

With ``chunk_chars: N`` a document becomes the chunks :func:`chunk_spans` cuts: at most N
characters each, cut on paragraph boundaries (blank lines), a paragraph longer than N cut at
its last line break, else sentence end, else space before the limit (a word longer than N is
cut inside). Chunk ``k`` of document ``d`` has the id ``d#k`` (also for a document that fits in
one chunk, so ids keep their shape as documents grow) and ``meta`` ``doc_id``, ``chunk``,
``n_chunks`` and ``span``: ``[start, end]`` with ``text[start:end]`` the chunk, in the
document's text as read.

Rows without an answer only feed the ``rewrite`` and ``extract`` synthesis methods: the config
refuses a ``text`` dataset anywhere else (a benchmark, a recipe's mix, another method).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mathrecipes.records import NO_ANSWER, RecordError
from mathrecipes.sources.rows import ID_FIELDS, rest_meta, row_id

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
DEFAULT_TEXT_FIELD = "text"

_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_END = re.compile(r"[.!?;:](?=\s)")


def document_id(path: str, pattern: str) -> str:
    """A text file's id: its path below the non-glob folder of ``pattern``, suffix removed."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    base = Path(*fixed) if len(fixed) < len(parts) else Path(path).parent
    try:
        rel = Path(path).relative_to(base) if fixed else Path(path)
    except ValueError:
        rel = Path(Path(path).name)
    return rel.with_suffix("").as_posix()


def read_text_document(path: str, pattern: str, field: str) -> dict[str, Any]:
    """One ``.txt`` / ``.md`` file as one raw row: ``{"id": ..., field: its text}``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return {"id": document_id(path, pattern), field: text}


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each paragraph (text between blank lines), surrounding whitespace
    left out; empty paragraphs are skipped."""
    spans = []
    start = 0
    for cut in [*_BLANK_LINE.finditer(text), None]:
        end = len(text) if cut is None else cut.start()
        s, e = start, end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        if cut is not None:
            start = cut.end()
    return spans


def _cut_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """A paragraph longer than ``max_chars`` cut into pieces of at most ``max_chars``."""
    pieces = []
    while end - start > max_chars:
        window = text[start : start + max_chars + 1]
        cut = None
        for finder in (
            lambda w: [m.start() for m in re.finditer(r"\n", w)],
            lambda w: [m.end() for m in _SENTENCE_END.finditer(w)],
            lambda w: [m.start() for m in re.finditer(r"\s", w)],
        ):
            found = [p for p in finder(window) if 0 < p <= max_chars and window[:p].strip()]
            if found:
                cut = found[-1]
                break
        if cut is None:
            cut = max_chars  # one word longer than the limit
        piece_end = start + cut
        while piece_end > start and text[piece_end - 1].isspace():
            piece_end -= 1
        pieces.append((start, piece_end))
        start += cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        pieces.append((start, end))
    return pieces


def chunk_spans(text: str, max_chars: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each chunk: whole paragraphs packed greedily, in order, while the
    chunk (separators between its paragraphs included) has at most ``max_chars`` characters."""
    if max_chars < 1:
        raise ValueError(f"chunk_chars must be positive, got {max_chars}")
    pieces = []
    for s, e in paragraph_spans(text):
        pieces.extend(_cut_long(text, s, e, max_chars))
    chunks: list[tuple[int, int]] = []
    for s, e in pieces:
        if chunks and e - chunks[-1][0] <= max_chars:
            chunks[-1] = (chunks[-1][0], e)
        else:
            chunks.append((s, e))
    return chunks


def adapt_text(
    raw: Mapping[str, Any], index: int, *, field: str = DEFAULT_TEXT_FIELD
) -> dict[str, Any]:
    """One raw row to one answerless record (the whole document). Raises
    :class:`~mathrecipes.records.RecordError` when ``field`` is missing, not a string or empty."""
    if field not in raw or raw[field] is None:
        have = ", ".join(sorted(map(str, raw))) or "none"
        raise RecordError(f"no text field {field!r} (fields: {have}); set text_field")
    text = raw[field]
    if not isinstance(text, str):
        raise RecordError(f"text field {field!r} is a {type(text).__name__}, not a string")
    if not text.strip():
        raise RecordError(f"text field {field!r} is empty")
    rid = row_id(raw, index)
    id_key = next((k for k in ID_FIELDS if k in raw and row_id({k: raw[k]}, index) == rid), None)
    return {
        "id": rid,
        "problem": text,
        "solution": "",
        "answer": "",
        "answer_type": NO_ANSWER,
        "meta": rest_meta(raw, (field, id_key)),
    }


def text_records(
    raw: Mapping[str, Any],
    index: int,
    *,
    field: str = DEFAULT_TEXT_FIELD,
    chunk_chars: int | None = None,
) -> list[dict[str, Any]]:
    """The records of one document: itself (``problem`` stripped), or its chunks."""
    doc = adapt_text(raw, index, field=field)
    text = doc["problem"]
    if chunk_chars is None:
        return [{**doc, "problem": text.strip()}]
    spans = chunk_spans(text, chunk_chars)
    return [
        {
            **doc,
            "id": f"{doc['id']}#{k}",
            "problem": text[s:e],
            "meta": {
                **doc["meta"],
                "doc_id": doc["id"],
                "chunk": k,
                "n_chunks": len(spans),
                "span": [s, e],
            },
        }
        for k, (s, e) in enumerate(spans)
    ]
