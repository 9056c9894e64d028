"""Fast flattening of parsed payloads: one *plan* per payload shape (a stage of
``shapes.FastFlattener``, for the rows the byte-level shapes do not take).

Most payloads of a topic share a few shapes (the same keys, nested the same way). For each
shape a plan is built once: ``operator.itemgetter``s that pull every leaf out of a payload in
C, the leaf column names, and the sizes that prove a payload has exactly that shape (every key
found + every object the same length = the same key set). A payload is then one tuple of
leaf values; columns are built per plan by transposing the tuples (``zip``) and handing them to
Arrow. Text conversion happens per column: a column of strings goes to Arrow untouched; only
columns with other JSON types are converted value by value.

Rows left to the reference (``payload.ReferenceFlattener``, which decides them): payloads
orjson does not read as an object within ``MAX_DEPTH`` levels, payloads that fit no plan (an
empty object as value, a name collision within the payload, too many shapes), and payloads
with a value whose text orjson's reading does not determine (see ``_value_text``).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter

import numpy as np
import orjson
import pyarrow as pa

from leanops_dagster.transforms.flatten.naming import ColumnNamer
from leanops_dagster.transforms.flatten.payload import Columns, float_text, too_deep

MAX_PLANS_PER_TOP_KEYS = 16

#: orjson reads a JSON integer outside [-2**63, 2**64) as a float (``100000000000000000000`` ->
#: ``1e+20``, its digits lost); a float at or beyond these bounds may be one, so only the
#: reference, which has the text as written, can write it
_INT_LOW, _INT_HIGH = -(2.0**63), 2.0**64


class _NeedsReference(Exception):
    """A value whose text depends on how its number was written."""


def _float_text(value: float) -> str:
    """``payload.number_text`` of every literal orjson reads as the float ``value`` (they all
    have that text when ``float_text`` has one and ``value`` cannot be a wide integer)."""
    text = float_text(value) if _INT_LOW < value < _INT_HIGH else None
    if text is None:
        raise _NeedsReference
    return text


def _with_float_texts(value: object) -> object:
    """``value`` (inside an array) with every float as a Fragment of its scalar text, so an
    array's numbers read as the scalars' do (orjson's own float format differs: ``1e-7`` for
    ``1e-07``, ``0.00001`` for ``1e-05``)."""
    kind = type(value)
    if kind is float:
        return orjson.Fragment(_float_text(value))  # type: ignore[arg-type]
    if kind is list:
        return [_with_float_texts(v) for v in value]  # type: ignore[union-attr]
    if kind is dict:
        return {k: _with_float_texts(v) for k, v in value.items()}  # type: ignore[union-attr]
    return value


def _value_text(value: object) -> str | None:
    """A leaf's Standardized text (as ``payload`` writes it); raises ``_NeedsReference``."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)  # orjson reads integers within 64 bits as int: "-0" as 0
    if kind is float:
        return _float_text(value)  # type: ignore[arg-type]
    if kind is list:
        return orjson.dumps(_with_float_texts(value)).decode()
    raise _NeedsReference


def _getter(keys: tuple) -> Callable:
    if len(keys) == 1:
        key = keys[0]
        return lambda obj: (obj[key],)
    return itemgetter(*keys)


class _Miss(Exception):
    """The payload does not have the plan's shape."""


class Plan:
    """Leaf extraction for one payload shape, as a flat list of steps (no recursion).

    ``slots`` starts as ``[payload]``; step ``(source, getter, size)`` checks that
    ``slots[source]`` is an object of ``size`` keys and appends its values (``getter``, C);
    ``leaf_getter`` then picks the leaf slots. Every key found + every size equal = the shape.
    """

    __slots__ = ("leaf_getter", "names", "positions", "rows", "steps")

    def __init__(
        self, steps: list[tuple[int, Callable, int]], leaf_getter: Callable, names: list[str]
    ) -> None:
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
                raise _Miss
            slots += getter(value)
        leaves = self.leaf_getter(slots)
        if dict in map(type, leaves):
            raise _Miss
        return leaves


def build_plan(obj: dict, namer: ColumnNamer) -> Plan | None:
    """A plan for ``obj``'s shape, or None (an empty object, or a name collision)."""
    if not obj:
        return None  # ``{}``: no leaves (the reference keeps the row, without values)
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
        """Extract ``obj`` as row ``position``; False if no plan fits (use the reference)."""
        top = tuple(obj)
        candidates = self.by_top.get(top)
        if candidates is None:
            candidates = self.by_top[top] = []
        for plan in candidates:
            try:
                leaves = plan.extract(obj)
            except (_Miss, KeyError):
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


def plan_rows(
    payloads: pa.ChunkedArray, rows: np.ndarray, namer: ColumnNamer
) -> tuple[Columns, np.ndarray]:
    """Columns of the rows of ``rows`` a plan writes, and the rows left to the reference."""
    out = Columns()
    if not len(rows):
        return out, rows
    texts = (payloads if len(rows) == len(payloads) else payloads.take(rows)).to_pylist()
    plans = PlanSet(namer)
    left: list[int] = []
    loads, add = orjson.loads, plans.add
    for row, text in zip(rows.tolist(), texts, strict=True):
        try:
            obj = loads(text)
        except orjson.JSONDecodeError:
            left.append(row)
            continue
        if type(obj) is not dict or too_deep(text, obj) or not add(obj, row):
            left.append(row)
    for plan in plans.plans:
        left += _plan_columns(plan, out)
    rest = np.sort(np.asarray(left, dtype=np.int64))
    out.kept.append(np.setdiff1d(rows, rest, assume_unique=True))
    return out, rest


def _plan_columns(plan: Plan, out: Columns) -> list[int]:
    """Add ``plan``'s columns to ``out``; return the rows left to the reference."""
    if not plan.rows:
        return []
    positions = np.asarray(plan.positions, dtype=np.int64)
    reference = np.zeros(len(positions), dtype=bool)
    arrays = []
    for values in zip(*plan.rows, strict=True):
        try:
            arrays.append(pa.array(values, pa.string()))
            continue
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            pass
        texts: list[str | None] = []
        for j, value in enumerate(values):
            try:
                texts.append(_value_text(value))
            except _NeedsReference:
                reference[j] = True
                texts.append(None)
        arrays.append(pa.array(texts, pa.string()))
    keep = pa.array(~reference) if reference.any() else None
    kept = positions if keep is None else positions[~reference]
    for name, array in zip(plan.names, arrays, strict=True):
        out.add(name, array if keep is None else array.filter(keep), kept)
    plan.rows.clear()
    return positions[reference].tolist()
