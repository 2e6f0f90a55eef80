"""One remote document (discovery, a JWKS) kept fresh for many concurrent readers.

Modelled on panva's ``jose`` remote JWKS: one pending fetch shared by every
caller (single-flight), a maximum age after which the copy is refreshed, and a
cooldown between forced refetches (a token naming a key we don't know). Two
additions for an IdP that is down: the last good copy keeps serving, and after
a failure nothing asks again for ``retry_after`` seconds; once that has passed,
the retry runs behind the cached copy instead of holding the caller.

The fetch itself (HTTP, its deadline, parsing and validation) is the owner's
callable, so this class knows nothing of OpenID Connect.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Literal, TypeVar

from bridge.errors import BridgeError

log = logging.getLogger("bridge.remote")

T = TypeVar("T")

#: Why a document was fetched: the bounded label set of the refresh metric.
Reason = Literal["initial", "expired", "unknown_kid", "signature_mismatch"]


class RemoteDocument(Generic[T]):
    """The cached, parsed copy of one remote document and the policy that refreshes it.

    ``fetch(url)`` loads and validates the document and raises a
    :class:`~bridge.errors.BridgeError` when it cannot; it must bound its own
    duration (the provider's timeout), since every waiting caller shares it.
    """

    def __init__(
        self,
        what: str,
        fetch: Callable[[str], Awaitable[T]],
        *,
        max_age: float,
        retry_after: float,
        refetch_interval: float,
        on_fetched: Callable[[Reason], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.max_age = max_age
        self.retry_after = retry_after
        self.refetch_interval = refetch_interval
        #: Monotonic seconds; injectable so tests move time instead of sleeping.
        self.clock = clock
        self._fetch = fetch
        self._on_fetched = on_fetched
        self._value: T | None = None
        self._url = ""
        self._fetched_at = 0.0
        self._error: BridgeError | None = None
        self._failed_at = 0.0
        self._refetched_at: float | None = None
        self._pending: asyncio.Task[T] | None = None
        self._pending_url = ""

    @property
    def value(self) -> T | None:
        """The last good copy, however old; None until one was loaded."""
        return self._value

    async def get(self, url: str) -> T:
        """The document at ``url``: the cached copy while fresh, else a shared refresh.

        While the source is failing, the cached copy serves without a new request
        for ``retry_after`` seconds; with no copy, the last error is raised again.
        """
        now = self.clock()
        value = self._value
        if value is not None and url == self._url and now - self._fetched_at < self.max_age:
            return value
        error = self._error
        if error is not None and now - self._failed_at < self.retry_after:
            if value is not None:
                return value
            raise self._again(error, now)
        reason: Reason = "initial" if value is None else "expired"
        if value is not None and error is not None:
            # The source is known to be down: retry, but let nobody wait for it.
            self._start(url, reason)
            return value
        try:
            return await self._join(url, reason)
        except BridgeError:
            if value is None:
                raise
            return value

    async def refetch(self, url: str, reason: Reason) -> T | None:
        """A forced refetch (a key we don't know), at most once per ``refetch_interval``.

        None when it is not allowed yet, or when it failed (the failure is logged).
        """
        now = self.clock()
        if self._refetched_at is not None and now - self._refetched_at < self.refetch_interval:
            return None
        if self._error is not None and now - self._failed_at < self.retry_after:
            return None
        self._refetched_at = now
        try:
            return await self._join(url, reason)
        except BridgeError:
            return None

    async def aclose(self) -> None:
        """Cancel a refresh still under way (one started behind the cached copy)."""
        task, self._pending = self._pending, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # --- single flight -------------------------------------------------------------

    def _start(self, url: str, reason: Reason) -> asyncio.Task[T]:
        """The fetch under way for ``url``, or a new one: never two at a time."""
        loop = asyncio.get_running_loop()
        task = self._pending
        if task is None or task.done() or task.get_loop() is not loop or self._pending_url != url:
            task = loop.create_task(self._load(url, reason))
            task.add_done_callback(self._settled)
            self._pending, self._pending_url = task, url
        return task

    async def _join(self, url: str, reason: Reason) -> T:
        # Shielded: a caller that gives up (a client gone away) must not cancel the
        # fetch the other callers are waiting for.
        return await asyncio.shield(self._start(url, reason))

    def _settled(self, task: asyncio.Task[T]) -> None:
        if self._pending is task:
            self._pending = None
        if not task.cancelled():
            task.exception()  # retrieved here: a refresh nobody awaited must not warn

    async def _load(self, url: str, reason: Reason) -> T:
        try:
            value = await self._fetch(url)
        except BridgeError as exc:
            self._error, self._failed_at = exc, self.clock()
            if self._value is not None:
                log.warning(
                    "%s refresh failed, keeping the cached copy for now: %s", self.what, exc.detail
                )
            raise
        self._value, self._url, self._fetched_at = value, url, self.clock()
        self._error = None
        if self._on_fetched is not None:
            self._on_fetched(reason)
        return value

    def _again(self, error: BridgeError, now: float) -> BridgeError:
        """The last failure once more, saying when the source will next be asked."""
        again = copy.copy(error)
        again.detail = (
            f"{error.detail} (not retried for another "
            f"{max(0.0, self.retry_after - (now - self._failed_at)):.0f}s)"
        )
        again.args = (again.detail,)
        return again
