"""The flattening engine: parsed JSON objects -> Arrow STRING columns, with little Python per row.

Most payloads of a topic share a few shapes (the same keys, nested the same way). For each
shape a *plan* is built once: ``operator.itemgetter``s that pull every leaf out of a payload in
C, the leaf column names, and the sizes that prove a payload has exactly that shape (every key
found + every object the same length = the same key set). A payload is then one tuple of
leaf values; columns are built per plan by transposing the tuples (``zip``) and handing them to
Arrow. Text conversion happens per column: a column of strings goes to Arrow untouched; only
columns with other JSON types are converted value by value.

Payloads that fit no plan (an empty object as value, a name collision within the payload, too
many shapes) and values needing their exact text (a number beyond 15 significant digits, an
integer beyond 64 bits, which orjson reads as a float) take the exact path in ``flatten``.
Both paths give the same values (tests assert it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from operator import itemgetter

import numpy as np
import pyarrow as pa

from leanops_dagster.transforms.naming import ColumnNamer

try:
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]

MAX_PLANS_PER_TOP_KEYS = 16
REROUTE = object()  # a value that needs the exact path


class Miss(Exception):
    """The payload does not have the plan's shape."""


def float_text(value: float) -> str | None:
    """Shortest round-trip text (Python's ``repr``) if it has at most 15 significant digits
    (leading and trailing zeros not counted: ``2500000000000000.0`` has 2), else None."""
    text = repr(value)
    if len(text) <= 16:  # sign, point and 15 digits at most
        return text
    mantissa = text.split("e")[0].lstrip("-").replace(".", "").strip("0")
    return text if len(mantissa) <= 15 else None


#: orjson reads a JSON integer outside [-2**63, 2**64) as a float (``100000000000000000000`` ->
#: ``1e+20``, its digits lost); a float at or beyond these bounds may be one, so only the exact
#: path, which has the text as written, can write it (a float literal there gets the same text)
_INT_LOW, _INT_HIGH = -(2.0**63), 2.0**64


class _Reroute(Exception):
    """An array holds a number only the exact path can write."""


def _with_float_texts(value: object) -> object:
    """``value`` (inside an array) with every float as a Fragment of its scalar text, so an
    array's numbers read as the scalars' do (orjson's own float format differs: ``1e-7`` for
    ``1e-07``, ``0.00001`` for ``1e-05``); raises ``_Reroute`` for a float only the exact path
    can write: 16+ significant digits, or possibly an integer beyond 64 bits."""
    kind = type(value)
    if kind is float:
        if not _INT_LOW < value < _INT_HIGH:  # type: ignore[operator]
            raise _Reroute
        text = float_text(value)  # type: ignore[arg-type]
        if text is None:
            raise _Reroute
        # without orjson, json.dumps writes a float as repr: the same text
        return orjson.Fragment(text) if orjson is not None else value
    if kind is list:
        return [_with_float_texts(v) for v in value]  # type: ignore[union-attr]
    if kind is dict:
        return {k: _with_float_texts(v) for k, v in value.items()}  # type: ignore[union-attr]
    return value


def array_text(value: list) -> object:
    """An array's Standardized text (compact JSON, numbers as scalars are written), or
    ``REROUTE``."""
    try:
        return dumps(_with_float_texts(value))
    except _Reroute:
        return REROUTE


def dumps(value: object) -> str:
    if orjson is None:  # pragma: no cover
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return orjson.dumps(value).decode()


def value_text(value: object) -> object:
    """A leaf's Standardized text; ``REROUTE`` when only the exact path can write it."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if not _INT_LOW < value < _INT_HIGH:  # type: ignore[operator]
            return REROUTE  # maybe an integer beyond 64 bits (see _INT_LOW)
        text = float_text(value)  # type: ignore[arg-type]
        return REROUTE if text is None else text
    if kind is list:
        return array_text(value)  # type: ignore[arg-type]
    return REROUTE


def _getter(keys: tuple) -> Callable:
    if len(keys) == 1:
        key = keys[0]
        return lambda obj: (obj[key],)
    return itemgetter(*keys)


class Plan:
    """Leaf extraction for one payload shape, as a flat list of steps (no recursion).

    ``slots`` starts as ``[payload]``; step ``(source, getter, size)`` checks that
    ``slots[source]`` is an object of ``size`` keys and appends its values (``getter``, C);
    ``leaf_getter`` then picks the leaf slots. Every key found + every size equal = the shape.
    """

    __slots__ = ("leaf_getter", "names", "positions", "rows", "steps")

    def __init__(self, steps: list[tuple[int, Callable, int]], leaf_getter: Callable,
                 names: list[str]) -> None:
        self.steps = steps
        self.leaf_getter = leaf_getter
        self.names = names  # leaf column names in extraction order
        self.rows: list[tuple] = []
        self.positions: list[int] = []

    def extract(self, obj: dict) -> tuple:
        slots = [obj]
        for source, getter, size in self.steps:
            value = slots[source]
            if type(value) is not dict or len(value) != size:
                raise Miss
            slots += getter(value)
        leaves = self.leaf_getter(slots)
        if dict in map(type, leaves):
            raise Miss
        return leaves


def build_plan(obj: dict, namer: ColumnNamer) -> Plan | None:
    """A plan for ``obj``'s shape, or None (an empty object, or a name collision)."""
    if not obj:
        return None  # ``{}``: no leaves (the exact path keeps the row, without values)
    steps: list[tuple[int, Callable, int]] = []
    leaf_slots: list[int] = []
    names: list[str] = []
    queue: list[tuple[int, dict, tuple]] = [(0, obj, ())]
    next_slot = 1
    while queue:
        source, value, prefix = queue.pop(0)
        keys = tuple(value)
        steps.append((source, _getter(keys), len(keys)))
        for offset, key in enumerate(keys):
            slot = next_slot + offset
            child = value[key]
            if type(child) is dict:
                if not child:
                    return None
                queue.append((slot, child, (*prefix, key)))
            else:
                leaf_slots.append(slot)
                names.append(namer((*prefix, key)))
        next_slot += len(keys)
    if not leaf_slots or len(set(names)) != len(names):
        return None
    return Plan(steps, _getter(tuple(leaf_slots)), names)


class PlanSet:
    """Plans by top-level key tuple; rows appended to the plan that fits them."""

    def __init__(self, namer: ColumnNamer) -> None:
        self.namer = namer
        self.by_top: dict[tuple, list[Plan]] = {}
        self.plans: list[Plan] = []

    def add(self, obj: dict, position: int) -> bool:
        """Extract ``obj`` as row ``position``; False if no plan fits (use the exact path)."""
        top = tuple(obj)
        candidates = self.by_top.get(top)
        if candidates is None:
            candidates = self.by_top[top] = []
        for plan in candidates:
            try:
                leaves = plan.extract(obj)
            except (Miss, KeyError):
                continue
            plan.rows.append(leaves)
            plan.positions.append(position)
            return True
        if len(candidates) >= MAX_PLANS_PER_TOP_KEYS:
            return False
        plan = build_plan(obj, self.namer)
        if plan is None:
            return False
        candidates.append(plan)
        self.plans.append(plan)
        plan.rows.append(plan.extract(obj))
        plan.positions.append(position)
        return True


class Pieces:
    """Per column name: Arrow pieces and the output row positions they fill."""

    def __init__(self) -> None:
        self.values: dict[str, list[pa.Array]] = {}
        self.positions: dict[str, list[np.ndarray]] = {}
        #: columns whose name was disambiguated -> original key path (JSON)
        self.sanitised: dict[str, str] = {}

    def add(self, name: str, values: pa.Array, positions: np.ndarray) -> None:
        self.values.setdefault(name, []).append(values)
        self.positions.setdefault(name, []).append(positions)

    def column(self, name: str, count: int) -> pa.Array | pa.ChunkedArray:
        """The column of ``count`` rows (a chunked array when its pieces are the rows in
        order: no copy)."""
        positions = np.concatenate(self.positions[name])
        if len(positions) == count and np.array_equal(positions, np.arange(count)):
            if len(self.values[name]) == 1:
                return self.values[name][0]
            return pa.chunked_array(self.values[name], pa.string())
        values = pa.concat_arrays(self.values[name]) if len(self.values[name]) > 1 \
            else self.values[name][0]
        index = np.full(count, -1, dtype=np.int64)
        index[positions] = np.arange(len(positions), dtype=np.int64)
        return values.take(pa.array(index, mask=index < 0))

    def names(self) -> list[str]:
        return list(self.values)

    def remap(self, kept: np.ndarray) -> None:
        """Positions given as input row indices -> positions among ``kept`` (sorted indices)."""
        if not len(kept) or kept[-1] == len(kept) - 1:
            return  # every row kept: indices are positions
        position_of = np.zeros(int(kept[-1]) + 1, dtype=np.int64)
        position_of[kept] = np.arange(len(kept), dtype=np.int64)
        for name, positions in self.positions.items():
            self.positions[name] = [position_of[p] for p in positions]


def plan_columns(plan: Plan, pieces: Pieces) -> list[int]:
    """Add ``plan``'s columns to ``pieces``; return positions that need the exact path."""
    if not plan.rows:
        return []
    positions = np.asarray(plan.positions, dtype=np.int64)
    columns = list(zip(*plan.rows, strict=True))
    reroute = np.zeros(len(positions), dtype=bool)
    arrays = []
    for values in columns:
        try:
            arrays.append(pa.array(values, pa.string()))
            continue
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            pass
        texts = [value_text(v) for v in values]
        for j, text in enumerate(texts):
            if text is REROUTE:
                reroute[j] = True
                texts[j] = None
        arrays.append(pa.array(texts, pa.string()))
    keep = None
    if reroute.any():
        keep = pa.array(~reroute)
        positions = positions[~reroute]
    for name, array in zip(plan.names, arrays, strict=True):
        pieces.add(name, array.filter(keep) if keep is not None else array, positions)
    plan.rows.clear()
    return [int(p) for p in np.asarray(plan.positions)[reroute]]
