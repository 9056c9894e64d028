"""Vectorised flattening of payloads that share a byte-level *shape* (no Python per row).

Most payloads of a topic are written by the same serializer: the same keys in the same order,
the same punctuation, only the values differ. Such rows are handled here with NumPy over the
payload bytes; ``FastFlattener`` leaves every other row to the plans (``plans``), and what they do
not take to the reference (``payload.ReferenceFlattener``, the definition of the output).

A *shape* is built once from one payload (its *seed*): the payload is cut into fixed pieces
(keys, punctuation, whitespace) and value slots (the content of a string value, or a literal:
number, ``true``, ``false``, ``null``). A row has the shape when, with ``"`` as anchors:

* it has no ``\\`` and no byte below 0x20 (so every ``"`` delimits a string, and strings need
  no unescaping), and exactly as many ``"`` as the seed;
* every fixed piece is byte-for-byte the seed's, at its place (anchored at its first ``"``, or
  at the row's start/end), the pieces tile the row from its first to its last byte;
* every literal slot holds one valid JSON literal (checked per value, see ``_literal_text``).

Replacing string contents by other valid contents and literals by other literals keeps the seed
valid JSON with the same key paths, so such a row is a JSON object with exactly the seed's
paths. Its column values are the string contents as they are (no escapes) and the literal texts
under the reference's rules: ``true``/``false``; ``null`` = absent; a number only when its text
is already its own ``payload.number_text`` (an integer within 64 bits other than ``-0``, or a
decimal already in its shortest round-trip form with at most 15 significant digits) — any other
literal sends the row on.

Shapes the vectorised path does not take (sent on): arrays, empty objects as values, duplicate
keys, two paths with one column name, objects nested more than ``MAX_SHAPE_DEPTH`` levels, a
seed that is not a JSON object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.transforms.flatten.naming import ColumnNamer
from leanops_dagster.transforms.flatten.payload import (
    Columns,
    Flattener,
    ReferenceFlattener,
    text_rows,
)
from leanops_dagster.transforms.flatten.plans import plan_rows

QUOTE = 0x22
_PADDING = 24
#: bytes per block: small enough that a block's payloads and work arrays stay in the CPU
#: caches while every fixed piece and value slot is swept (measured: 2 MiB ~2x faster than 16)
BLOCK_BYTES = 2 << 20
MAX_NEW_SHAPES_PER_BLOCK = 32
MAX_KNOWN_TRIES_PER_BLOCK = 8  # per quote count: more shapes than this are a rare mix
MAX_SHAPES_PER_QUOTE_COUNT = 32
MAX_FAILED_SEEDS_PER_GROUP = 4
#: objects nested deeper than this are sent on (the reference has the depth limit)
MAX_SHAPE_DEPTH = 64
_WS = b" \t\n\r"
_LITERAL_END = b",]} \t\n\r"
_START, _END = -1, -2  # anchors other than a quote index

_INT = r"^-?(0|[1-9][0-9]*)$"
_FLOAT = r"^-?(0|[1-9][0-9]*)\.([0-9]*[1-9]|0)$"
_TINY = r"^-?0\.0000"


class Unsupported(Exception):
    """The seed's shape is not handled here (its rows are sent on)."""


_FULL = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class Piece:
    """Fixed bytes of the shape, at ``offset`` from its anchor (a quote index, start, end)."""

    anchor: int
    offset: int
    data: np.ndarray

    @property
    def words(self) -> list[np.uint64]:
        """The bytes as little-endian 8-byte words (the last one zero-padded)."""
        padded = np.zeros(-(-len(self.data) // 8) * 8, dtype=np.uint8)
        padded[: len(self.data)] = self.data
        return list(padded.view("<u8"))

    @property
    def masks(self) -> list[np.uint64]:
        full = len(self.data) // 8
        masks = [_FULL] * full
        if len(self.data) % 8:
            masks.append(np.uint64((1 << (8 * (len(self.data) % 8))) - 1))
        return masks


@dataclass(frozen=True)
class Slot:
    literal: bool
    #: the pieces before and after the value
    before: int
    after: int


@dataclass
class Shape:
    pieces: list[Piece]
    slots: list[Slot]
    names: list[str]
    rows: int = 0


def _parse(text: bytes) -> list[tuple[int, int, tuple, bool]]:
    """Value regions ``(start, end, path, literal)`` of a seed; raises Unsupported."""
    regions: list[tuple[int, int, tuple, bool]] = []
    n = len(text)
    i = 0

    def ws(i: int) -> int:
        while i < n and text[i] in _WS:
            i += 1
        return i

    def string(i: int) -> int:  # text[i] is the opening quote; returns the closing quote
        if i >= n or text[i] != QUOTE:
            raise Unsupported("expected a string")
        j = text.find(b'"', i + 1)
        if j < 0:
            raise Unsupported("unterminated string")
        return j

    def value(i: int, path: tuple) -> int:
        i = ws(i)
        if i >= n:
            raise Unsupported("truncated")
        c = text[i]
        if c == 0x7B:  # {
            return obj(i, path)
        if c == 0x5B:  # [
            raise Unsupported("array")
        if c == QUOTE:
            j = string(i)
            regions.append((i + 1, j, path, False))
            return j + 1
        j = i
        while j < n and text[j] not in _LITERAL_END:
            j += 1
        if j == i:
            raise Unsupported("empty literal")
        regions.append((i, j, path, True))
        return j

    def obj(i: int, path: tuple) -> int:
        if len(path) >= MAX_SHAPE_DEPTH:  # the parse recurses; deeper payloads are sent on
            raise Unsupported("nested too deep")
        i = ws(i + 1)
        if i < n and text[i] == 0x7D:  # }
            if path:
                raise Unsupported("empty object as a value")
            return i + 1
        keys: set[str] = set()
        while True:
            i = ws(i)
            j = string(i)
            key = text[i + 1 : j].decode("utf-8")
            if key in keys:
                raise Unsupported("duplicate key")
            keys.add(key)
            i = ws(j + 1)
            if i >= n or text[i] != 0x3A:  # :
                raise Unsupported("expected ':'")
            i = ws(value(i + 1, (*path, key)))
            if i >= n:
                raise Unsupported("truncated")
            if text[i] == 0x2C:  # ,
                i += 1
                continue
            if text[i] == 0x7D:
                return i + 1
            raise Unsupported("expected ',' or '}'")

    i = ws(i)
    if i >= n or text[i] != 0x7B:
        raise Unsupported("not an object")
    i = ws(obj(i, ()))
    if i != n:
        raise Unsupported("trailing bytes")
    return regions


def build_shape(text: bytes, namer: Callable[[tuple], str]) -> Shape:
    """The shape of ``text`` (a payload without ``\\`` or control bytes); Unsupported if it is
    not one this module handles."""
    try:
        obj = orjson.loads(text)
    except ValueError as exc:
        raise Unsupported("not JSON") from exc
    if type(obj) is not dict:
        raise Unsupported("not an object")
    regions = _parse(text)
    names = [namer(path) for _, _, path, _ in regions]
    if len(set(names)) != len(names):
        raise Unsupported("two paths share a column name")
    buf = np.frombuffer(text, dtype=np.uint8)
    quote_at = np.flatnonzero(buf == QUOTE)
    quote_index = {int(p): k for k, p in enumerate(quote_at)}
    # fixed pieces: the complement of the value regions
    bounds = [0]
    for start, end, _, _ in regions:
        bounds += [start, end]
    bounds.append(len(text))
    pieces: list[Piece] = []
    for k in range(0, len(bounds), 2):
        start, end = bounds[k], bounds[k + 1]
        inside = quote_at[(quote_at >= start) & (quote_at < end)]
        if len(inside):
            anchor, offset = quote_index[int(inside[0])], start - int(inside[0])
        elif k == 0:
            anchor, offset = _START, start
        elif k == len(bounds) - 2:
            anchor, offset = _END, start - len(text)
        else:  # pragma: no cover - in an object every value after the first follows its key
            raise Unsupported("unanchored piece")
        pieces.append(Piece(anchor, offset, buf[start:end].copy()))
    slots = [Slot(literal, before=k, after=k + 1) for k, (_, _, _, literal) in enumerate(regions)]
    return Shape(pieces, slots, names)


def _words(data: np.ndarray) -> np.ndarray:
    """Little-endian 8-byte words starting at every byte of ``data`` (an unaligned view)."""
    return np.ndarray(shape=(len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))


def _byte_masks(count: int) -> np.ndarray:
    """``[mask of the low k bytes of a word for k in 0..count]``."""
    return np.array([(1 << (8 * k)) - 1 for k in range(count + 1)], dtype=np.uint64)


_MASK_PREFIX = _byte_masks(4)[np.minimum(np.arange(13), 4)]  # bytes 0-3 of a view's data
_MASK_REST = _byte_masks(8)[np.maximum(np.arange(13) - 4, 0)]  # bytes 4-11


def _views(block: _Block, starts: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """A STRING array of the byte ranges ``data[start:start+length]`` (one copy, in C++).

    Built as an Arrow string view array over the block's bytes (16 bytes per value: length,
    then the value itself when it has at most 12 bytes, else its first 4 bytes, buffer 0 and
    its offset), then cast to STRING.
    """
    n = len(starts)
    lengths = lengths.astype(np.uint64)
    k = np.minimum(lengths, np.uint64(12))
    views = np.empty((n, 2), dtype="<u8")
    views[:, 0] = lengths | ((block.words[starts] & _MASK_PREFIX[k]) << np.uint64(32))
    views[:, 1] = np.where(
        lengths <= 12,
        block.words[starts + 4] & _MASK_REST[k],
        starts.astype(np.uint64) << np.uint64(32),
    )
    array = pa.Array.from_buffers(pa.string_view(), n, [None, pa.py_buffer(views), block.buffer])
    return array.cast(pa.string())


def _literal_text(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Column values of literal texts and which rows the vectorised path may keep."""
    is_null = pc.equal(texts, "null")
    is_bool = pc.or_(pc.equal(texts, "true"), pc.equal(texts, "false"))
    length = pc.binary_length(texts)
    # texts that are their own payload.number_text: integers of at most 19 characters
    # (within 64 bits, as plans read them too) other than "-0"; decimals without exponent in
    # their shortest form, at most 15 digits (16 characters), not below 0.0001 (repr writes
    # those with an exponent)
    is_int = pc.and_(
        pc.and_(pc.match_substring_regex(texts, _INT), pc.not_equal(texts, "-0")),
        pc.less_equal(length, 19),
    )
    is_float = pc.and_(
        pc.and_(pc.match_substring_regex(texts, _FLOAT), pc.less_equal(length, 16)),
        pc.invert(pc.match_substring_regex(texts, _TINY)),
    )
    ok = pc.or_(pc.or_(is_null, is_bool), pc.or_(is_int, is_float))
    values = pc.if_else(is_null, pa.scalar(None, pa.string()), texts)
    return values, ok.to_numpy(zero_copy_only=False)


class FastFlattener(Flattener):
    """The reference's output, fast: rows that fit a byte-level shape vectorised
    (``ShapeMatcher``), then the plans (``plans``), the rest by the reference itself."""

    def flatten(self, payloads: pa.ChunkedArray, namer: ColumnNamer) -> Columns:
        out = ShapeMatcher(namer).run(payloads)
        planned, rest = plan_rows(
            payloads,
            np.setdiff1d(text_rows(payloads), out.kept_rows(), assume_unique=True),
            namer,
        )
        out.extend(planned)
        out.extend(ReferenceFlattener().flatten_rows(payloads, rest, namer))
        return out


class ShapeMatcher:
    """Flattens the rows of payload arrays that fit a shape; remembers shapes across blocks."""

    def __init__(self, namer: Callable[[tuple], str]) -> None:
        self.namer = namer
        self.shapes: dict[int, list[Shape]] = {}

    def run(self, payloads: pa.ChunkedArray | pa.Array) -> Columns:
        """The columns of the rows that fit a shape (``kept``: those rows)."""
        out = Columns()
        chunks = payloads.chunks if isinstance(payloads, pa.ChunkedArray) else [payloads]
        base = 0
        for chunk in chunks:
            if pa.types.is_large_string(chunk.type) or pa.types.is_string(chunk.type):
                array = chunk
            else:
                array = chunk.cast(pa.large_string())
            if not len(array):
                continue
            nbytes = max(1, array.nbytes)
            step = int(min(max(BLOCK_BYTES * len(array) // nbytes, 256), 1 << 16))
            for start in range(0, len(array), step):
                block = array.slice(start, step)
                rows = self._block(block, out.add, base + start)
                if len(rows):
                    out.kept.append(rows)
            base += len(chunk)
        return out

    def _block(self, block: pa.Array, add: Callable, base: int) -> np.ndarray:
        n = len(block)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        _, offsets_buf, data_buf = block.buffers()
        dtype = np.int64 if pa.types.is_large_string(block.type) else np.int32
        offsets = np.frombuffer(offsets_buf, dtype=dtype)[block.offset : block.offset + n + 1]
        offsets = offsets.astype(np.int64)
        first, last = int(offsets[0]), int(offsets[-1])
        if last == first:
            return np.zeros(0, dtype=np.int64)
        if data_buf.size >= last + _PADDING and data_buf.size < 2**31:
            data = np.frombuffer(data_buf, dtype=np.uint8)  # positions: in the buffer
            buffer = data_buf
        else:  # the end of the buffer (or a huge one): a padded copy of the block's bytes
            data = np.zeros(last - first + _PADDING, dtype=np.uint8)
            data[: last - first] = np.frombuffer(
                data_buf, dtype=np.uint8, count=last - first, offset=first
            )
            buffer = pa.py_buffer(data)
            offsets = offsets - first
            first, last = 0, last - first
        body = data[first:last]
        starts, ends = offsets[:-1], offsets[1:]
        clean = np.ones(n, dtype=bool)
        if block.null_count:
            clean &= block.is_valid().to_numpy(zero_copy_only=False)
        if body.min() < 0x20:
            bad = np.flatnonzero(body < 0x20) + first
            clean[np.unique(np.searchsorted(ends, bad, side="right"))] = False
        if np.count_nonzero(body == 0x5C):
            bad = np.flatnonzero(body == 0x5C) + first
            clean[np.unique(np.searchsorted(ends, bad, side="right"))] = False
        quotes = np.flatnonzero(body == QUOTE)
        quotes += first
        qbounds = np.searchsorted(quotes, offsets)  # rows are contiguous
        qfirst = qbounds[:-1]
        qcount = np.diff(qbounds)
        ctx = _Block(_words(data), buffer, len(data) - _PADDING, starts, ends, quotes, qfirst)

        assigned = ~clean  # rows no longer open to a shape
        matched: list[np.ndarray] = []
        new_shapes = 0
        groups, sizes = np.unique(qcount[clean], return_counts=True)
        for count in groups[np.argsort(-sizes, kind="stable")]:
            count = int(count)
            rows = np.flatnonzero((qcount == count) & ~assigned)
            known = self.shapes.get(count, [])
            known.sort(key=lambda shape: -shape.rows)  # the most productive first
            del known[MAX_SHAPES_PER_QUOTE_COUNT:]
            for shape in known[:MAX_KNOWN_TRIES_PER_BLOCK]:
                if not len(rows):
                    break
                hit = self._match(shape, ctx, rows, add, base)
                if len(hit):
                    assigned[hit] = True
                    matched.append(hit)
                    rows = rows[~np.isin(rows, hit, assume_unique=True)]
            failed = 0
            while (
                len(rows)
                and new_shapes < MAX_NEW_SHAPES_PER_BLOCK
                and failed < MAX_FAILED_SEEDS_PER_GROUP
            ):
                seed = int(rows[0])
                new_shapes += 1
                try:
                    shape = build_shape(body[starts[seed] : ends[seed]].tobytes(), self.namer)
                except (Unsupported, UnicodeDecodeError):
                    shape = None
                hit = np.zeros(0, dtype=np.int64)
                if shape is not None:
                    hit = self._match(shape, ctx, rows, add, base)
                if not len(hit) or hit[0] != seed:
                    failed += 1  # the seed is sent on
                    assigned[seed] = True
                    rows = rows[1:]
                if not len(hit):
                    continue
                self.shapes.setdefault(count, []).append(shape)
                assigned[hit] = True
                matched.append(hit)
                rows = rows[~np.isin(rows, hit, assume_unique=True)]
        if not matched:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate(matched)) + base

    def _match(
        self, shape: Shape, ctx: _Block, rows: np.ndarray, add: Callable, base: int
    ) -> np.ndarray:
        """Rows (of ``rows``) that fit ``shape``; their columns go to ``add``."""
        ok = np.ones(len(rows), dtype=bool)
        row_start, row_end = ctx.starts[rows], ctx.ends[rows]
        qbase = ctx.qfirst[rows]
        quote_pos: dict[int, np.ndarray] = {}

        def quote(index: int) -> np.ndarray:
            pos = quote_pos.get(index)
            if pos is None:
                pos = quote_pos[index] = ctx.quotes[qbase + index]
            return pos

        size = ctx.limit
        piece_start: list[np.ndarray] = []
        for piece in shape.pieces:
            length = len(piece.data)
            if piece.anchor == _START:
                start = row_start + piece.offset
            elif piece.anchor == _END:
                start = row_end + piece.offset
            else:
                start = quote(piece.anchor) + piece.offset
            piece_start.append(start)
            ok &= (start >= row_start) & (start + length <= row_end)
            if length > size:
                ok[:] = False
                continue
            # a start beyond the data cannot fit (checked above); clipped, reads stay inside
            at = np.minimum(np.maximum(start, 0), size - length)
            for word, mask in zip(piece.words, piece.masks, strict=True):
                value = ctx.words[at]
                if mask != _FULL:
                    value &= mask
                ok &= value == word
                at = at + 8
        ok &= piece_start[0] == row_start
        ok &= piece_start[-1] + len(shape.pieces[-1].data) == row_end
        # a value lies between the pieces around it; a string's pieces end and start with
        # its quotes (consecutive quotes of the row), a literal is not empty
        bounds = []
        for slot in shape.slots:
            begin = piece_start[slot.before] + len(shape.pieces[slot.before].data)
            end = piece_start[slot.after]
            if slot.literal:
                ok &= end > begin
            bounds.append((begin, end))
        if not ok.any():
            return np.zeros(0, dtype=np.int64)
        keep = np.flatnonzero(ok)
        values: list[pa.Array | None] = [None] * len(shape.slots)
        literals = [k for k, s in enumerate(shape.slots) if s.literal]
        if literals:
            lit_ok = np.ones(len(keep), dtype=bool)
            for k in literals:
                b, e = bounds[k][0][keep], bounds[k][1][keep]
                texts = _views(ctx, b, e - b)
                values[k], good = _literal_text(texts)
                lit_ok &= good
            if not lit_ok.all():
                sub = np.flatnonzero(lit_ok)
                keep = keep[sub]
                sub_mask = pa.array(lit_ok)
                values = [v.filter(sub_mask) if v is not None else None for v in values]
            if not len(keep):
                return np.zeros(0, dtype=np.int64)
        strings = [k for k, s in enumerate(shape.slots) if not s.literal]
        if strings:
            begins = np.stack([bounds[k][0][keep] for k in strings]).ravel()
            ends = np.stack([bounds[k][1][keep] for k in strings]).ravel()
            texts = _views(ctx, begins, ends - begins)
            m = len(keep)
            for j, k in enumerate(strings):
                values[k] = texts.slice(j * m, m)
        hit = rows[keep]
        positions = hit + base
        for name, array in zip(shape.names, values, strict=True):
            add(name, array, positions)
        shape.rows += len(hit)
        return hit


@dataclass(frozen=True)
class _Block:
    #: little-endian 8-byte words at every byte of the block's data (``_words``)
    words: np.ndarray
    buffer: pa.Buffer
    #: bytes that may start a fixed piece (the rest is padding or unrelated)
    limit: int
    starts: np.ndarray
    ends: np.ndarray
    quotes: np.ndarray
    qfirst: np.ndarray
