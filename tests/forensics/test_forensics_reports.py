"""The readers and report formatters behind the forensic commands, called as a Python user would."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runtime.forensics import (
    EventFilter,
    collect_manifests,
    compare_manifests,
    format_events_timeline,
    format_manifest_summary,
    list_runs,
    parse_event_filter,
    parse_since,
    query_events,
    walk_run_dirs,
)
from runtime.rundir import EventRecord, RunDirError, RunManifest, load_manifest
from tests.forensics.forensics_data import (
    ORIGINAL_V1,
    ORIGINAL_V2,
    OURS_POD_KILLED,
    OURS_SUCCEEDED,
    PROJECT,
)


def event(ts: str | None, name: str = "e", **fields: object) -> EventRecord:
    return EventRecord.model_validate({"ts_utc": ts, "event": name, **fields})


@pytest.mark.parametrize(
    ("seconds", "offset"),
    [
        (0, "[+0:00]"),
        (59.9, "[+0:59]"),
        (61, "[+1:01]"),
        (3599, "[+59:59]"),
        (3600, "[+1:00:00]"),
        (12601, "[+3:30:01]"),
        (-5, "[-0:05]"),
    ],
)
def test_timeline_offsets(seconds: float, offset: str) -> None:
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    later = (anchor + timedelta(seconds=seconds)).isoformat()
    timeline = format_events_timeline([event(anchor.isoformat()), event(later, "x")])
    assert timeline.splitlines()[1] == f"{offset} x"


def test_timeline_anchors_on_the_first_readable_time_and_marks_the_rest() -> None:
    timeline = format_events_timeline(
        [
            event(None, "early", label="a b"),
            event("2026-01-01T00:00:10Z", "first"),
            event("2026-01-01T00:01:10", "naive_is_utc", quote='say "hi"', n=3, flag=True),
        ]
    )
    assert timeline.splitlines() == [
        '[+--:--] early label="a b"',
        "[+0:00] first",
        '[+1:00] naive_is_utc quote="say "hi"" n=3 flag=True',
    ]


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("6h", timedelta(hours=6)),
        ("7d", timedelta(days=7)),
        ("0s", timedelta(0)),
    ],
)
def test_since_takes_one_whole_number_and_one_unit(text: str, window: timedelta) -> None:
    assert parse_since(text) == window


@pytest.mark.parametrize("text", ["1h30m", "1.5h", "10", "", "7D", "-1d", "d", " 7d"])
def test_since_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="whole number and one unit"):
        parse_since(text)


def test_filter_is_key_equals_value_with_an_identifier_key() -> None:
    assert parse_event_filter("error=a=b") == EventFilter(key="error", value="a=b")
    assert parse_event_filter("label=") == EventFilter(key="label", value="")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_event_filter("event")
    with pytest.raises(ValueError, match="identifier"):
        parse_event_filter("gpu-id=x")


def test_filters_compare_the_text_form_of_numbers_and_bools() -> None:
    record = event(
        "2026-01-01T00:00:00Z", "artifact_pull_completed", duration_sec=3.2, ok=True, n=None
    )
    assert EventFilter(key="duration_sec", value="3.2").matches(record)
    assert EventFilter(key="ok", value="True").matches(record)
    assert not EventFilter(key="ok", value="true").matches(record)
    assert not EventFilter(key="n", value="None").matches(record), "an absent value matches nothing"
    assert not EventFilter(key="missing", value="").matches(record)


def test_query_across_runs_ands_filters_and_names_each_run_dir() -> None:
    rows = query_events(
        PROJECT,
        filters=[
            parse_event_filter("event=artifact_pull_completed"),
            parse_event_filter("label=report"),
        ],
        now=datetime(2026, 3, 10, tzinfo=UTC),
    )
    assert [(row.run_dir, row.event.fields["duration_sec"]) for row in rows] == [
        ("20260302T190000Z", 0.881)
    ]


def test_query_since_keeps_recent_events_and_drops_undated_ones(tmp_path: Path) -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    run = tmp_path / "20260601T000000Z"
    run.mkdir()
    lines = [
        {"ts_utc": (now - timedelta(hours=1)).isoformat(), "event": "recent"},
        {"ts_utc": (now - timedelta(days=3)).isoformat(), "event": "old"},
        {"ts_utc": "garbage", "event": "undated"},
        {"event": "no_time_at_all"},
        {
            "ts_utc": (now - timedelta(hours=47)).strftime("%Y-%m-%dT%H:%M:%S"),
            "event": "naive_recent",
        },
    ]
    (run / "events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    assert [r.event.event for r in query_events(tmp_path, since=timedelta(days=2), now=now)] == [
        "recent",
        "naive_recent",
    ]
    assert len(query_events(tmp_path, now=now)) == 5


def test_query_of_a_missing_root_is_a_run_dir_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="--root directory not found"):
        query_events(tmp_path / "nope", now=datetime.now(UTC))


def test_walk_finds_run_dirs_with_a_manifest_oldest_first(tmp_path: Path) -> None:
    assert [p.name for p in walk_run_dirs(PROJECT)] == [
        "20260301T081500Z",
        "20260301T081500Z-001",
        "20260302T190000Z",
        "20260303T000000Z",
        "20260304T120000Z",
    ]
    assert walk_run_dirs(tmp_path) == ()


def test_rollup_counts_unreadable_manifests_but_sums_only_readable_ones() -> None:
    rollup = collect_manifests(PROJECT)
    totals = rollup.totals
    assert [path.parent.name for path in rollup.unreadable] == ["20260304T120000Z"]
    assert (totals.manifests, totals.failed) == (5, 1)
    assert totals.wall_time_sec == pytest.approx(1865.3 + 1047.9 + 8123.75)
    assert totals.estimated_cost_usd == pytest.approx(0.4093 + 0.2882)


def test_rollup_of_runs_without_costs_has_no_cost_total(tmp_path: Path) -> None:
    shutil.copytree(ORIGINAL_V1, tmp_path / "only-v1")
    totals = collect_manifests(tmp_path).totals
    assert (totals.manifests, totals.wall_time_sec, totals.estimated_cost_usd) == (1, None, None)


def test_list_runs_limit_keeps_the_most_recent_and_skips_unreadable() -> None:
    assert [row.timestamp for row in list_runs(PROJECT, limit=2)] == ["20260303T000000Z"]
    assert [row.job for row in list_runs(PROJECT)] == [
        "lr-sweep",
        "lr-sweep",
        "tokenizer-bench",
        "legacy-probe",
    ]


def test_summary_of_a_v1_manifest_prints_none_for_what_it_lacks() -> None:
    summary = format_manifest_summary(load_manifest(ORIGINAL_V1))
    assert "failed:        None" in summary and "price_usd/hr:  None (None)" in summary
    assert "deploy_metadata:" not in summary and "telemetry_files:" not in summary


def test_summary_keeps_the_original_lines_and_adds_our_outcome_after_them() -> None:
    summary = format_manifest_summary(load_manifest(OURS_SUCCEEDED)).splitlines()
    assert summary[13:15] == ["final_state:   EXITED", "outcome:       succeeded"]
    assert "outcome" not in format_manifest_summary(load_manifest(ORIGINAL_V2))


def test_comparison_rows_cover_fields_metadata_and_every_artifact_label(tmp_path: Path) -> None:
    a = load_manifest(OURS_SUCCEEDED)
    b = RunManifest.model_validate(
        {
            **a.present_fields(),
            "artifacts": [{"label": "only-in-b", "status": "skipped"}],
            "deploy_metadata": {"remote_uname": "Linux 6.8"},
            "wall_time_sec": 1865.3,
        }
    )
    rows = {row.field: row for row in compare_manifests(a, b)}
    assert rows["wall_time_sec"].equal and rows["job_name"].equal
    assert (rows["deploy_metadata.remote_uname"].a, rows["deploy_metadata.remote_uname"].b) == (
        None,
        "Linux 6.8",
    )
    assert not rows["deploy_metadata.local_git_sha"].equal
    assert rows["artifact[checkpoints].status"].to_json_value() == {
        "field": "artifact[checkpoints].status",
        "a": "success",
        "b": None,
        "equal": False,
    }
    assert rows["artifact[only-in-b].status"].b == "skipped"
    assert list(rows)[-6:] == [
        "artifact[checkpoints].status",
        "artifact[checkpoints].bytes_transferred",
        "artifact[checkpoints].duration_sec",
        "artifact[only-in-b].status",
        "artifact[only-in-b].bytes_transferred",
        "artifact[only-in-b].duration_sec",
    ]


def test_the_killed_shard_reads_as_failed_with_its_outcome() -> None:
    manifest = load_manifest(OURS_POD_KILLED)
    assert manifest.failed is True and manifest.outcome == "pod_killed"
    assert manifest.provisioning_attempts == ()
