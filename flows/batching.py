"""Batches for Prefect tasks: tens to hundreds of files per task, a bounded number in flight."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Opaque(Generic[T]):
    """A task result Prefect does not look inside. It walks returned lists, dicts and
    dataclasses for futures and states, which costs real time on listings and on batches of
    EXIF-laden records; unwrap with ``.value``. (Inputs use ``prefect...annotations.quote``.)"""

    __slots__ = ("value",)

    def __init__(self, value: T):
        self.value = value


def chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def pipelined(
    batches: Iterator[Any], submit: Callable[[Any], Any], consume: Callable[[Any], None], in_flight: int
) -> None:
    """Submit up to ``in_flight`` batches at once; consume results in order, in this thread.

    ``submit`` returns a Prefect future; ``consume`` gets its result. Consuming in the calling
    thread keeps catalogue writes serial while the next batches are fetched.
    """
    pending: deque = deque()
    batches = iter(batches)
    while True:
        while len(pending) < in_flight and (batch := next(batches, None)) is not None:
            pending.append(submit(batch))
        if not pending:
            return
        consume(pending.popleft().result())
