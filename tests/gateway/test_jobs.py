"""Jobs live in the real object store: leases, restarts, cancellation, several workers."""

import threading
import time

import pytest
from google.rpc import code_pb2

from dfp.storage import PreconditionFailed
from dfp.v1 import detection_pb2, jobs_pb2
from gateway.jobs import JobKind, JobRunner, JobStore
from tests.helpers import fresh_object_store


@pytest.fixture()
def store(s3):
    return fresh_object_store(s3)


def request():
    return detection_pb2.DetectVideoRequest(media="media/abcdefghijklmnopqrstuvwxyz")


def wait_until_done(jobs, names, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(jobs.get("team-a", n).get_operation().done for n in names):
        time.sleep(0.1)


def test_conditional_writes_let_only_one_writer_win(store):
    etag = store.put_conditional("jobs", "k.json", b"{}")
    with pytest.raises(PreconditionFailed):
        store.put_conditional("jobs", "k.json", b"{}")
    store.put_conditional("jobs", "k.json", b'{"a": 1}', if_match=etag)
    with pytest.raises(PreconditionFailed):
        store.put_conditional("jobs", "k.json", b'{"b": 1}', if_match=etag)


def test_a_job_runs_exactly_once_with_several_workers(store):
    jobs = JobStore(store)
    runs = []
    lock = threading.Lock()

    def run(context):
        with lock:
            runs.append(context.name)
        time.sleep(0.3)
        return detection_pb2.DetectVideoResponse(frames_sampled=7)

    kinds = {"detect_video": JobKind(detection_pb2.DetectVideoRequest, run)}
    runners = [JobRunner(jobs, kinds, workers=2, lease_s=10, poll_s=0.05) for _ in range(3)]
    created = [jobs.create("team-a", "detect_video", request(), target="media/x") for _ in range(4)]
    for runner in runners:
        runner.start()
    try:
        wait_until_done(jobs, [j.name for j in created])
    finally:
        for runner in runners:
            runner.stop()
    assert sorted(runs) == sorted(j.name for j in created)
    for job in created:
        record = jobs.get("team-a", job.name)
        operation = record.get_operation()
        assert operation.done and operation.HasField("response") and not operation.HasField("error")
        assert record.metadata().state == jobs_pb2.SUCCEEDED
    assert jobs.pending() == []


def test_a_job_whose_worker_died_is_taken_over_after_its_lease(store):
    jobs = JobStore(store)
    job = jobs.create("team-a", "detect_video", request(), target="media/x")
    assert jobs.try_claim("team-a", job.id, "dead-gateway", lease_s=0.5) is not None
    assert jobs.try_claim("team-a", job.id, "other", lease_s=10) is None, "lease still held"
    time.sleep(0.6)
    kinds = {"detect_video": JobKind(detection_pb2.DetectVideoRequest, lambda c: detection_pb2.DetectVideoResponse())}
    runner = JobRunner(jobs, kinds, workers=1, lease_s=10, poll_s=0.05)
    runner.start()
    try:
        wait_until_done(jobs, [job.name])
    finally:
        runner.stop()
    record = jobs.get("team-a", job.name)
    assert record.get_operation().done
    assert record.metadata().attempt == 2


def test_a_handler_slower_than_its_lease_keeps_its_job_while_it_runs(store):
    jobs = JobStore(store)
    runs = []

    def run(context):
        runs.append(context.name)
        time.sleep(2.0)  # more than three leases without a progress report
        context.progress(7, 7, force=True)
        return detection_pb2.DetectVideoResponse(frames_sampled=7)

    job = jobs.create("team-a", "detect_video", request(), target="media/x")
    runner = JobRunner(jobs, {"detect_video": JobKind(detection_pb2.DetectVideoRequest, run)}, workers=2, lease_s=0.6,
                       poll_s=0.05)
    runner.start()
    try:
        wait_until_done(jobs, [job.name])
    finally:
        runner.stop()
    metadata = jobs.get("team-a", job.name).metadata()
    assert runs == [job.name]
    assert metadata.state == jobs_pb2.SUCCEEDED and metadata.attempt == 1
    assert metadata.items_done == metadata.items_total == 7


def test_each_worker_thread_holds_its_leases_under_its_own_name(store):
    jobs = JobStore(store)
    both_running = threading.Barrier(3)

    def run(context):
        both_running.wait(20)
        both_running.wait(20)
        return detection_pb2.DetectVideoResponse()

    created = [jobs.create("team-a", "detect_video", request(), target="media/x") for _ in range(2)]
    runner = JobRunner(jobs, {"detect_video": JobKind(detection_pb2.DetectVideoRequest, run)}, workers=2, lease_s=10,
                       poll_s=0.05)
    runner.start()
    try:
        both_running.wait(20)
        owners = {jobs.get("team-a", job.name).lease_owner for job in created}
        both_running.wait(20)
        wait_until_done(jobs, [job.name for job in created])
    finally:
        runner.stop()
    assert len(owners) == 2 and all(owner.startswith(runner.owner) for owner in owners)


def test_cancel_stops_a_running_job_and_a_queued_one_never_starts(store):
    jobs = JobStore(store)
    started = threading.Event()

    def run(context):
        started.set()
        for i in range(200):
            context.progress(i, 200, force=True)
            time.sleep(0.05)
        return detection_pb2.DetectVideoResponse()

    queued = jobs.create("team-a", "detect_video", request(), target="media/x")
    jobs.cancel("team-a", queued.name)
    assert jobs.get("team-a", queued.name).metadata().state == jobs_pb2.CANCELLED

    running = jobs.create("team-a", "detect_video", request(), target="media/x")
    runner = JobRunner(jobs, {"detect_video": JobKind(detection_pb2.DetectVideoRequest, run)}, workers=1, lease_s=10,
                       poll_s=0.05)
    runner.start()
    try:
        assert started.wait(20)
        jobs.cancel("team-a", running.name)
        wait_until_done(jobs, [running.name])
    finally:
        runner.stop()
    operation = jobs.get("team-a", running.name).get_operation()
    assert operation.done and operation.error.code == code_pb2.CANCELLED


def test_the_same_request_id_returns_the_same_job(store):
    jobs = JobStore(store)
    first = jobs.create("team-a", "detect_video", request(), target="media/x", request_id="retry-1")
    second = jobs.create("team-a", "detect_video", request(), target="media/x", request_id="retry-1")
    assert first.name == second.name


def test_a_stopping_worker_gives_its_job_back_for_another_to_finish(store):
    jobs = JobStore(store)
    started = threading.Event()

    def run(context):
        started.set()
        for i in range(100):
            context.progress(i, 100, force=True)
            time.sleep(0.05)
        return detection_pb2.DetectVideoResponse(frames_sampled=100)

    kinds = {"detect_video": JobKind(detection_pb2.DetectVideoRequest, run)}
    job = jobs.create("team-a", "detect_video", request(), target="media/x")
    first = JobRunner(jobs, kinds, workers=1, lease_s=60, poll_s=0.05)
    first.start()
    assert started.wait(20)
    first.stop()
    record = jobs.get("team-a", job.name)
    assert record.metadata().state == jobs_pb2.QUEUED and not record.lease_owner
    second = JobRunner(jobs, kinds, workers=1, lease_s=60, poll_s=0.05)
    second.start()
    try:
        wait_until_done(jobs, [job.name])
    finally:
        second.stop()
    final = jobs.get("team-a", job.name)
    assert final.get_operation().HasField("response") and final.metadata().attempt == 2


def test_a_team_over_its_concurrent_jobs_quota_is_refused_until_one_ends(store):
    from gateway.errors import LimitExceeded

    jobs = JobStore(store, concurrent_jobs_quota=lambda team: 2)
    first = jobs.create("team-a", "detect_video", request(), target="media/x", request_id="first")
    jobs.create("team-a", "detect_video", request(), target="media/x")
    with pytest.raises(LimitExceeded, match="2 unfinished jobs"):
        jobs.create("team-a", "detect_video", request(), target="media/x")
    assert jobs.create("team-a", "detect_video", request(), target="media/x", request_id="first").name == first.name
    jobs.create("team-b", "detect_video", request(), target="media/x")  # another team's count is its own
    jobs.cancel("team-a", first.name)
    assert jobs.unfinished("team-a") == 1
    jobs.create("team-a", "detect_video", request(), target="media/x")
