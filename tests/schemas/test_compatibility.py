"""The classification table of docs/schemas.md ("Schema changes"), case by case."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from leanops_dagster.schemas.compatibility import (
    Verdict,
    affects_standardized,
    breaking_changes,
    classify,
    is_type_promotion,
)
from leanops_dagster.schemas.models import CuratedSchema, StandardizedSchema, TopicSchema

BASE = {
    "topic": "events",
    "standardized": {
        "metadata": {"_metadata_idempotencykeyresource": "idempotency_key",
                     "_metadata_tenant": "tenant"},
        "required_metadata": ["idempotency_key"],
        "drop_keys": ["_metadata_messageid", "_metadata_publishtime"],
    },
    "curated": {
        "description": "events",
        "sequence": ["publish_time"],
        "cde_error_rate_threshold": 0.05,
        "columns": [
            {"name": "user_id", "source": "event_userid", "type": "string", "cde": True,
             "rules": {"regex": "^user-[0-9]{6}$", "min_length": 2, "max_length": 20}},
            {"name": "event_type", "type": "string", "cde": True,
             "rules": {"allowed": ["click", "view"]}},
            {"name": "device_id", "source": "event_metadata_deviceid", "type": "string"},
            {"name": "count", "type": "int", "rules": {"min": 0, "max": 100}},
            {"name": "amount", "type": "decimal(10,2)"},
            {"name": "ratio", "type": "double", "description": "share"},
            {"name": "ip_address", "type": "string", "pii": True},
            {"name": "user_agent", "type": "string", "default": "unknown"},
        ],
    },
}


def topic(data: dict) -> TopicSchema:
    return TopicSchema(
        topic=data["topic"],
        standardized=StandardizedSchema.model_validate(data["standardized"]),
        curated=CuratedSchema.model_validate(data["curated"]),
    )


def column(data: dict, name: str) -> dict:
    return next(c for c in data["curated"]["columns"] if c["name"] == name)


def mutate(change: Callable[[dict], object]) -> TopicSchema:
    data = copy.deepcopy(BASE)
    change(data)
    return topic(data)


def add_column(spec: dict) -> Callable[[dict], None]:
    return lambda d: d["curated"]["columns"].append(spec)


def set_on(name: str, **fields) -> Callable[[dict], None]:
    return lambda d: column(d, name).update(fields)


def set_rule(name: str, **rules) -> Callable[[dict], None]:
    return lambda d: column(d, name).setdefault("rules", {}).update(rules)


def drop_rule(name: str, rule: str) -> Callable[[dict], None]:
    return lambda d: column(d, name)["rules"].pop(rule)


def remove_column(name: str) -> Callable[[dict], None]:
    return lambda d: d["curated"]["columns"].remove(column(d, name))


def rename_column(old: str, new: str) -> Callable[[dict], None]:
    def change(d: dict) -> None:
        spec = column(d, old)
        spec["source"] = spec.get("source") or old
        spec["name"] = new
    return change


COMPATIBLE, BREAKING = Verdict.COMPATIBLE, Verdict.BREAKING

CASES = [
    # compatible
    ("new non-CDE column", add_column(
        {"name": "country", "source": "event_metadata_country", "type": "string"}),
     "column_added", COMPATIBLE),
    ("new PII column", add_column({"name": "email", "type": "string", "pii": True}),
     "column_added", COMPATIBLE),
    ("new column with a default", add_column(
        {"name": "channel", "type": "string", "default": "web"}),
     "column_added_with_default", COMPATIBLE),
    ("int -> long", set_on("count", type="long"), "type_widened", COMPATIBLE),
    ("decimal precision widened, same scale", set_on("amount", type="decimal(18,2)"),
     "type_widened", COMPATIBLE),
    ("rule removed", drop_rule("user_id", "regex"), "rule_relaxed", COMPATIBLE),
    ("min lowered", set_rule("count", min=-5), "rule_relaxed", COMPATIBLE),
    ("max raised", set_rule("count", max=1000), "rule_relaxed", COMPATIBLE),
    ("allowed grown", set_rule("event_type", allowed=["click", "view", "buy"]),
     "rule_relaxed", COMPATIBLE),
    ("min_length lowered", set_rule("user_id", min_length=1), "rule_relaxed", COMPATIBLE),
    ("max_length raised", set_rule("user_id", max_length=40), "rule_relaxed", COMPATIBLE),
    ("no longer a CDE", set_on("event_type", cde=False), "cde_relaxed", COMPATIBLE),
    ("column description", set_on("ratio", description="share of clicks"),
     "description_changed", COMPATIBLE),
    ("table description", lambda d: d["curated"].update(description="clickstream"),
     "description_changed", COMPATIBLE),
    ("error-rate threshold", lambda d: d["curated"].update(cde_error_rate_threshold=0.1),
     "threshold_changed", COMPATIBLE),
    ("column order", lambda d: d["curated"]["columns"].reverse(), "column_order_changed",
     COMPATIBLE),
    # breaking
    ("removed column", remove_column("ratio"), "column_removed", BREAKING),
    ("renamed column", rename_column("device_id", "device"), "column_renamed", BREAKING),
    ("string -> long", set_on("device_id", type="long"), "type_changed", BREAKING),
    ("long narrowed to int", None, "type_changed", BREAKING),  # built below
    ("int -> double", set_on("count", type="double"), "type_changed", BREAKING),
    ("decimal scale changed", set_on("amount", type="decimal(12,4)"), "type_changed",
     BREAKING),
    ("decimal precision narrowed", set_on("amount", type="decimal(8,2)"), "type_changed",
     BREAKING),
    ("changed source key", set_on("device_id", source="event_deviceid"), "source_changed",
     BREAKING),
    ("new CDE column", add_column({"name": "country", "type": "string", "cde": True}),
     "cde_column_added", BREAKING),
    ("column becoming CDE", set_on("device_id", cde=True), "became_cde", BREAKING),
    ("PII flag added", set_on("device_id", pii=True), "pii_changed", BREAKING),
    ("PII flag removed", set_on("ip_address", pii=False), "pii_changed", BREAKING),
    ("changed sequence", lambda d: d["curated"].update(sequence=["ingestion_ts"]),
     "sequence_changed", BREAKING),
    ("changed metadata mapping", lambda d: d["standardized"]["metadata"].update(
        _metadata_tenant="tenant_id"), "metadata_mapping_changed", BREAKING),
    ("required metadata added", lambda d: d["standardized"].update(
        required_metadata=["idempotency_key", "tenant"]), "required_metadata_changed",
     BREAKING),
    ("required metadata removed", lambda d: d["standardized"].update(required_metadata=[]),
     "required_metadata_changed", BREAKING),
    ("metadata key removed", lambda d: d["standardized"]["metadata"].pop("_metadata_tenant"),
     "metadata_mapping_changed", BREAKING),
    ("dropped keys", lambda d: d["standardized"].update(drop_keys=["_metadata_messageid"]),
     "drop_keys_changed", BREAKING),
    ("new rule", set_rule("device_id", regex="^d-"), "rule_tightened", BREAKING),
    ("changed regex", set_rule("user_id", regex="^user-[0-9]+$"), "rule_tightened",
     BREAKING),
    ("min raised", set_rule("count", min=1), "rule_tightened", BREAKING),
    ("max lowered", set_rule("count", max=99), "rule_tightened", BREAKING),
    ("allowed shrunk", set_rule("event_type", allowed=["click"]), "rule_tightened", BREAKING),
    ("allowed swapped", set_rule("event_type", allowed=["click", "buy"]), "rule_tightened",
     BREAKING),
    ("default changed", set_on("user_agent", default="n/a"), "default_changed", BREAKING),
    ("default added", set_on("device_id", default="none"), "default_changed", BREAKING),
]


def _narrowed() -> tuple[TopicSchema, TopicSchema]:
    wide = mutate(set_on("count", type="long"))
    return wide, mutate(lambda d: None)


@pytest.mark.parametrize(("label", "change", "kind", "verdict"), CASES,
                         ids=[c[0] for c in CASES])
def test_each_change_is_classified(label, change, kind, verdict):
    if change is None:
        deployed, source = _narrowed()
    else:
        deployed, source = topic(BASE), mutate(change)
    changes = classify(deployed, source)
    assert [c.kind for c in changes] == [kind], changes
    assert changes[0].verdict is verdict
    assert changes[0].reason  # every verdict says why
    assert changes[0].what[0] in "+-~"


def test_identical_content_has_no_changes():
    assert classify(topic(BASE), topic(BASE)) == []


def test_not_deployed_is_onboarding():
    [change] = classify(None, topic(BASE))
    assert (change.kind, change.verdict) == ("topic_onboarded", COMPATIBLE)


def test_the_issue_example_lists_both_changes_with_their_verdicts():
    """country added (compatible) and device_id string -> long (breaking), as in issue 9."""
    source = mutate(lambda d: (
        add_column({"name": "country", "source": "event_metadata_country",
                    "type": "string"})(d),
        set_on("device_id", type="long")(d),
    ))
    changes = classify(topic(BASE), source)
    assert sorted((c.kind, c.verdict) for c in changes) == [
        ("column_added", COMPATIBLE), ("type_changed", BREAKING),
    ]
    [breaking] = breaking_changes(changes)
    assert "string -> long" in breaking.reason
    assert not affects_standardized(changes)


def test_one_column_with_several_changes_reports_each():
    changes = classify(topic(BASE), mutate(set_on("count", type="long", cde=True,
                                                  description="n")))
    assert [(c.kind, c.verdict) for c in changes] == [
        ("type_widened", COMPATIBLE), ("became_cde", BREAKING),
        ("description_changed", COMPATIBLE),
    ]


def test_rename_is_one_change_only_when_source_and_type_match():
    # same name gone, new name with another source: a removal and an addition
    changes = classify(topic(BASE), mutate(lambda d: (
        remove_column("device_id")(d), add_column({"name": "device", "type": "string"})(d),
    )))
    assert sorted(c.kind for c in changes) == ["column_added", "column_removed"]


def test_standardized_changes_are_flagged_for_a_standardized_rebuild():
    changes = classify(topic(BASE), mutate(
        lambda d: d["standardized"]["metadata"].update(_metadata_tenant="tenant_id")))
    assert affects_standardized(changes)


@pytest.mark.parametrize(("old", "new", "promoted"), [
    ("int", "long", True), ("float", "double", True), ("decimal(9,2)", "decimal(38,2)", True),
    ("long", "int", False), ("int", "double", False), ("decimal(9,2)", "decimal(9,2)", False),
    ("decimal(9,2)", "decimal(10,3)", False), ("decimal(9,2)", "decimal(8,2)", False),
    ("string", "long", False), ("date", "timestamp", False),
])
def test_iceberg_type_promotions(old, new, promoted):
    assert is_type_promotion(old, new) is promoted


def test_topics_must_match():
    other = mutate(lambda d: d.update(topic="sensor_readings"))
    with pytest.raises(ValueError, match="cannot compare"):
        classify(topic(BASE), other)
