"""`Prefetch`: an iterator run in a background thread a bounded queue ahead of its consumer.

The pipeline decodes and detects faces this way while the encoder works; exceptions cross to the
consumer, and stopping early stops (and closes) the producer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from typing import Any

__all__ = ["Prefetch"]


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class Prefetch:
    """Runs `items` in a background thread, at most `depth` items ahead of the consumer.

    Iterate it like `items`. Exceptions from `items` are re-raised in the consumer; `close()` (also
    called when the consumer stops early or fails) stops the thread and closes `items`. `ready()`
    says how many items are waiting, so the consumer can act while the producer is still busy.
    """

    def __init__(self, items: Generator[Any, None, None], depth: int) -> None:
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._done = False
        self._exhausted = threading.Event()
        self._thread = threading.Thread(target=self._work, name="emoclip-decode", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
            else:
                self._exhausted.set()
                self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(_Failure(exc))
        finally:
            self._items.close()

    def ready(self) -> int:
        """Items produced and not yet taken (0 while the producer is still working on the next)."""
        return self._queue.qsize()

    def exhausted(self) -> bool:
        """Every item has been produced: what `ready` counts is all that is left."""
        return self._exhausted.is_set()

    def __iter__(self) -> Prefetch:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.exc
        return item

    def close(self) -> None:
        """Stop the producer thread and wait for it (it closes `items`). Safe to call more than once."""
        self._done = True
        self._stop.set()
        self._thread.join()
