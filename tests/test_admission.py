"""Admission control: a bounded number of calls run, a bounded queue waits, the rest are turned away
at once with a retry hint that the platform's client follows."""

import threading
import time
from concurrent import futures

import grpc
import pytest

from dfp.admission import PUSHBACK_KEY, AdmissionInterceptor, AdmissionQueue, Overloaded, retry_delay_s
from dfp.client import _call

METHOD = "/test.Slow/Call"


@pytest.fixture()
def slow_server():
    """A real gRPC server whose one method holds its slot for the seconds the request names."""
    running = {"now": 0, "most": 0}
    lock = threading.Lock()

    def call(request: bytes, context) -> bytes:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(float(request.decode()))
        with lock:
            running["now"] -= 1
        return b"done"

    def start(max_active, max_queued, max_wait_s):
        queue = AdmissionQueue(max_active, max_queued, max_wait_s, name="test")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), interceptors=[AdmissionInterceptor(queue, "test server")])
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "test.Slow", {"Call": grpc.unary_unary_rpc_method_handler(call)})])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return channel.unary_unary(METHOD), running

    servers, channels = [], []
    yield start
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop(0)


def test_calls_past_the_running_and_queued_bound_are_refused_at_once_with_a_retry_hint(slow_server):
    method, running = slow_server(max_active=2, max_queued=2, max_wait_s=5.0)
    outcomes = []

    def caller():
        started = time.monotonic()
        try:
            method(b"0.6", timeout=10)
            outcomes.append(("ok", time.monotonic() - started, None))
        except grpc.RpcError as exc:
            outcomes.append((exc.code(), time.monotonic() - started, exc))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert running["most"] == 2
    assert sorted(str(o[0]) for o in outcomes).count("ok") == 4
    refused = [o for o in outcomes if o[0] == grpc.StatusCode.UNAVAILABLE]
    assert len(refused) == 4
    for _, seconds, error in refused:
        assert seconds < 0.5, "a refusal is answered at once, not after waiting"
        assert "at capacity" in error.details() and "retry in" in error.details()
        assert retry_delay_s(error) > 0
        assert int(dict(error.trailing_metadata())[PUSHBACK_KEY]) > 0


def test_a_queued_call_is_refused_when_it_has_waited_its_longest(slow_server):
    method, _ = slow_server(max_active=1, max_queued=4, max_wait_s=0.2)
    holder = threading.Thread(target=method, args=(b"1.0",), kwargs={"timeout": 10})
    holder.start()
    time.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        method(b"0", timeout=10)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert 0.15 < time.monotonic() - started < 0.8
    holder.join()


def test_the_client_sends_a_refused_call_again_after_the_hint_and_it_succeeds(slow_server):
    method, _ = slow_server(max_active=1, max_queued=0, max_wait_s=0.0)
    holder = threading.Thread(target=method, args=(b"0.5",), kwargs={"timeout": 10})
    holder.start()
    time.sleep(0.1)
    with pytest.raises(grpc.RpcError) as refused:
        method(b"0", timeout=10)
    assert retry_delay_s(refused.value) is not None
    assert _call(method, b"0", timeout=10) == b"done"
    holder.join()


def test_errors_other_than_a_refusal_carry_no_retry_hint(slow_server):
    method, _ = slow_server(max_active=1, max_queued=0, max_wait_s=0.0)
    with pytest.raises(grpc.RpcError) as error:
        method(b"not a number", timeout=10)
    assert error.value.code() == grpc.StatusCode.UNKNOWN
    assert retry_delay_s(error.value) is None


def test_queued_calls_take_freed_slots_oldest_first_and_never_exceed_the_bound():
    queue = AdmissionQueue(max_active=2, max_queued=8, max_wait_s=10.0, name="test")
    held = [queue.acquire(1.0), queue.acquire(1.0)]
    admitted, started = [], []

    def wait(number):
        admitted_at = queue.acquire(10.0)
        admitted.append(number)
        queue.release(admitted_at)

    for number in range(6):
        thread = threading.Thread(target=wait, args=(number,))
        thread.start()
        started.append(thread)
        while len(queue._waiters) < number + 1:  # each waiter queued before the next one starts
            time.sleep(0.001)
    assert admitted == [] and queue._active == 2
    queue.release(held.pop())
    for thread in started:
        thread.join(5.0)
    assert admitted == list(range(6))
    assert queue._active == 1 and not queue._waiters
    queue.release(held.pop())
    assert queue._active == 0


def test_a_waiter_that_times_out_leaves_the_queue_and_its_slot_goes_to_the_next():
    queue = AdmissionQueue(max_active=1, max_queued=4, max_wait_s=10.0, name="test")
    holder = queue.acquire(1.0)
    with pytest.raises(Overloaded):
        queue.acquire(0.05)
    assert not queue._waiters
    queue.release(holder)
    assert queue._active == 0
    queue.release(queue.acquire(0.05))
    assert queue._active == 0
