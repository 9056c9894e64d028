"""The one-line explanations shared by the check descriptions and `leanops run`."""

from __future__ import annotations

from leanops_dagster.pipeline import check_messages as messages


def test_cde_error_rate_sentence_matches_the_documented_example():
    assert messages.cde_error_rate(
        error_rows=40, rows_read=470, threshold=0.05, errors_table="curated.errors"
    ) == "8.5 % > 5 % threshold: 40 of 470 rows; rows are committed; see curated.errors"


def test_cde_error_rate_shows_enough_decimals_to_tell_rate_from_threshold():
    # 5.04 % would round to "5.0 %", which reads as equal to a 5 % threshold
    above = messages.cde_error_rate(
        error_rows=504, rows_read=10_000, threshold=0.05, errors_table="e"
    )
    assert above.startswith("5.04 % > 5 % threshold: 504 of 10,000 rows")
    below = messages.cde_error_rate(
        error_rows=496, rows_read=10_000, threshold=0.05, errors_table="e"
    )
    assert below == "4.96 % <= 5 % threshold: 496 of 10,000 rows"
    at = messages.cde_error_rate(error_rows=5, rows_read=100, threshold=0.05, errors_table="e")
    assert at == "5.0 % <= 5 % threshold: 5 of 100 rows"


def test_empty_run_sentences_say_nothing_read():
    assert messages.cde_error_rate(
        error_rows=0, rows_read=0, threshold=0.1, errors_table="e"
    ).startswith("nothing read: ")
    assert messages.post_raw_balance(
        read=0, written=0, parse_errors=0, duplicates=0, quarantined=0, errors_table="e"
    ).startswith("nothing read: ")
    assert messages.curated_balance(
        read=0, inserted=0, updated=0, superseded=0, cde_error_rows=0, quarantined=0
    ).startswith("nothing read: ")


def test_an_unbalanced_run_says_by_how_much_with_quarantined_as_a_term():
    off = messages.post_raw_balance(
        read=10, written=5, parse_errors=1, duplicates=1, quarantined=1,
        errors_table="standardized.parse_errors",
    )
    assert off.startswith(
        "off by 2: 10 RAW rows read != 5 written + 1 parse errors + 1 duplicates + "
        "1 quarantined (= 8); "
    )
    assert messages.curated_balance(
        read=7, inserted=3, updated=1, superseded=1, cde_error_rows=1, quarantined=1
    ).startswith("balanced: 7 Standardized rows read = ")
    # rows invented (right side larger) read as a negative difference, not as "nothing read"
    assert messages.curated_balance(
        read=0, inserted=2, updated=0, superseded=0, cde_error_rows=0, quarantined=0
    ).startswith("off by -2: 0 Standardized rows read != ")


def test_drift_sentence_lists_the_first_names_and_counts_the_rest():
    columns = [f"c{i:02d}" for i in range(31)]
    text = messages.schema_drift(columns, drift_log_table="curated.drift_log")
    assert text.startswith(
        "31 Standardized columns the curated schema does not declare "
        "(c00, c01, c02, c03, c04, c05, c06, c07 and 23 more); "
    )
    assert messages.schema_drift([], drift_log_table="d").startswith("no drift")


def test_a_raised_step_is_one_line_whatever_the_message():
    line = messages.step_raised("curated/records", "OverflowError", "bad\n\n  value " + "x" * 500)
    assert "\n" not in line
    assert line.startswith("curated/records raised OverflowError: bad value xxx")
    assert len(line) <= len("curated/records raised OverflowError: ") + messages.MESSAGE_MAX_CHARS
    assert messages.step_raised("s", "KeyError", "") == "s raised KeyError"
    assert messages.busy("events", "curated") == (
        "another run of events curated is in progress; nothing to do"
    )


def test_quarantined_rows_sentence_names_count_reason_and_table():
    assert messages.quarantined_rows(read=0, quarantined=0, errors_table="t") == (
        "nothing read: no rows since the watermark")
    assert messages.quarantined_rows(read=1200, quarantined=0, errors_table="t") == (
        "no row of 1,200 made the layer raise")
    sentence = messages.quarantined_rows(
        read=1200, quarantined=3, errors_table="curated.errors")
    assert sentence.startswith("3 of 1,200 rows made the layer raise")
    assert "internal:<Exception>" in sentence and sentence.endswith("see curated.errors")
    assert "\n" not in sentence
