"""Writing a parquet file a batch of rows at a time (ingest's outputs), with the row groups and
bytes of :func:`mathrecipes.records.write_table` for a file that fits one row group."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ROW_GROUP_BYTES", "ROW_GROUP_ROWS", "TableStream"]

# Row groups of a file written by :func:`mathrecipes.records.write_table` (pyarrow's default: 1Mi rows a group) and
# by :class:`TableStream`, which also closes a group at ``ROW_GROUP_BYTES`` of arrow data so that
# streaming a large file holds one group, not the file. A file under both limits is one group,
# byte for byte what write_table writes of the same rows.
ROW_GROUP_ROWS = 1024 * 1024
ROW_GROUP_BYTES = 128 * 1024 * 1024


class TableStream:
    """Write a parquet file a batch of rows at a time, atomically (a ``.tmp`` file renamed by
    :meth:`close`; :meth:`abort` removes it) and deterministically, as :func:`mathrecipes.records.write_table`.

    Batches are buffered into row groups of ``ROW_GROUP_ROWS`` rows, or fewer when the buffer
    reaches ``ROW_GROUP_BYTES``: write_table's row groups for a file under ``ROW_GROUP_BYTES``
    (written by write_table itself when it is one group), memory bounded by one group otherwise.
    """

    def __init__(self, path: str | Path, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.schema = schema
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.select(self.schema.names).cast(self.schema)
        self._buffer.append(table)
        self._buffered += table.num_rows
        self._bytes += table.nbytes
        self.rows += table.num_rows
        while self._buffered >= ROW_GROUP_ROWS:
            whole = self._take()
            self._write_group(whole.slice(0, ROW_GROUP_ROWS))
            self._put_back(whole.slice(ROW_GROUP_ROWS))
        if self._bytes >= ROW_GROUP_BYTES:
            self._write_group(self._take())

    def _take(self) -> pa.Table:
        table = pa.concat_tables(self._buffer) if self._buffer else self.schema.empty_table()
        self._buffer, self._buffered, self._bytes = [], 0, 0
        return table

    def _put_back(self, table: pa.Table) -> None:
        if table.num_rows:
            self._buffer, self._buffered, self._bytes = [table], table.num_rows, table.nbytes

    def _write_group(self, table: pa.Table) -> None:
        """Write one row group, in a thread (pyarrow encodes and compresses without the GIL, so
        the next batches are made meanwhile); one group at a time."""
        self._wait()
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self.tmp, self.schema, compression="zstd", store_schema=True
            )
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="parquet-write")
        self._pending = self._pool.submit(self._writer.write_table, table)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> int:
        """Write what is buffered, move the file into place; returns the row count."""
        if self._writer is None:  # one row group (or none): exactly write_table's file
            self.path.parent.mkdir(parents=True, exist_ok=True)
            table = self._take().combine_chunks()
            pq.write_table(table, self.tmp, compression="zstd", store_schema=True)
        else:
            if self._buffered:
                self._write_group(self._take())
            self._wait()
            self._writer.close()
            self._close_pool()
        self.tmp.replace(self.path)
        return self.rows

    def _close_pool(self) -> None:
        self._writer = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            with suppress(Exception):  # the error being raised is the caller's
                self._wait()
            self._writer.close()
            self._close_pool()
        self._buffer = []
        self.tmp.unlink(missing_ok=True)
