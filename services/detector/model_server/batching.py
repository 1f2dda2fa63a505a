"""Server-side request batching, after TensorFlow Serving's batching parameters.

Concurrent requests are queued and merged along the batch dimension into one model call of at most
`max_batch_size` rows, waiting at most `batch_timeout_micros` for a batch to fill. A request bigger
than `max_batch_size` is split into batch-sized pieces (TF Serving's large-batch splitting).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
from prometheus_client import Histogram

BATCH_ROWS = Histogram("dfp_model_server_batch_rows", "Rows per model call after batching",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))

class _Task:
    __slots__ = ("rows", "future", "results", "pending")

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self.future: Future = Future()
        self.results: dict[int, np.ndarray] = {}
        self.pending = 0


class Batcher:
    """Merges concurrent `submit` calls into batched calls of `run(batch) -> outputs[N]`."""

    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int = 32,
        batch_timeout_micros: int = 2000,
        num_batch_threads: int = 1,
        max_enqueued_batches: int = 1000,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._run = run
        self._max_batch_size = max_batch_size
        self._timeout_s = batch_timeout_micros / 1e6
        self._queue: queue.Queue = queue.Queue(maxsize=max_enqueued_batches * max_batch_size)
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"batcher-{i}", daemon=True) for i in range(num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, rows: np.ndarray) -> Future:
        """Queues `rows` [N, ...]; the future resolves to the outputs for those rows [N, ...]."""
        task = _Task(rows)
        pieces = range(0, len(rows), self._max_batch_size)
        task.pending = len(pieces)
        if task.pending == 0:
            task.future.set_result(np.zeros((0,), np.float32))
            return task.future
        with self._lock:
            if self._closed:
                raise RuntimeError("batcher is shut down")
            for start in pieces:
                try:
                    self._queue.put_nowait((task, start))
                except queue.Full:
                    raise OverflowError("batching queue is full") from None
        return task.future

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._queue.put((None, 0))
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first[0] is None:
                return
            batch = [first]
            size = self._piece_len(first)
            deadline = time.monotonic() + self._timeout_s
            stop = False
            while size < self._max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item[0] is None:
                    stop = True
                    break
                if size + self._piece_len(item) > self._max_batch_size:
                    self._run_batch(batch)
                    batch, size = [item], self._piece_len(item)
                    deadline = time.monotonic() + self._timeout_s
                    continue
                batch.append(item)
                size += self._piece_len(item)
            self._run_batch(batch)
            if stop:
                return

    def _piece_len(self, item) -> int:
        task, start = item
        return min(self._max_batch_size, len(task.rows) - start)

    def _run_batch(self, batch) -> None:
        pieces = [task.rows[start : start + self._max_batch_size] for task, start in batch]
        BATCH_ROWS.observe(sum(len(piece) for piece in pieces))
        try:
            outputs = self._run(np.concatenate(pieces) if len(pieces) > 1 else pieces[0])
        except Exception as exc:  # the model failed: every caller in this batch gets the error
            for task, _ in batch:
                if not task.future.done():
                    task.future.set_exception(exc)
            return
        offset = 0
        for (task, start), piece in zip(batch, pieces):
            # Pieces of one large request may finish on different batch threads.
            with self._lock:
                task.results[start] = outputs[offset : offset + len(piece)]
                task.pending -= 1
                finished = task.pending == 0
            offset += len(piece)
            if finished and not task.future.done():
                ordered = [task.results[k] for k in sorted(task.results)]
                task.future.set_result(np.concatenate(ordered) if len(ordered) > 1 else ordered[0])
