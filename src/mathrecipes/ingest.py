"""Ingest: a configured source to a canonical parquet file, with bad rows failed or quarantined."""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from mathrecipes.config import BuiltinSource, HFSource, LocalSource, source_spec
from mathrecipes.parquet_stream import TableStream
from mathrecipes.records import FIELDS, SCHEMA, RecordError, check_record, dumps_meta
from mathrecipes.sources import open_source
from mathrecipes.sources.rows import BadRow

log = logging.getLogger(__name__)

QUARANTINE_FIELDS = ("where", "reason", "row")
QUARANTINE_SCHEMA = pa.schema([(f, pa.string()) for f in QUARANTINE_FIELDS])
SourceSpec = BuiltinSource | LocalSource | HFSource

# Raw rows a batch: what ingest holds at a time (with one row group of the output, see
# mathrecipes.parquet_stream.TableStream), whatever the size of the source.
BATCH_ROWS = 20_000


def ingest(
    name: str,
    spec: Any,
    out_path: str | Path,
    quarantine_path: str | Path,
    *,
    progress: bool = True,
    columnar: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, Any]:
    """Read every row of the source, check it and write the canonical parquet.

    ``spec`` is the ``datasets`` / ``benchmarks`` entry (a source spec of :mod:`mathrecipes.config`
    or a mapping for one). Its ``on_bad_row``: ``fail`` raises on the first bad row (naming file and row);
    ``quarantine`` writes bad rows to ``quarantine_path`` with the reason and counts them: its
    columns are ``QUARANTINE_FIELDS``, ``where`` (file and line or row), ``reason`` and ``row``
    (the raw row as JSON; a line the source could not read, a
    :class:`~mathrecipes.sources.rows.BadRow`, as its text).
    Duplicate ids always fail: they would break provenance. A ``text`` source
    (:mod:`mathrecipes.sources.text`) gives answerless rows, one per document or chunk.

    Rows are read, checked and written ``batch_rows`` at a time: both files are written as they
    go (:class:`~mathrecipes.parquet_stream.TableStream`) and moved into place at the end. The
    parquet files of a ``local`` source with ``format: canonical`` are adapted and checked as
    columns (:mod:`mathrecipes.sources.columnar`; ``columnar=False``: row by row, the same
    file); a row the columns do not settle goes the per-row way. Duplicate ids are looked for
    in each batch and, over the ids of all batches, before the first bad row
    (``on_bad_row: fail``) and at the end.
    """
    spec = source_spec(spec)
    source = open_source(name, spec)
    out = TableStream(out_path, SCHEMA)
    quarantine = TableStream(quarantine_path, QUARANTINE_SCHEMA)
    ids = _IdLog(source)
    types: Counter[str] = Counter()
    bar = tqdm(desc=f"ingest {name}", disable=not progress, unit="row")
    reader = _Reader(name, spec, batch_rows, bar)
    try:
        for chunk in reader.chunks(source, columnar=columnar):
            ids.add(chunk)
            if chunk.error is not None:
                ids.check()  # a duplicate among the rows before it comes first, as row by row
                raise chunk.error
            out.write(chunk.records)
            quarantine.write(_bad_table(chunk.bad))
            counts = chunk.records.column("answer_type").value_counts().to_pylist()
            types.update({c["values"]: c["counts"] for c in counts})
        ids.check()
        if not out.rows:
            raise RecordError(f"{name}: no valid rows ({quarantine.rows} quarantined)")
        n_bad = quarantine.rows
        n = out.close()
        quarantine.close()
    except BaseException:
        out.abort()
        quarantine.abort()
        raise
    finally:
        bar.close()
    if n_bad:
        log.warning("%s: %d bad row(s) quarantined in %s", name, n_bad, quarantine_path)
    return {
        "rows": n,
        "quarantined": n_bad,
        "answer_types": dict(sorted(types.items())),
        "source": source.describe(),
    }


@dataclass
class _Chunk:
    """The checked records of a batch of raw rows, the raw row index of each, the batch's bad
    rows (quarantine rows), and ``error``: the first bad row's (``on_bad_row: fail``; the
    records are then the rows before it)."""

    records: pa.Table
    raw_index: np.ndarray
    bad: list[dict[str, str]] = field(default_factory=list)
    where: Callable[[int], str] | None = None  # raw index -> where (None: read the source again)
    error: RecordError | None = None


class _Reader:
    """Raw rows to :class:`_Chunk` s, row by row or as columns; ``index`` counts raw rows."""

    def __init__(self, name: str, spec: SourceSpec, batch_rows: int, bar: tqdm) -> None:
        self.name, self.spec, self.batch_rows, self.bar = name, spec, batch_rows, bar
        self.index = 0

    def chunks(self, source: Any, *, columnar: bool) -> Iterator[_Chunk]:
        from mathrecipes.sources.local import LocalSource as LocalReader

        spec = self.spec
        if not (columnar and isinstance(source, LocalReader) and spec.format == "canonical"):
            yield from self.by_row(source.rows())
            return
        for path in source.files:  # as LocalSource.rows, with its limit
            left = None if spec.limit is None else spec.limit - self.index
            if left is not None and left <= 0:
                return
            if Path(path).suffix.lower() == ".parquet":
                stop = yield from self.by_column(path, left)
            else:
                stop = yield from self.by_row(islice(source._raw(path), left))
            if stop:
                return

    def _bad(self, where: str, raw: Any, exc: RecordError) -> tuple[dict[str, str], RecordError]:
        row = dumps_meta(_jsonable(raw))
        return {"where": where, "reason": str(exc), "row": row}, RecordError(
            f"{self.name} (on_bad_row: fail): {exc}"
        )

    def by_row(self, rows: Iterable[tuple[str, Any]]) -> Iterator[_Chunk]:
        """Today's path: each raw row through :func:`checked_records`. Returns (as a generator)
        True after a bad row with ``on_bad_row: fail``."""
        fail = self.spec.on_bad_row == "fail"
        good: list[dict[str, str]] = []
        index_of: list[int] = []
        bad: list[dict[str, str]] = []
        for where, raw in rows:
            index = self.index
            self.index += 1
            self.bar.update(1)
            if isinstance(raw, BadRow):  # a line the source could not read: not JSON, not UTF-8
                if fail:
                    error = RecordError(f"{self.name} (on_bad_row: fail): {where}: {raw.reason}")
                    yield _Chunk(_table(good), np.array(index_of, np.int64), error=error)
                    return True
                bad.append({"where": where, "reason": raw.reason, "row": raw.text})
            else:
                try:
                    recs = checked_records(self.name, self.spec, raw, index, where)
                except RecordError as exc:
                    entry, error = self._bad(where, raw, exc)
                    if fail:
                        yield _Chunk(_table(good), np.array(index_of, np.int64), error=error)
                        return True
                    bad.append(entry)
                    continue
                good.extend(recs)
                index_of.extend([index] * len(recs))
            if len(good) + len(bad) >= self.batch_rows:
                yield _Chunk(_table(good), np.array(index_of, np.int64), bad)
                good, index_of, bad = [], [], []
        yield _Chunk(_table(good), np.array(index_of, np.int64), bad)
        return False

    def by_column(self, path: str, left: int | None) -> Iterator[_Chunk]:
        """A parquet file of a ``canonical`` source as columns
        (:func:`mathrecipes.sources.columnar.adapt_batch`), the rows it leaves row by row."""
        import pyarrow.parquet as pq

        from mathrecipes.sources.columnar import adapt_batch, covered
        from mathrecipes.sources.local import parquet_batches, parquet_rows

        parquet = pq.ParquetFile(path)
        if not covered(parquet.schema_arrow, self.spec.fields):
            return (yield from self.by_row(islice(parquet_rows(path, self.batch_rows), left)))
        first = self.index

        def where(raw_index: int) -> str:
            return f"{path} row {raw_index - first}"

        fail = self.spec.on_bad_row == "fail"
        for batch in _prefetched(parquet_batches(parquet, self.batch_rows)):
            if left is not None:
                batch = batch.slice(0, max(0, left - (self.index - first)))
            if not batch.num_rows:
                break
            start = self.index
            self.index += batch.num_rows
            table, done, rest = adapt_batch(self.name, self.spec, batch, start)
            raw_index = start + done
            bad: list[dict[str, str]] = []
            error = None
            if len(rest):
                recs: list[dict[str, str]] = []
                rec_index: list[int] = []
                for pos, raw in zip(rest, batch.take(pa.array(rest)).to_pylist(), strict=True):
                    index = start + int(pos)
                    try:
                        got = checked_records(self.name, self.spec, raw, index, where(index))
                    except RecordError as exc:
                        entry, exc_fail = self._bad(where(index), raw, exc)
                        if fail:
                            error = exc_fail
                            keep = raw_index < index
                            table, raw_index = table.filter(pa.array(keep)), raw_index[keep]
                            break
                        bad.append(entry)
                        continue
                    recs.extend(got)
                    rec_index.extend([index] * len(got))
                if recs:
                    raw_index = np.concatenate([raw_index, np.array(rec_index, np.int64)])
                    order = np.argsort(raw_index, kind="stable")
                    table = pa.concat_tables([table, _table(recs)]).take(pa.array(order))
                    raw_index = raw_index[order]
            self.bar.update(batch.num_rows)
            yield _Chunk(table, raw_index, bad, where, error)
            if error is not None:
                return True
        return False


def _prefetched(batches: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """``batches``, read ahead by ``depth`` in a thread (pyarrow decodes without the GIL, so
    reading overlaps the Python work on the batch before)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def read() -> None:
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put((b, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((end, None))
        except BaseException as exc:  # raised where the batch is taken
            q.put((end, exc))

    thread = threading.Thread(target=read, name="parquet-read", daemon=True)
    thread.start()
    try:
        while True:
            b, exc = q.get()
            if exc is not None:
                raise exc
            if b is end:
                return
            yield b
    finally:
        stop.set()
        thread.join()


def _table(records: list[dict[str, str]]) -> pa.Table:
    return pa.table({f: [r[f] for r in records] for f in FIELDS}, schema=SCHEMA)


def _bad_table(rows: list[dict[str, str]]) -> pa.Table:
    cols = {f: [r[f] for r in rows] for f in QUARANTINE_FIELDS}
    return pa.table(cols, schema=QUARANTINE_SCHEMA)


class _IdLog:
    """The ids written so far (arrow strings, about 20 bytes a row) and the raw row of each, to
    find the first duplicate id with polars and name both of its rows as the per-row check did:
    ``where: duplicate id 'x' (first at where)``."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._ids: list[pa.Array] = []
        self._raw: list[np.ndarray] = []
        self._where: list[Callable[[int], str] | None] = []
        self._starts = [0]

    def add(self, chunk: _Chunk) -> None:
        import polars as pl

        if not chunk.records.num_rows:
            return
        ids = chunk.records.column("id").combine_chunks()
        self._ids.append(ids)
        self._raw.append(chunk.raw_index)
        self._where.append(chunk.where)
        self._starts.append(self._starts[-1] + len(ids))
        if pl.Series(ids).is_duplicated().any():
            self.check()

    def check(self) -> None:
        """Raise on the first row whose id an earlier row has."""
        import polars as pl

        if not self._ids:
            return
        ids = pl.Series(pa.chunked_array(self._ids))
        later = (~ids.is_first_distinct()).arg_true()
        if not len(later):
            return
        second = int(later[0])
        dup = ids[second]
        first = int((ids == dup).arg_true()[0])
        at_second, at_first = self._wheres([second, first])
        raise RecordError(f"{at_second}: duplicate id {dup!r} (first at {at_first})")

    def _wheres(self, positions: list[int]) -> list[str]:
        found: dict[int, str] = {}
        raw_of = {}
        for p in positions:
            c = bisect_right(self._starts, p) - 1
            raw = int(self._raw[c][p - self._starts[c]])
            if self._where[c] is not None:
                found[raw] = self._where[c](raw)
            raw_of[p] = raw
        todo = {r for r in raw_of.values() if r not in found}
        if todo:  # rows read one by one: their where from the source, read again up to them
            for index, (where, _) in enumerate(self.source.rows()):
                if index in todo:
                    found[index] = where
                    if len(found) == len(set(raw_of.values())):
                        break
        return [found[raw_of[p]] for p in positions]


def rename_fields(raw: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``fields`` ({canonical field: column in the data}) to a raw row."""
    out = dict(raw)
    for canonical, column in fields.items():
        if canonical not in FIELDS:
            raise ValueError(
                f"fields: {canonical!r} is not a canonical field ({', '.join(FIELDS)})"
            )
        if column in out:
            out[canonical] = out.pop(column)
    return out


def is_text_source(spec: SourceSpec) -> bool:
    """A source read with the ``text`` format: its rows have no answer."""
    return not isinstance(spec, BuiltinSource) and spec.format == "text"


def checked_records(
    name: str, spec: SourceSpec, raw: Mapping[str, Any], index: int, where: str
) -> list[dict[str, str]]:
    """The checked canonical records of one raw row (several: the chunks of a document);
    a :class:`RecordError` names ``where``."""
    try:
        adapted = to_records(name, spec, raw, index)
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}") from None
    answerless = is_text_source(spec)
    if len(adapted) == 1:
        return [check_record(adapted[0], where=where, answerless=answerless)]
    return [
        check_record(r, where=f"{where} chunk {k}", answerless=answerless)
        for k, r in enumerate(adapted)
    ]


def to_records(
    name: str, spec: SourceSpec, raw: Mapping[str, Any], index: int
) -> list[dict[str, Any]]:
    """One raw row to its canonical records (not yet checked): one, or for a ``text`` source
    with ``chunk_chars`` the document's chunks."""
    if not is_text_source(spec):
        return [to_canonical(name, spec, raw, index)]
    from mathrecipes.sources.text import DEFAULT_TEXT_FIELD, text_records

    row = rename_fields(raw, spec.fields)
    field = spec.text_field or DEFAULT_TEXT_FIELD
    docs = text_records(row, index, field=field, chunk_chars=spec.chunk_chars)
    return [_prefixed(name, spec, doc, index) for doc in docs]


def to_canonical(name: str, spec: SourceSpec, raw: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One raw row to a canonical record (not yet checked) with the dataset's id prefix."""
    if isinstance(spec, BuiltinSource):
        return dict(raw)
    from mathrecipes.sources.formats import get_format

    row = rename_fields(raw, spec.fields)
    adapted = dict(get_format(spec.format).adapt(row, index))
    return _prefixed(name, spec, adapted, index)


def _prefixed(
    name: str, spec: LocalSource | HFSource, adapted: dict[str, Any], index: int
) -> dict[str, Any]:
    rid = adapted.get("id")
    adapted["id"] = f"{name}/{rid if rid not in (None, '') else f'{index:07d}'}"
    adapted["source"] = name
    if spec.answer_type:
        adapted["answer_type"] = spec.answer_type
    return adapted


def _jsonable(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(k): (v if isinstance(v, (str, int, float, bool, type(None), dict, list)) else str(v))
        for k, v in raw.items()
    }
