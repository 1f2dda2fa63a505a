"""Long-running jobs whose state lives in the object store, not in a gateway's memory.

Each job is one record, `teams/{team}/operations/{id}.json` in the jobs bucket, holding the
google.longrunning.Operation as clients see it plus the request, a cancel flag and a lease. A queue
entry, `queue/{team}/{id}`, lists jobs that are not done yet, so workers never scan finished ones.

Every change to a record is a conditional write on the ETag that was read, so two gateways never
both win: a worker claims a job by writing its lease, renews the lease as it reports progress, and
gives up the job the moment a write shows that someone else holds it. While a handler runs, a
heartbeat renews its lease, so a slow step between two progress reports never lets the lease lapse.
A job whose worker died is claimed again once its lease expires (a restarted gateway picks up its own
jobs the same way). Every worker thread holds leases under its own name, so with any number of
replicas and threads a job runs on one worker at a time. Handlers must be idempotent.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable

from google.longrunning import operations_pb2
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2

from dfp import storage
from dfp.ids import new_id, parse_name
from dfp.observability import request_id
from dfp.storage import JOBS, NotFound, ObjectStore, PreconditionFailed
from dfp.v1 import jobs_pb2
from gateway.errors import ApiError, FailedPrecondition, InvalidArgument, LimitExceeded, ResourceNotFound
from gateway.metrics import JOBS_FINISHED, JOBS_PENDING
from gateway.paging import decode_page_token, encode_page_token, page_size

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
QUEUE_PREFIX = "queue/"


class JobCancelled(Exception):
    """Raised inside a handler when a client cancelled its job."""


class WorkerStopping(Exception):
    """Raised inside a handler when its gateway shuts down: the job goes back to the queue."""


class LeaseLost(Exception):
    """Raised inside a handler when another worker took over the job."""


class JobFailed(Exception):
    """A handler's way to end its job with a status code and a message for the client."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _b64(message: Message) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


def _timestamp(when: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(when * 1e9))
    return stamp


@dataclasses.dataclass
class JobRecord:
    team: str
    id: str
    kind: str
    request: str
    operation: str
    lease_owner: str = ""
    lease_expires: float = 0.0
    etag: str = dataclasses.field(default="", compare=False)

    @property
    def name(self) -> str:
        return f"operations/{self.id}"

    def to_json(self) -> bytes:
        value = dataclasses.asdict(self)
        value.pop("etag")
        return json.dumps(value, sort_keys=True).encode()

    def get_operation(self) -> operations_pb2.Operation:
        operation = operations_pb2.Operation()
        operation.ParseFromString(base64.b64decode(self.operation))
        return operation

    def set_operation(self, operation: operations_pb2.Operation) -> None:
        self.operation = _b64(operation)

    def metadata(self) -> jobs_pb2.JobMetadata:
        metadata = jobs_pb2.JobMetadata()
        self.get_operation().metadata.Unpack(metadata)
        return metadata

    def request_message(self, message_type: type[Message]) -> Message:
        message = message_type()
        message.ParseFromString(base64.b64decode(self.request))
        return message


def _with_metadata(operation: operations_pb2.Operation, metadata: jobs_pb2.JobMetadata) -> None:
    packed = any_pb2.Any()
    packed.Pack(metadata)
    operation.metadata.CopyFrom(packed)


class JobStore:
    """``concurrent_jobs_quota(team)``, when given, caps how many unfinished jobs a team may have."""

    def __init__(self, store: ObjectStore, concurrent_jobs_quota: Callable[[str], int] | None = None):
        self._store = store
        self._concurrent_jobs_quota = concurrent_jobs_quota

    def unfinished(self, team: str) -> int:
        """Jobs of ``team`` queued or running (each has a queue entry until it ends)."""
        return sum(1 for _ in self._store.list(JOBS, f"{QUEUE_PREFIX}{team}/"))

    def _key(self, team: str, job_id: str) -> str:
        return storage.operation_key(team, job_id)

    def _queue_key(self, team: str, job_id: str) -> str:
        return f"{QUEUE_PREFIX}{team}/{job_id}"

    def _request_key(self, team: str, request_id: str) -> str:
        return f"{storage.team_prefix(team)}requests/{request_id}"

    def create(self, team: str, kind: str, request: Message, target: str, request_id: str = "") -> JobRecord:
        """Queues a job; with a `request_id` seen before, returns that request's job instead.

        Written in the order request key, record, queue entry; a retry after a crash between two of
        them finds what the first attempt left and completes it, so a request_id never dangles.
        """
        request_etag = None
        if request_id:
            if len(request_id) > 128 or not all(c.isalnum() or c in "-_." for c in request_id):
                raise InvalidArgument("request_id must be 1-128 letters, digits, '-', '_' or '.'")
            try:
                existing, request_etag = self._store.get_json(JOBS, self._request_key(team, request_id))
                return self._requeue(self._read(team, parse_name(existing["name"], "operations")))
            except NotFound:
                pass
        if self._concurrent_jobs_quota is not None:
            allowed = self._concurrent_jobs_quota(team)
            if self.unfinished(team) >= allowed:
                raise LimitExceeded(f"team {team} has {allowed} unfinished jobs, its quota; wait for one to finish "
                                    "or cancel one, then retry")
        now = time.time()
        job_id = new_id()
        metadata = jobs_pb2.JobMetadata(
            state=jobs_pb2.QUEUED, kind=kind, create_time=_timestamp(now), update_time=_timestamp(now), target=target
        )
        operation = operations_pb2.Operation(name=f"operations/{job_id}", done=False)
        _with_metadata(operation, metadata)
        record = JobRecord(team=team, id=job_id, kind=kind, request=_b64(request), operation=_b64(operation))
        if request_id:
            try:
                self._store.put_conditional(JOBS, self._request_key(team, request_id),
                                            json.dumps({"name": record.name}).encode(), if_match=request_etag)
            except PreconditionFailed:
                existing, _ = self._store.get_json(JOBS, self._request_key(team, request_id))
                return self._requeue(self.get(team, existing["name"]))
        record.etag = self._store.put_conditional(JOBS, self._key(team, job_id), record.to_json())
        return self._requeue(record)

    def _requeue(self, record: JobRecord) -> JobRecord:
        if not record.get_operation().done:
            self._store.put_bytes(JOBS, self._queue_key(record.team, record.id), b"")
        return record

    def get(self, team: str, name: str) -> JobRecord:
        job_id = parse_name(name, "operations")
        try:
            return self._read(team, job_id)
        except NotFound:
            raise ResourceNotFound(f"{name} not found") from None

    def _read(self, team: str, job_id: str) -> JobRecord:
        value, etag = self._store.get_json(JOBS, self._key(team, job_id))
        return JobRecord(**value, etag=etag)

    def write(self, record: JobRecord) -> JobRecord:
        """Writes `record` if nobody changed it since it was read; raises PreconditionFailed otherwise."""
        record.etag = self._store.put_conditional(JOBS, self._key(record.team, record.id), record.to_json(), if_match=record.etag)
        if record.get_operation().done:
            self._store.delete(JOBS, self._queue_key(record.team, record.id))
            self._store.delete(JOBS, self._cancel_key(record.team, record.id))
        return record

    def update(self, team: str, name: str, change: Callable[[JobRecord], None]) -> JobRecord:
        """Reads, applies `change`, writes conditionally; retries when another writer came between."""
        for _ in range(20):
            record = self.get(team, name)
            change(record)
            try:
                return self.write(record)
            except PreconditionFailed:
                time.sleep(0.05)
        raise RuntimeError(f"{name}: too much contention to update")

    def list(self, team: str, requested_page_size: int, page_token: str) -> tuple[list[JobRecord], str]:
        size = page_size(requested_page_size)
        prefix = storage.team_prefix(team) + "operations/"
        after = decode_page_token(page_token, prefix)
        records = []
        last_key = None
        for item in self._store.list(JOBS, prefix, start_after=after):
            if len(records) == size:
                return records, encode_page_token(last_key)
            job_id = item.key[len(prefix):].removesuffix(".json")
            try:
                records.append(self._read(team, job_id))
            except NotFound:
                continue
            last_key = item.key
        return records, ""

    def delete(self, team: str, name: str) -> None:
        record = self.get(team, name)
        if not record.get_operation().done:
            raise FailedPrecondition(f"{name} is still running; cancel it first")
        self._store.delete(JOBS, self._key(team, record.id))

    def _cancel_key(self, team: str, job_id: str) -> str:
        return f"{storage.team_prefix(team)}cancel/{job_id}"

    def cancel(self, team: str, name: str) -> JobRecord:
        """Asks a job to stop. A queued job ends CANCELLED now; a running one at its worker's next
        progress report. The request is its own object, so a busy worker's writes never starve it."""
        record = self.get(team, name)
        if record.get_operation().done:
            return record
        self._store.put_bytes(JOBS, self._cancel_key(team, record.id), b"")

        def cancel_if_queued(record: JobRecord) -> None:
            if not record.get_operation().done and record.metadata().state == jobs_pb2.QUEUED:
                _finish(record, error=(code_pb2.CANCELLED, "cancelled before it started"), state=jobs_pb2.CANCELLED)

        return self.update(team, name, cancel_if_queued)

    def cancel_requested(self, record: JobRecord) -> bool:
        return self._store.exists(JOBS, self._cancel_key(record.team, record.id))

    def pending(self) -> list[tuple[str, str]]:
        """(team, id) of every job not yet done, across teams."""
        found = []
        for item in self._store.list(JOBS, QUEUE_PREFIX):
            team, _, job_id = item.key[len(QUEUE_PREFIX):].partition("/")
            found.append((team, job_id))
        return found

    def try_claim(self, team: str, job_id: str, owner: str, lease_s: float) -> JobRecord | None:
        """Takes the job for `owner` if it is queued or its lease has run out; None if not ours to take."""
        try:
            record = self._read(team, job_id)
        except NotFound:
            self._store.delete(JOBS, self._queue_key(team, job_id))
            return None
        operation = record.get_operation()
        now = time.time()
        if operation.done:
            self._store.delete(JOBS, self._queue_key(team, job_id))
            return None
        if record.lease_owner and record.lease_expires > now:
            return None
        metadata = record.metadata()
        if metadata.attempt >= MAX_ATTEMPTS:
            _finish(record, error=(code_pb2.ABORTED, f"the job's worker was lost {metadata.attempt} times; giving up"),
                    state=jobs_pb2.FAILED)
        else:
            metadata.state = jobs_pb2.RUNNING
            metadata.attempt += 1
            metadata.update_time.CopyFrom(_timestamp(now))
            if not metadata.HasField("start_time"):
                metadata.start_time.CopyFrom(_timestamp(now))
            _with_metadata(operation, metadata)
            record.set_operation(operation)
            record.lease_owner, record.lease_expires = owner, now + lease_s
        try:
            self.write(record)
        except PreconditionFailed:
            return None
        return None if record.get_operation().done else record


def _finish(record: JobRecord, *, response: Message | None = None, error: tuple[int, str] | None = None,
            state: int) -> None:
    operation = record.get_operation()
    metadata = record.metadata()
    now = time.time()
    metadata.state = state
    metadata.update_time.CopyFrom(_timestamp(now))
    metadata.end_time.CopyFrom(_timestamp(now))
    _with_metadata(operation, metadata)
    operation.done = True
    if response is not None:
        operation.response.Pack(response)
    else:
        operation.error.CopyFrom(status_pb2.Status(code=error[0], message=error[1]))
    record.set_operation(operation)
    record.lease_owner, record.lease_expires = "", 0.0


class JobContext:
    """What a handler gets: its request, and `progress` to report work done (which also renews the
    lease, and raises JobCancelled or LeaseLost when the handler must stop)."""

    def __init__(self, jobs: JobStore, record: JobRecord, owner: str, lease_s: float, request_type: type[Message],
                 stopping: threading.Event | None = None):
        self._jobs = jobs
        self._stopping = stopping or threading.Event()
        self._record = record
        self._owner = owner
        self._lease_s = lease_s
        self._last_write = 0.0
        # The handler's thread and the heartbeat both write the record; one at a time, so neither
        # mistakes the other's write for a rival worker's.
        self._write_lock = threading.Lock()
        self._lease_lost = threading.Event()
        self.team = record.team
        self.name = record.name
        self.request = record.request_message(request_type)

    @contextlib.contextmanager
    def heartbeat(self):
        """Renews the lease every third of its length until the block ends."""
        finished = threading.Event()
        beat = threading.Thread(target=self._renew_until, args=(finished,), name=f"lease-{self._record.id}",
                                daemon=True)
        beat.start()
        try:
            yield
        finally:
            finished.set()
            beat.join()

    def _renew_until(self, finished: threading.Event) -> None:
        def renew(record: JobRecord, metadata: jobs_pb2.JobMetadata) -> None:
            record.lease_expires = time.time() + self._lease_s

        while not finished.wait(self._lease_s / 3):
            try:
                self._write(renew)
            except LeaseLost:
                self._lease_lost.set()
                return
            except Exception:
                log.warning("%s: renewing the lease failed; trying again", self.name, exc_info=True)

    def progress(self, done: int, total: int, force: bool = False) -> None:
        if self._stopping.is_set():
            raise WorkerStopping()
        if self._lease_lost.is_set():
            raise LeaseLost()
        now = time.time()
        if not force and now - self._last_write < min(1.0, self._lease_s / 4):
            return
        if self._jobs.cancel_requested(self._record):
            raise JobCancelled()

        def report(record: JobRecord, metadata: jobs_pb2.JobMetadata) -> None:
            metadata.items_done, metadata.items_total = done, total
            record.lease_expires = now + self._lease_s

        self._write(report)
        self._last_write = now

    def release(self) -> None:
        """Gives the job back to the queue at once, for another worker to take without waiting for the lease."""

        def requeue(record: JobRecord, metadata: jobs_pb2.JobMetadata) -> None:
            metadata.state = jobs_pb2.QUEUED
            record.lease_owner, record.lease_expires = "", 0.0

        self._write(requeue)

    def finish(self, *, response: Message | None = None, error: tuple[int, str] | None = None, state: int) -> None:
        with self._write_lock:
            for _ in range(10):
                _finish(self._record, response=response, error=error, state=state)
                try:
                    self._jobs.write(self._record)
                    return
                except PreconditionFailed:
                    self._reload()
        raise LeaseLost()

    def _write(self, change: Callable[[JobRecord, jobs_pb2.JobMetadata], None]) -> None:
        """Applies `change` to our record and writes it; on a conflict, re-reads and tries again while
        the lease is still ours (LeaseLost otherwise)."""
        with self._write_lock:
            for _ in range(10):
                record = self._record
                operation = record.get_operation()
                metadata = record.metadata()
                change(record, metadata)
                metadata.update_time.CopyFrom(_timestamp(time.time()))
                _with_metadata(operation, metadata)
                record.set_operation(operation)
                try:
                    self._record = self._jobs.write(record)
                    return
                except PreconditionFailed:
                    self._reload()
        raise LeaseLost()

    def _reload(self) -> None:
        record = self._jobs._read(self._record.team, self._record.id)
        if record.lease_owner != self._owner or record.get_operation().done:
            raise LeaseLost()
        self._record = record


@dataclasses.dataclass(frozen=True)
class JobKind:
    request_type: type[Message]
    run: Callable[[JobContext], Message]


class JobRunner:
    """Worker threads that claim queued jobs from the store and run them."""

    def __init__(self, jobs: JobStore, kinds: dict[str, JobKind], workers: int = 2, lease_s: float = 30.0,
                 poll_s: float = 0.5):
        self._jobs = jobs
        self._kinds = kinds
        self._lease_s = lease_s
        self._poll_s = poll_s
        self.owner = f"{socket.gethostname()}-{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(f"{self.owner}/{i}",), name=f"job-worker-{i}",
                                          daemon=True) for i in range(workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops taking jobs; a job in progress goes back to the queue at its next progress report."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self, worker: str) -> None:
        while not self._stop.is_set():
            ran = False
            try:
                pending = self._jobs.pending()
                JOBS_PENDING.set(len(pending))
                for team, job_id in pending:
                    if self._stop.is_set():
                        return
                    record = self._jobs.try_claim(team, job_id, worker, self._lease_s)
                    if record is not None:
                        self._run(record, worker)
                        ran = True
            except Exception:
                log.exception("job poll failed")
            if not ran:
                self._wake.wait(self._poll_s)
                self._wake.clear()

    def _run(self, record: JobRecord, worker: str) -> None:
        token = request_id.set(record.name)  # the job's log lines carry its operation name
        try:
            self._run_claimed(record, worker)
        finally:
            request_id.reset(token)

    def _run_claimed(self, record: JobRecord, worker: str) -> None:
        kind = self._kinds.get(record.kind)
        request_type = kind.request_type if kind else operations_pb2.Operation
        context = JobContext(self._jobs, record, worker, self._lease_s, request_type, self._stop)
        log.info("running %s (%s) for team %s on %s", record.name, record.kind, record.team, worker)
        try:
            if kind is None:
                raise JobFailed(code_pb2.UNIMPLEMENTED, f"no handler for job kind {record.kind!r}")
            with context.heartbeat():
                response = kind.run(context)
            outcome = {"response": response, "state": jobs_pb2.SUCCEEDED}
        except JobCancelled:
            outcome = {"error": (code_pb2.CANCELLED, "cancelled by the client"), "state": jobs_pb2.CANCELLED}
        except LeaseLost:
            log.warning("%s: lease lost to another worker; stopping here", record.name)
            return
        except WorkerStopping:
            try:
                context.release()
                log.info("%s: shutting down; the job is back in the queue", record.name)
            except LeaseLost:
                log.warning("%s: lease lost while giving the job back", record.name)
            return
        except JobFailed as exc:
            outcome = {"error": (exc.code, str(exc)), "state": jobs_pb2.FAILED}
        except ApiError as exc:
            outcome = {"error": (exc.code.value[0], str(exc)), "state": jobs_pb2.FAILED}
        except Exception as exc:
            log.exception("%s failed", record.name)
            outcome = {"error": (code_pb2.INTERNAL, f"job failed: {exc}"), "state": jobs_pb2.FAILED}
        try:
            context.finish(**outcome)
            JOBS_FINISHED.labels(record.kind, jobs_pb2.JobState.Name(outcome["state"])).inc()
        except LeaseLost:
            log.warning("%s: lease lost before the result was written; another worker redoes it", record.name)
