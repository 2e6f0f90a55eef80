"""RemoteDocument: single-flight, maximum age, back-off after a failure, forced-refetch cooldown.

The fetch is a plain coroutine here; tests/security/test_keys_and_metadata.py pins the
same behaviour through whole logins against the fake IdP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bridge.errors import IdpError, IdpTimeout
from bridge.remote import Reason, RemoteDocument
from tests.clock import FakeClock

URL = "https://idp.test/doc"
MAX_AGE, RETRY_AFTER, REFETCH_INTERVAL = 60.0, 5.0, 15.0


class Source:
    """A remote document: answers ``version-N``, or fails while ``error`` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.error: Exception | None = None
        self.delay = 0.0
        self.gate: asyncio.Event | None = None

    async def fetch(self, url: str) -> str:
        self.calls.append(url)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return f"version-{len(self.calls)}"


def _document(source: Source, clock: FakeClock, reasons: list[Reason]) -> RemoteDocument[str]:
    return RemoteDocument(
        "test document",
        source.fetch,
        max_age=MAX_AGE,
        retry_after=RETRY_AFTER,
        refetch_interval=REFETCH_INTERVAL,
        on_fetched=reasons.append,
        clock=clock,
    )


Scenario = Callable[[RemoteDocument[str], Source, FakeClock, list[Reason]], Awaitable[None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        source, clock = Source(), FakeClock()
        reasons: list[Reason] = []
        document = _document(source, clock, reasons)
        try:
            await scenario(document, source, clock, reasons)
        finally:
            await document.aclose()

    asyncio.run(main())


def test_fresh_copy_is_served_without_asking_again() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        assert await doc.get(URL) == "version-1"
        clock.advance(MAX_AGE - 1)
        assert await doc.get(URL) == "version-1"
        assert source.calls == [URL]
        clock.advance(1)
        assert await doc.get(URL) == "version-2"
        assert reasons == ["initial", "expired"]

    run(scenario)


def test_another_url_is_fetched_at_once() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        await doc.get(URL)
        assert await doc.get(URL + "/moved") == "version-2"
        assert source.calls == [URL, URL + "/moved"]

    run(scenario)


def test_concurrent_first_loads_share_one_fetch() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        source.delay = 0.01
        results = await asyncio.gather(*(doc.get(URL) for _ in range(25)))
        assert results == ["version-1"] * 25
        assert source.calls == [URL]
        assert reasons == ["initial"]

    run(scenario)


def test_concurrent_refreshes_that_fail_share_one_fetch_and_serve_the_copy() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        await doc.get(URL)
        clock.advance(MAX_AGE)
        source.error, source.delay = IdpError("down"), 0.01
        results = await asyncio.gather(*(doc.get(URL) for _ in range(25)))
        assert results == ["version-1"] * 25
        assert source.calls == [URL, URL]

    run(scenario)


def test_a_caller_giving_up_does_not_cancel_the_shared_fetch() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        source.gate = asyncio.Event()
        impatient = asyncio.ensure_future(doc.get(URL))
        patient = asyncio.ensure_future(doc.get(URL))
        await asyncio.sleep(0)
        impatient.cancel()
        source.gate.set()
        assert await patient == "version-1"
        assert impatient.cancelled()
        assert source.calls == [URL]

    run(scenario)


def test_with_no_copy_a_failure_is_raised_again_without_asking_during_the_backoff() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        source.error = IdpTimeout("idp: the discovery call timed out after 10s")
        with pytest.raises(IdpTimeout) as first:
            await doc.get(URL)
        assert first.value.detail == "idp: the discovery call timed out after 10s"
        for _ in range(3):
            with pytest.raises(IdpTimeout) as again:
                await doc.get(URL)
            assert again.value.detail == (
                "idp: the discovery call timed out after 10s (not retried for another 5s)"
            )
        assert source.calls == [URL]
        source.error = None
        clock.advance(RETRY_AFTER)
        assert await doc.get(URL) == "version-2"
        assert reasons == ["initial"]

    run(scenario)


def test_with_a_copy_the_retry_after_the_backoff_runs_behind_the_copy() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        await doc.get(URL)
        clock.advance(MAX_AGE)
        source.error = IdpError("down")
        assert await doc.get(URL) == "version-1"
        clock.advance(RETRY_AFTER - 1)
        assert await doc.get(URL) == "version-1"
        assert len(source.calls) == 2, "not asked during the back-off"

        clock.advance(1)
        source.error, source.gate = None, asyncio.Event()
        assert await doc.get(URL) == "version-1", "served at once, the retry still pending"
        assert await doc.get(URL) == "version-1", "joined the pending retry, no second one"
        await asyncio.sleep(0)
        assert len(source.calls) == 3
        source.gate.set()
        await asyncio.sleep(0.01)
        assert await doc.get(URL) == "version-3"
        assert len(source.calls) == 3
        assert reasons == ["initial", "expired"]

    run(scenario)


def test_forced_refetch_is_rate_limited() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        await doc.get(URL)
        assert await doc.refetch(URL, "unknown_kid") == "version-2"
        assert await doc.refetch(URL, "unknown_kid") is None
        clock.advance(REFETCH_INTERVAL - 1)
        assert await doc.refetch(URL, "signature_mismatch") is None
        clock.advance(1)
        assert await doc.refetch(URL, "signature_mismatch") == "version-3"
        assert len(source.calls) == 3
        assert reasons == ["initial", "unknown_kid", "signature_mismatch"]

    run(scenario)


def test_forced_refetch_is_not_tried_during_the_backoff() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        await doc.get(URL)
        source.error = IdpError("down")
        assert await doc.refetch(URL, "unknown_kid") is None
        clock.advance(REFETCH_INTERVAL)
        assert await doc.refetch(URL, "unknown_kid") is None, "failed, not an exception"
        assert len(source.calls) == 3
        assert await doc.refetch(URL, "unknown_kid") is None
        assert len(source.calls) == 3, "still in the back-off and the cooldown"
        assert doc.value == "version-1"

    run(scenario)


def test_forced_refetch_joins_a_refresh_under_way() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        await doc.get(URL)
        clock.advance(MAX_AGE)
        source.delay = 0.01
        refreshed, refetched = await asyncio.gather(doc.get(URL), doc.refetch(URL, "unknown_kid"))
        assert refreshed == refetched == "version-2"
        assert len(source.calls) == 2
        assert reasons == ["initial", "expired"]

    run(scenario)


def test_closing_cancels_a_refresh_under_way() -> None:
    async def scenario(
        doc: RemoteDocument[str], source: Source, clock: FakeClock, reasons: list[Reason]
    ) -> None:
        await doc.get(URL)
        clock.advance(MAX_AGE)
        source.error = IdpError("down")
        await doc.get(URL)
        clock.advance(RETRY_AFTER)
        source.gate = asyncio.Event()
        assert await doc.get(URL) == "version-1"
        await asyncio.sleep(0)
        await doc.aclose()
        assert len(source.calls) == 3
        assert reasons == ["initial"]

    run(scenario)
