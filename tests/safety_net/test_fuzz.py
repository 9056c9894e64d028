"""Fuzzing both layers on real tables (SQLite catalog in tmp_path): whatever the payloads, no
exception escapes ``standardize_topic`` / ``curate_topic`` and every equation balances, per run
and recomputed from the tables. A bounded sample: the fixed corpus and a few hypothesis
examples, each a batch of many payloads; ``benchmarks/fuzz.py`` is the long run."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leanops_dagster.iceberg.catalog import ensure_table, open_catalog
from leanops_dagster.iceberg.tables import RAW_STAGING_PARTITION_SPEC, RAW_STAGING_SCHEMA
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline.curate import curate_topic
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import standardize_topic
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import get_settings
from tests.safety_net import hostile
from tests.safety_net.hostile import Raw

CORPUS = Path(__file__).with_name("hostile_corpus.jsonl")
KEY = b"fuzz-key"


def corpus(topic: str) -> list[str]:
    entries = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    return [e["body"] for e in entries if e["topic"] == topic]


class Pipeline:
    """A fresh LEANOPS_HOME with ``topic`` deployed: append RAW, run both layers, check."""

    def __init__(self, home: Path, topic: str) -> None:
        settings_ = get_settings(home=home)
        self.catalog = open_catalog(settings_)
        registry = SchemaRegistry.from_settings(settings_)
        registry.deploy(topic)
        self.schema = registry.load(topic)
        self.tables = TopicTables(topic)
        self.topic = topic
        self.appended = 0
        ensure_table(self.catalog, self.tables.raw, RAW_STAGING_SCHEMA,
                     RAW_STAGING_PARTITION_SPEC)

    def run(self, bodies: list[str]):
        rows = hostile.raw_rows(bodies, self.topic, random.Random(len(bodies)),
                                start=self.appended)
        self.appended += len(bodies)
        self.catalog.load_table(self.tables.raw).append(rows)
        std = standardize_topic(self.catalog, self.tables, self.schema)
        cur = curate_topic(self.catalog, self.tables, self.schema, pii_key=KEY)
        assert std.rows_read == len(bodies)
        assert std.balanced, std
        assert cur.rows_read == std.rows_written
        assert cur.balanced, cur
        return std, cur

    def assert_tables_balance(self) -> None:
        for equation in (accountability.post_raw_equation(self.catalog, self.tables),
                         accountability.curated_equation(self.catalog, self.tables)):
            assert equation.balanced, equation.as_dict()
            assert equation.pending == 0, equation.as_dict()


@pytest.mark.parametrize("topic", hostile.TOPICS)
def test_hostile_corpus_through_both_layers(tmp_path, topic):
    bodies = corpus(topic)
    assert len(bodies) > 400  # the corpus file is there and whole
    pipeline = Pipeline(tmp_path / "home", topic)
    std, cur = pipeline.run(bodies)
    # every kind of outcome is exercised: rows, parse errors, CDE errors
    assert std.rows_written and std.parse_errors and cur.inserted and cur.cde_error_rows
    pipeline.assert_tables_balance()
    again_std, again_cur = (standardize_topic(pipeline.catalog, pipeline.tables, pipeline.schema),
                            curate_topic(pipeline.catalog, pipeline.tables, pipeline.schema,
                                         pii_key=KEY))
    assert (again_std.rows_read, again_cur.rows_read) == (0, 0)  # nothing retried


# --- hypothesis ------------------------------------------------------------------------------
every_character = st.characters(exclude_categories=())  # lone surrogates included
keys = st.one_of(st.sampled_from(hostile.HOSTILE_KEYS), st.text(every_character, max_size=8))
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(hostile.NUMBER_TEXTS).map(Raw), st.text(every_character, max_size=24),
    st.sampled_from(hostile.hostile_strings()), st.sampled_from(hostile.TIMESTAMP_TEXTS),
    st.sampled_from(hostile.WRONG_TYPES),
    st.builds(hostile.nested, st.sampled_from((8, 300, 1200, 3000)),
              as_list=st.booleans()),
)
json_values = st.recursive(
    leaves, lambda children: st.lists(children, max_size=4)
    | st.dictionaries(keys, children, max_size=4), max_leaves=12,
)


@st.composite
def bodies_of(draw, topic: str) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(hostile.NOT_AN_OBJECT))
    if kind == 1:
        return hostile.render(draw(json_values))  # any JSON at all
    index = draw(st.integers(0, 500))
    body = hostile.base_body(topic, index, key=f"k{draw(st.integers(0, 30))}")
    paths = st.one_of(st.sampled_from(hostile.DECLARED_PATHS[topic]),
                      st.lists(keys, min_size=1, max_size=3).map(tuple))
    for path, value in draw(st.lists(st.tuples(paths, json_values), max_size=3)):
        hostile.set_path(body, path, value)
    return hostile.render(body)


@given(data=st.data(), topic=st.sampled_from(hostile.TOPICS))
@settings(max_examples=5, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture,
                                 HealthCheck.large_base_example])
def test_random_hostile_batches_never_escape_and_always_balance(tmp_path, data, topic):
    pipeline = Pipeline(tmp_path / uuid.uuid4().hex, topic)
    for _ in range(2):  # a second increment meets stored rows: duplicates, corrections
        batch = data.draw(st.lists(bodies_of(topic), min_size=1, max_size=40), label="batch")
        pipeline.run(batch)
    pipeline.assert_tables_balance()
