"""Progress reporting from flows to whoever runs them (the CLI installs a Rich bar)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def start(self, description: str, total: int | None) -> None: ...  # None: not known yet
    def grow(self, n: int) -> None: ...  # ``n`` more to do (work selected a page at a time)
    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def start(self, description: str, total: int | None) -> None:
        pass

    def grow(self, n: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


_lock = threading.Lock()
_current: Reporter = _Silent()


def reporter() -> Reporter:
    return _current


@contextmanager
def reporting(target: Reporter) -> Iterator[Reporter]:
    """Send the progress of flows run inside this block (and their task threads) to ``target``."""
    global _current
    with _lock:
        previous, _current = _current, target
    try:
        yield target
    finally:
        with _lock:
            _current = previous
