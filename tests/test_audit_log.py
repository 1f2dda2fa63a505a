"""The audit log on a real S3 server: events written in batches read back whole and in time order,
beside objects of the one-event layout written before."""

import datetime as dt
import json

from dfp import audit
from dfp.config import StorageSettings
from dfp.storage import ADMIN, ObjectStore
from gateway.audit import AuditWriter


def make_store(s3, prefix):
    store = ObjectStore(StorageSettings(s3.endpoint, s3.access_key, s3.secret_key, False, prefix, "us-east-1"))
    store.ensure_buckets()
    return store


def at(seconds):
    return dt.datetime(2026, 12, 7, 10, 0, 0, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=seconds)


def test_a_batch_is_one_object_and_reads_back_in_time_order_with_single_event_objects(s3):
    store = make_store(s3, "auditbatch")
    log = audit.AuditLog(store)
    batch = [audit.event("team-a", "t1", "alice", "DetectImage", [], "OK", at(s)) for s in (3, 1, 2)]
    log.record_events(batch)
    legacy = audit.event("team-a", "t1", "alice", "UploadMedia", ["media/m1"], "OK", at(1.5))
    store.put_conditional(ADMIN, "audit/team-a/2026-12-07/2026-12-07T10:00:01.500000Z-0000beef.json",
                          json.dumps(legacy).encode())
    assert len(list(store.list(ADMIN, "audit/team-a/"))) == 2
    events = list(log.events("team-a"))
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert [e["action"] for e in events] == ["DetectImage", "UploadMedia", "DetectImage", "DetectImage"]
    assert [e["resources"] for e in log.events("team-a", resource="media/m1")] == [["media/m1"]]


def test_the_writer_writes_a_burst_of_events_in_few_objects_and_loses_none(s3):
    store = make_store(s3, "auditburst")
    writer = AuditWriter(audit.AuditLog(store))
    for i in range(300):
        writer.submit(team="team-b" if i % 3 else "team-c", token_id="t", token_name="n", action="DetectImage",
                      resources=[f"media/{i}"], outcome="OK")
    writer.close()
    log = audit.AuditLog(store)
    written = {e["resources"][0] for team in ("team-b", "team-c") for e in log.events(team)}
    assert written == {f"media/{i}" for i in range(300)}
    objects = len(list(store.list(ADMIN, "audit/")))
    assert objects < 100, f"{objects} objects for 300 events"
