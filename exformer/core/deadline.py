"""A request's deadline, checked by the passes between chunks (path points, ablation batches,
generated tokens), so that a request stops with a 503 the worker answers itself instead of
running into TorchServe's `responseTimeout`, which kills the worker and fails the requests
queued behind it.

The deadline is scoped to one request (a context variable, set by the serving layer around
each batch); a notebook or a test that sets none runs without one.

>>> with deadline(None):
...     check("path points", 3, 10)  # no deadline: never stops
>>> with deadline(0.0):
...     check("path points", 3, 10)  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
exformer.contract.errors.DeadlineError: stopped after 0.0 s at this worker's deadline (0 s, the archive's
deadline_seconds) with 3 of 10 path points done
"""

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from ..contract.errors import DeadlineError


@dataclass(frozen=True)
class Deadline:
    seconds: float
    started: float = field(default_factory=time.monotonic)

    def spent(self) -> float:
        return time.monotonic() - self.started


_current: ContextVar[Deadline | None] = ContextVar("exformer_deadline", default=None)


@contextmanager
def deadline(seconds: float | None):
    """Within: the passes stop `seconds` after entering (None: never)."""
    token = _current.set(None if seconds is None else Deadline(seconds))
    try:
        yield
    finally:
        _current.reset(token)


def check(what: str, done: int, total: int | None = None) -> None:
    """Stop (DeadlineError) if the current request has run past its deadline; `done` of `total`
    `what` is how far it got."""
    current = _current.get()
    if current is None:
        return
    spent = current.spent()
    if spent >= current.seconds:
        of = f" of {total}" if total is not None else ""
        raise DeadlineError(round(spent, 1), current.seconds, f"{done}{of} {what} done")
