"""google.longrunning.Operations and dfp.v1.JobService over the JobStore."""

from __future__ import annotations

import time

from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2

from dfp.v1 import jobs_pb2_grpc
from gateway.errors import InvalidArgument, abort_on_error, abort_on_error_stream
from gateway.jobs import JobStore
from gateway.auth import TeamResolver

POLL_S = 0.25
DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 300.0


class OperationsServicer(operations_pb2_grpc.OperationsServicer):
    def __init__(self, jobs: JobStore, team_of: TeamResolver):
        self._jobs = jobs
        self._team_of = team_of

    @abort_on_error
    def GetOperation(self, request, context):
        return self._jobs.get(self._team_of(context), request.name).get_operation()

    @abort_on_error
    def ListOperations(self, request, context):
        if request.filter:
            raise InvalidArgument("filter is not supported; leave it empty")
        records, token = self._jobs.list(self._team_of(context), request.page_size, request.page_token)
        return operations_pb2.ListOperationsResponse(
            operations=[r.get_operation() for r in records], next_page_token=token
        )

    @abort_on_error
    def DeleteOperation(self, request, context):
        self._jobs.delete(self._team_of(context), request.name)
        return empty_pb2.Empty()

    @abort_on_error
    def CancelOperation(self, request, context):
        self._jobs.cancel(self._team_of(context), request.name)
        return empty_pb2.Empty()

    @abort_on_error
    def WaitOperation(self, request, context):
        team = self._team_of(context)
        wait_s = request.timeout.ToNanoseconds() / 1e9 if request.HasField("timeout") else DEFAULT_WAIT_S
        if wait_s < 0:
            raise InvalidArgument("timeout must not be negative")
        deadline = time.monotonic() + min(wait_s, MAX_WAIT_S)
        remaining = context.time_remaining()
        if remaining is not None:
            deadline = min(deadline, time.monotonic() + max(0.0, remaining - 0.5))
        while True:
            operation = self._jobs.get(team, request.name).get_operation()
            if operation.done or time.monotonic() >= deadline or not context.is_active():
                return operation
            time.sleep(POLL_S)


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, jobs: JobStore, team_of: TeamResolver):
        self._jobs = jobs
        self._team_of = team_of

    @abort_on_error_stream
    def WatchOperation(self, request, context):
        team = self._team_of(context)
        last = None
        while context.is_active():
            operation = self._jobs.get(team, request.name).get_operation()
            serialized = operation.SerializeToString(deterministic=True)
            if serialized != last:
                last = serialized
                yield operation
            if operation.done:
                return
            time.sleep(POLL_S)
