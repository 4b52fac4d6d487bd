"""A job's result is typed, stored as JSON, and results stored before it was typed still read."""

from __future__ import annotations

from notifyd.records import (
    ExtendedDataWritten,
    JobResult,
    RevisionCheckedIn,
    Timings,
)


def test_a_result_reads_back_as_it_was_stored() -> None:
    for result in [
        JobResult(skipped="newRevision paired with newExtendedDataOnRevision"),
        JobResult(
            delivery=ExtendedDataWritten(file_id=3, schema="VALIDATION_JSON_1_0", bytes=120),
            timings=Timings(download=1.0, service=2.0, write_back=3.0, total=6.5),
        ),
        JobResult(delivery=RevisionCheckedIn(poid=4, checkin_id=9, comment="stamped (job 1)")),
    ]:
        assert JobResult.from_record(result.to_record()) == result


def test_extended_data_stored_before_typed_results_reads_as_extended_data() -> None:
    old = {
        "extended_data_file_id": 17,
        "schema": "VALIDATION_JSON_1_0",
        "bytes": 88,
        "timings_ms": {"download": 1.5, "total": 9.0, "since_notification": 20.0},
    }
    assert JobResult.from_record(old) == JobResult(
        delivery=ExtendedDataWritten(file_id=17, schema="VALIDATION_JSON_1_0", bytes=88),
        timings=Timings(download=1.5, total=9.0, since_arrival=20.0),
    )


def test_a_retried_delivery_stored_before_typed_results_reads_as_already_done() -> None:
    old_extended = {"extended_data_file_id": 17, "skipped": "already on the revision"}
    old_checkin = {"checkin": {"poid": 4, "roid": 12}, "skipped": "already checked in"}
    assert JobResult.from_record(old_extended) == JobResult(
        delivery=ExtendedDataWritten(file_id=17, already_present=True)
    )
    assert JobResult.from_record(old_checkin) == JobResult(
        delivery=RevisionCheckedIn(poid=4, roid=12, already_checked_in=True)
    )


def test_a_checkin_stored_before_typed_results_keeps_its_ids_and_comment() -> None:
    old = {"checkin": {"poid": 4, "checkinid": 31, "topicId": 8}, "comment": "done (job 2)"}
    assert JobResult.from_record(old) == JobResult(
        delivery=RevisionCheckedIn(poid=4, checkin_id=31, topic_id=8, comment="done (job 2)")
    )
