"""``Client`` (blocking: scripts and notebooks, where Jupyter's own event loop is left
alone) and ``AsyncClient`` (asyncio), their producers and alert watches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import pyarrow as pa

from . import _native
from . import _requests as rq
from ._codec import decode, dumps
from ._requests import ConfigLike, EventLike, Explanation, ProfileLike, Req, RuleLike, Scores
from .errors import ClosedError, native_errors
from .table import Table, concat
from .types import (
    AggregateGroupBy,
    AggregateWindow,
    Alert,
    Association,
    ListEntry,
    ListKind,
    Neighbors,
    Outcome,
    Path,
    ProducerStats,
    PublishResult,
    Relation,
    RelationKey,
    RelationKind,
    RelationsResult,
    Rule,
    RuleList,
    RuleStatus,
    ScoreSnapshot,
    ScoringConfig,
    SimulationResult,
    SubjectView,
    TierDistribution,
    UpsertResult,
)

__all__ = ["AlertWatch", "AsyncAlertWatch", "AsyncClient", "AsyncProducer", "Client", "Producer", "RetryConfig"]

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:50051"
# Rows per Arrow chunk a producer hands over at once: bounds the memory of a big table.
TABLE_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class RetryConfig:
    """Retries of calls that are safe to repeat (reads, publishing, upserts) on UNAVAILABLE:
    ``max_attempts`` in all, waits doubling from ``initial_backoff`` up to ``max_backoff``,
    with jitter."""

    max_attempts: int = 6
    initial_backoff: timedelta = field(default=timedelta(milliseconds=100))
    max_backoff: timedelta = field(default=timedelta(seconds=5))


def _options(**options: Any) -> str:
    return dumps({k: v for k, v in options.items() if v is not None})


def _is_table(events: object) -> bool:
    return hasattr(events, "__arrow_c_stream__") or type(events).__name__ == "DataFrame"


def _arrow_chunks(events: Any) -> Iterator[bytes]:
    """An Arrow table (or anything pyarrow reads as one: a pandas or polars DataFrame, a
    record batch reader) as IPC streams of at most ``TABLE_CHUNK_ROWS`` rows."""
    if type(events).__module__.startswith("pandas"):
        data = pa.Table.from_pandas(events, preserve_index=False)
    else:
        data = pa.table(events)
    for start in range(0, max(data.num_rows, 1), TABLE_CHUNK_ROWS):
        chunk = data.slice(start, TABLE_CHUNK_ROWS)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, chunk.schema) as writer:
            writer.write_table(chunk)
        yield sink.getvalue().to_pybytes()


def _events_json(events: EventLike | Iterable[EventLike]) -> str:
    items = [events] if isinstance(events, Mapping) or hasattr(events, "event_id") else list(events)
    return dumps(items)


def _outcomes(text: str) -> list[Outcome]:
    return [decode(Outcome, o) for o in json.loads(text)]


class Producer:
    """Batches events to the node in the background; ``send`` waits while its queue is full.
    ``close`` (or leaving the ``with`` block) waits for every acknowledgement. Events that
    were not simply accepted are read with ``outcomes()``."""

    def __init__(self, native: _native.NativeProducer) -> None:
        self._native = native

    def send(self, events: Any) -> int:
        """Queues one event (an ``Event`` or a dict), a list of them, or a table of them
        (pyarrow, pandas or polars; see the README for its columns). Returns how many were
        queued; the rest are ``invalid`` outcomes."""
        with native_errors():
            if _is_table(events):
                return sum(self._native.send_table(chunk) for chunk in _arrow_chunks(events))
            return self._native.send(_events_json(events))

    def flush(self) -> None:
        """Waits until everything sent so far is acknowledged."""
        with native_errors():
            self._native.flush()

    def close(self) -> ProducerStats:
        """Flushes and stops; returns the final counts."""
        with native_errors():
            return decode(ProducerStats, json.loads(self._native.close()))

    def stats(self) -> ProducerStats:
        """The counts so far."""
        text = self._native.stats()
        if text is None:
            raise ClosedError("the producer is closed")
        return decode(ProducerStats, json.loads(text))

    def outcomes(self) -> list[Outcome]:
        """Events not simply accepted since the last call, oldest first."""
        return _outcomes(self._native.take_outcomes())

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if not self._native.closed:
            self.close()


class AsyncProducer:
    """``Producer`` for asyncio."""

    def __init__(self, native: _native.NativeProducer) -> None:
        self._native = native

    async def send(self, events: Any) -> int:
        """See ``Producer.send``."""
        with native_errors():
            if _is_table(events):
                n = 0
                for chunk in _arrow_chunks(events):
                    n += await self._native.send_table_async(chunk)
                return n
            return await self._native.send_async(_events_json(events))

    async def flush(self) -> None:
        """See ``Producer.flush``."""
        with native_errors():
            await self._native.flush_async()

    async def close(self) -> ProducerStats:
        """See ``Producer.close``."""
        with native_errors():
            return decode(ProducerStats, json.loads(await self._native.close_async()))

    def stats(self) -> ProducerStats:
        """The counts so far."""
        text = self._native.stats()
        if text is None:
            raise ClosedError("the producer is closed")
        return decode(ProducerStats, json.loads(text))

    def outcomes(self) -> list[Outcome]:
        """See ``Producer.outcomes``."""
        return _outcomes(self._native.take_outcomes())

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if not self._native.closed:
            await self.close()


def _alert(item: tuple[bool, str | None]) -> Alert | None:
    _, text = item
    return None if text is None else decode(Alert, json.loads(text))


class AlertWatch:
    """Alerts as they happen: iterate (blocking until the next one) or call ``next(timeout)``.
    """

    def __init__(self, native: _native.AlertStream) -> None:
        self._native = native
        self.ended = False

    def next(self, timeout: timedelta | float | None = None) -> Alert | None:
        """The next alert, or ``None`` after ``timeout`` (or when the stream ended)."""
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        with native_errors():
            item = self._native.next(seconds)
        self.ended = item[0]
        return _alert(item)

    def __iter__(self) -> Iterator[Alert]:
        while True:
            alert = self.next()
            if alert is None:
                return
            yield alert

    def close(self) -> None:
        """Ends the watch."""
        self._native.close()

    def __enter__(self) -> AlertWatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncAlertWatch:
    """``AlertWatch`` for asyncio: ``async for alert in watch``."""

    def __init__(self, native: _native.AlertStream) -> None:
        self._native = native
        self.ended = False

    async def next(self, timeout: timedelta | float | None = None) -> Alert | None:
        """The next alert, or ``None`` after ``timeout`` (or when the stream ended)."""
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        with native_errors():
            item = await self._native.next_async(seconds)
        self.ended = item[0]
        return _alert(item)

    async def __aiter__(self) -> AsyncIterator[Alert]:
        while True:
            alert = await self.next()
            if alert is None:
                return
            yield alert

    def close(self) -> None:
        """Ends the watch."""
        self._native.close()


def _connect_options(
    timeout: timedelta | None, connect_timeout: timedelta | None, retry: RetryConfig | None,
    keep_alive: timedelta | None, token: str | None, ca_certificate: str | bytes | None,
    tls_domain: str | None, gzip: bool | None,
) -> str:
    ca = ca_certificate.decode() if isinstance(ca_certificate, bytes) else ca_certificate
    return _options(timeout=timeout, connect_timeout=connect_timeout, retry=retry,
                    keep_alive=keep_alive, token=token, ca_certificate=ca,
                    tls_domain=tls_domain, gzip=gzip)


def _producer_options(
    batch_events: int | None, batch_bytes: int | None, linger: timedelta | None,
    queue_events: int | None, in_flight: int | None, retry: RetryConfig | None, transport: str | None,
) -> str:
    return _options(batch_events=batch_events, batch_bytes=batch_bytes, linger=linger,
                    queue_events=queue_events, in_flight=in_flight, retry=retry, transport=transport)


class Client:
    """A blocking connection to a Credence node (it connects at once: a wrong address fails
    here). Calls release the interpreter while they wait and can be interrupted with
    Ctrl-C. Use it as a context manager, or call ``close``.

    ``timeout`` bounds each call; ``retry`` retries calls that are safe to repeat;
    ``token`` is a bearer token; ``ca_certificate`` (PEM) trusts a private CA for
    ``https://`` addresses.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: timedelta | None = None,
        connect_timeout: timedelta | None = None,
        retry: RetryConfig | None = None,
        keep_alive: timedelta | None = None,
        token: str | None = None,
        ca_certificate: str | bytes | None = None,
        tls_domain: str | None = None,
        gzip: bool | None = None,
    ) -> None:
        options = _connect_options(timeout, connect_timeout, retry, keep_alive, token,
                                   ca_certificate, tls_domain, gzip)
        with native_errors():
            self._native: _native.NativeClient | None = _native.NativeClient.connect(url, options)
        self.url = url

    def _client(self) -> _native.NativeClient:
        if self._native is None:
            raise ClosedError("the client is closed")
        return self._native

    def _do(self, req: Req[T]) -> T:
        with native_errors():
            answer = self._client().call(req.method, req.args)
        return req.read(answer)

    def _pages(self, first: Req[Table], next_page: Any) -> Table:
        pages = [self._do(first)]
        while pages[-1].next_page_token:
            pages.append(self._do(next_page(pages[-1].next_page_token)))
        return concat(pages)

    def close(self) -> None:
        """Drops the connection; later calls raise ``ClosedError``."""
        self._native = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # Ingestion

    def publish_events(self, events: Iterable[EventLike]) -> PublishResult:
        """Publishes events in one call; each event's outcome is in the result (a bad event
        is rejected alone, with the reason naming its field)."""
        return self._do(rq.publish_events(events))

    def upsert_profiles(self, profiles: Iterable[ProfileLike]) -> UpsertResult:
        """Creates or replaces profiles."""
        return self._do(rq.upsert_profiles(profiles))

    def producer(
        self, *, batch_events: int | None = None, batch_bytes: int | None = None,
        linger: timedelta | None = None, queue_events: int | None = None,
        in_flight: int | None = None, retry: RetryConfig | None = None,
        transport: str | None = None,
    ) -> Producer:
        """A batching producer (the Rust SDK's) on this connection."""
        options = _producer_options(batch_events, batch_bytes, linger, queue_events, in_flight, retry, transport)
        with native_errors():
            return Producer(self._client().producer(options))

    # Scoring

    def get_score(self, subject_id: str) -> ScoreSnapshot:
        """A subject's score (``NotFound`` if it has none)."""
        return self._do(rq.get_score(subject_id))

    def batch_get_scores(self, subject_ids: Sequence[str]) -> Scores:
        """Several scores at once; ids without a score are listed in ``missing``."""
        return self._do(rq.batch_get_scores(subject_ids))

    def explain_score(
        self, subject_id: str, *, start: datetime | None = None, end: datetime | None = None,
        page_size: int = 0, page_token: str = "",
    ) -> Explanation:
        """A subject's score and every change that made it: rule, version, delta, reason."""
        return self._do(rq.explain_score(subject_id, start, end, page_size, page_token))

    def put_rule(self, rule: RuleLike) -> Rule:
        """Stores a rule as its next version; returns it as stored."""
        return self._do(rq.put_rule(rule))

    def get_rule(self, rule_id: str, version: int | None = None) -> Rule:
        """A rule (its latest version unless ``version`` is given)."""
        return self._do(rq.get_rule(rule_id, version))

    def list_rules(
        self, *, status: RuleStatus | None = None, event_type: str | None = None,
        all_versions: bool = False, page_size: int = 0, page_token: str = "",
    ) -> RuleList:
        """The rules, optionally filtered."""
        return self._do(rq.list_rules(status, event_type, all_versions, page_size, page_token))

    def set_rule_status(self, rule_id: str, status: RuleStatus) -> Rule:
        """Activates, drafts or retires a rule."""
        return self._do(rq.set_rule_status(rule_id, status))

    def get_config(self, version: int | None = None) -> ScoringConfig:
        """The scoring config (the current one unless ``version`` is given)."""
        return self._do(rq.get_config(version))

    def put_config(self, config: ConfigLike) -> ScoringConfig:
        """Stores a new config version; returns it as stored."""
        return self._do(rq.put_config(config))

    def simulate(
        self, rules: Iterable[RuleLike], config: ConfigLike | None, events: Iterable[EventLike],
        *, profiles: Iterable[ProfileLike] = (), lists: Iterable[ListEntry | Mapping[str, Any]] = (),
        associations: Mapping[str, float] | None = None,
    ) -> SimulationResult:
        """Scores ``events`` with ``rules`` and ``config`` on the node without storing
        anything (``credence.simulate`` does the same locally)."""
        return self._do(rq.simulate(rq.simulation(rules, config, events, profiles, lists, associations)))

    def put_list_entry(self, entry: ListEntry | Mapping[str, Any]) -> ListEntry:
        """Puts a subject on the block or allow list."""
        return self._do(rq.put_list_entry(entry))

    def remove_list_entry(self, subject_id: str, kind: ListKind) -> bool:
        """Takes a subject off a list; ``False`` if it was not on it."""
        return self._do(rq.remove_list_entry(subject_id, kind))

    def list_list_entries(
        self, *, kind: ListKind | None = None, subject_id: str | None = None,
        include_expired: bool = False, page_size: int = 0, page_token: str = "",
    ) -> Table:
        """Entries of the block and allow lists."""
        return self._do(rq.list_list_entries(kind, subject_id, include_expired, page_size, page_token))

    def watch_alerts(self, subject_ids: Sequence[str] = (), new_tiers: Sequence[str] = ()) -> AlertWatch:
        """Alerts from now on (a subject crossing an alert threshold or changing tier),
        only for ``subject_ids`` and ``new_tiers`` when given."""
        with native_errors():
            return AlertWatch(self._client().watch_alerts(list(subject_ids), list(new_tiers)))

    # Query

    def get_profile(self, subject_id: str) -> SubjectView:
        """A subject's profile and score."""
        return self._do(rq.get_profile(subject_id))

    def list_subjects(
        self, *, region: str | None = None, tier: str | None = None,
        min_score: float | None = None, max_score: float | None = None,
        page_size: int = 0, page_token: str = "", all_pages: bool = False,
    ) -> Table:
        """Subjects and their scores, a page at a time (``all_pages`` follows the cursors)."""
        def page(token: str) -> Req[Table]:
            return rq.list_subjects(region, tier, min_score, max_score, page_size, token)
        return self._pages(page(page_token), page) if all_pages else self._do(page(page_token))

    def get_score_history(
        self, subject_id: str, *, start: datetime | None = None, end: datetime | None = None,
        page_size: int = 0, page_token: str = "", all_pages: bool = False,
    ) -> Table:
        """A subject's score over time."""
        def page(token: str) -> Req[Table]:
            return rq.get_score_history(subject_id, start, end, page_size, token)
        return self._pages(page(page_token), page) if all_pages else self._do(page(page_token))

    def list_events(
        self, *, subject_id: str | None = None, event_type: str | None = None,
        start: datetime | None = None, end: datetime | None = None,
        page_size: int = 0, page_token: str = "", all_pages: bool = False,
    ) -> Table:
        """Stored events, newest first."""
        def page(token: str) -> Req[Table]:
            return rq.list_events(subject_id, event_type, start, end, page_size, token)
        return self._pages(page(page_token), page) if all_pages else self._do(page(page_token))

    def get_tier_distribution(self, region: str | None = None) -> TierDistribution:
        """Subjects per tier."""
        return self._do(rq.get_tier_distribution(region))

    def get_aggregates(
        self, window: AggregateWindow, group_by: AggregateGroupBy, start: datetime, end: datetime,
        *, subject_id: str | None = None, region: str | None = None, event_type: str | None = None,
        page_size: int = 0, page_token: str = "", all_pages: bool = False,
    ) -> Table:
        """Events and score changes per hour or day, per subject, region or event type."""
        def page(token: str) -> Req[Table]:
            return rq.get_aggregates(window, group_by, start, end, subject_id, region,
                                     event_type, page_size, token)
        return self._pages(page(page_token), page) if all_pages else self._do(page(page_token))

    def run_analytics(self, sql: str, *, max_rows: int | None = None, timeout: timedelta | None = None) -> Table:
        """One read-only SQL statement over the node's analytics views (``events``,
        ``score_changes``, ``snapshots``...)."""
        return self._do(rq.run_analytics(sql, max_rows, timeout))

    # Graph

    def put_relations(self, relations: Iterable[Relation | Mapping[str, Any]]) -> RelationsResult:
        """Creates or updates relations."""
        return self._do(rq.put_relations(relations))

    def remove_relations(self, keys: Iterable[RelationKey | Mapping[str, Any]]) -> int:
        """Removes relations; returns how many existed."""
        return self._do(rq.remove_relations(keys))

    def get_neighbors(
        self, subject_id: str, *, depth: int = 1, kinds: Sequence[RelationKind] = (), limit: int = 0
    ) -> Neighbors:
        """Subjects within ``depth`` hops."""
        return self._do(rq.get_neighbors(subject_id, depth, kinds, limit))

    def find_path(
        self, from_subject_id: str, to_subject_id: str, *, max_depth: int = 0,
        kinds: Sequence[RelationKind] = (),
    ) -> Path:
        """The shortest path between two subjects."""
        return self._do(rq.find_path(from_subject_id, to_subject_id, max_depth, kinds))

    def get_association(
        self, subject_id: str, *, depth: int = 0, kinds: Sequence[RelationKind] = ()
    ) -> Association:
        """How a subject's neighbourhood scores."""
        return self._do(rq.get_association(subject_id, depth, kinds))


class AsyncClient:
    """``Client`` for asyncio: ``client = await AsyncClient.connect(url)`` or
    ``async with AsyncClient.connect(url) as client``; every method is a coroutine."""

    def __init__(self, native: _native.NativeClient, url: str) -> None:
        self._native: _native.NativeClient | None = native
        self.url = url

    @classmethod
    async def connect(
        cls, url: str = DEFAULT_URL, *, timeout: timedelta | None = None,
        connect_timeout: timedelta | None = None, retry: RetryConfig | None = None,
        keep_alive: timedelta | None = None, token: str | None = None,
        ca_certificate: str | bytes | None = None, tls_domain: str | None = None,
        gzip: bool | None = None,
    ) -> AsyncClient:
        """Connects (see ``Client`` for the options)."""
        options = _connect_options(timeout, connect_timeout, retry, keep_alive, token,
                                   ca_certificate, tls_domain, gzip)
        with native_errors():
            native = await _native.NativeClient.connect_async(url, options)
        return cls(native, url)

    def _client(self) -> _native.NativeClient:
        if self._native is None:
            raise ClosedError("the client is closed")
        return self._native

    async def _do(self, req: Req[T]) -> T:
        with native_errors():
            answer = await self._client().call_async(req.method, req.args)
        return req.read(answer)

    async def _pages(self, first: Req[Table], next_page: Any) -> Table:
        pages = [await self._do(first)]
        while pages[-1].next_page_token:
            pages.append(await self._do(next_page(pages[-1].next_page_token)))
        return concat(pages)

    async def close(self) -> None:
        """Drops the connection."""
        self._native = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def publish_events(self, events: Iterable[EventLike]) -> PublishResult:
        """See ``Client.publish_events``."""
        return await self._do(rq.publish_events(events))

    async def upsert_profiles(self, profiles: Iterable[ProfileLike]) -> UpsertResult:
        """See ``Client.upsert_profiles``."""
        return await self._do(rq.upsert_profiles(profiles))

    async def producer(
        self, *, batch_events: int | None = None, batch_bytes: int | None = None,
        linger: timedelta | None = None, queue_events: int | None = None,
        in_flight: int | None = None, retry: RetryConfig | None = None,
        transport: str | None = None,
    ) -> AsyncProducer:
        """See ``Client.producer``."""
        options = _producer_options(batch_events, batch_bytes, linger, queue_events, in_flight, retry, transport)
        with native_errors():
            return AsyncProducer(await self._client().producer_async(options))

    async def get_score(self, subject_id: str) -> ScoreSnapshot:
        """See ``Client.get_score``."""
        return await self._do(rq.get_score(subject_id))

    async def batch_get_scores(self, subject_ids: Sequence[str]) -> Scores:
        """See ``Client.batch_get_scores``."""
        return await self._do(rq.batch_get_scores(subject_ids))

    async def explain_score(
        self, subject_id: str, *, start: datetime | None = None, end: datetime | None = None,
        page_size: int = 0, page_token: str = "",
    ) -> Explanation:
        """See ``Client.explain_score``."""
        return await self._do(rq.explain_score(subject_id, start, end, page_size, page_token))

    async def put_rule(self, rule: RuleLike) -> Rule:
        """See ``Client.put_rule``."""
        return await self._do(rq.put_rule(rule))

    async def get_rule(self, rule_id: str, version: int | None = None) -> Rule:
        """See ``Client.get_rule``."""
        return await self._do(rq.get_rule(rule_id, version))

    async def list_rules(
        self, *, status: RuleStatus | None = None, event_type: str | None = None,
        all_versions: bool = False, page_size: int = 0, page_token: str = "",
    ) -> RuleList:
        """See ``Client.list_rules``."""
        return await self._do(rq.list_rules(status, event_type, all_versions, page_size, page_token))

    async def set_rule_status(self, rule_id: str, status: RuleStatus) -> Rule:
        """See ``Client.set_rule_status``."""
        return await self._do(rq.set_rule_status(rule_id, status))

    async def get_config(self, version: int | None = None) -> ScoringConfig:
        """See ``Client.get_config``."""
        return await self._do(rq.get_config(version))

    async def put_config(self, config: ConfigLike) -> ScoringConfig:
        """See ``Client.put_config``."""
        return await self._do(rq.put_config(config))

    async def simulate(
        self, rules: Iterable[RuleLike], config: ConfigLike | None, events: Iterable[EventLike],
        *, profiles: Iterable[ProfileLike] = (), lists: Iterable[ListEntry | Mapping[str, Any]] = (),
        associations: Mapping[str, float] | None = None,
    ) -> SimulationResult:
        """See ``Client.simulate``."""
        return await self._do(rq.simulate(rq.simulation(rules, config, events, profiles, lists, associations)))

    async def put_list_entry(self, entry: ListEntry | Mapping[str, Any]) -> ListEntry:
        """See ``Client.put_list_entry``."""
        return await self._do(rq.put_list_entry(entry))

    async def remove_list_entry(self, subject_id: str, kind: ListKind) -> bool:
        """See ``Client.remove_list_entry``."""
        return await self._do(rq.remove_list_entry(subject_id, kind))

    async def list_list_entries(
        self, *, kind: ListKind | None = None, subject_id: str | None = None,
        include_expired: bool = False, page_size: int = 0, page_token: str = "",
    ) -> Table:
        """See ``Client.list_list_entries``."""
        return await self._do(rq.list_list_entries(kind, subject_id, include_expired, page_size, page_token))

    async def watch_alerts(self, subject_ids: Sequence[str] = (), new_tiers: Sequence[str] = ()) -> AsyncAlertWatch:
        """See ``Client.watch_alerts``."""
        with native_errors():
            native = await self._client().watch_alerts_async(list(subject_ids), list(new_tiers))
        return AsyncAlertWatch(native)

    async def get_profile(self, subject_id: str) -> SubjectView:
        """See ``Client.get_profile``."""
        return await self._do(rq.get_profile(subject_id))

    async def list_subjects(
        self, *, region: str | None = None, tier: str | None = None,
        min_score: float | None = None, max_score: float | None = None,
        page_size: int = 0, page_token: str = "", all_pages: bool = False,
    ) -> Table:
        """See ``Client.list_subjects``."""
        def page(token: str) -> Req[Table]:
            return rq.list_subjects(region, tier, min_score, max_score, page_size, token)
        return await (self._pages(page(page_token), page) if all_pages else self._do(page(page_token)))

    async def get_score_history(
        self, subject_id: str, *, start: datetime | None = None, end: datetime | None = None,
        page_size: int = 0, page_token: str = "", all_pages: bool = False,
    ) -> Table:
        """See ``Client.get_score_history``."""
        def page(token: str) -> Req[Table]:
            return rq.get_score_history(subject_id, start, end, page_size, token)
        return await (self._pages(page(page_token), page) if all_pages else self._do(page(page_token)))

    async def list_events(
        self, *, subject_id: str | None = None, event_type: str | None = None,
        start: datetime | None = None, end: datetime | None = None,
        page_size: int = 0, page_token: str = "", all_pages: bool = False,
    ) -> Table:
        """See ``Client.list_events``."""
        def page(token: str) -> Req[Table]:
            return rq.list_events(subject_id, event_type, start, end, page_size, token)
        return await (self._pages(page(page_token), page) if all_pages else self._do(page(page_token)))

    async def get_tier_distribution(self, region: str | None = None) -> TierDistribution:
        """See ``Client.get_tier_distribution``."""
        return await self._do(rq.get_tier_distribution(region))

    async def get_aggregates(
        self, window: AggregateWindow, group_by: AggregateGroupBy, start: datetime, end: datetime,
        *, subject_id: str | None = None, region: str | None = None, event_type: str | None = None,
        page_size: int = 0, page_token: str = "", all_pages: bool = False,
    ) -> Table:
        """See ``Client.get_aggregates``."""
        def page(token: str) -> Req[Table]:
            return rq.get_aggregates(window, group_by, start, end, subject_id, region,
                                     event_type, page_size, token)
        return await (self._pages(page(page_token), page) if all_pages else self._do(page(page_token)))

    async def run_analytics(self, sql: str, *, max_rows: int | None = None, timeout: timedelta | None = None) -> Table:
        """See ``Client.run_analytics``."""
        return await self._do(rq.run_analytics(sql, max_rows, timeout))

    async def put_relations(self, relations: Iterable[Relation | Mapping[str, Any]]) -> RelationsResult:
        """See ``Client.put_relations``."""
        return await self._do(rq.put_relations(relations))

    async def remove_relations(self, keys: Iterable[RelationKey | Mapping[str, Any]]) -> int:
        """See ``Client.remove_relations``."""
        return await self._do(rq.remove_relations(keys))

    async def get_neighbors(
        self, subject_id: str, *, depth: int = 1, kinds: Sequence[RelationKind] = (), limit: int = 0
    ) -> Neighbors:
        """See ``Client.get_neighbors``."""
        return await self._do(rq.get_neighbors(subject_id, depth, kinds, limit))

    async def find_path(
        self, from_subject_id: str, to_subject_id: str, *, max_depth: int = 0,
        kinds: Sequence[RelationKind] = (),
    ) -> Path:
        """See ``Client.find_path``."""
        return await self._do(rq.find_path(from_subject_id, to_subject_id, max_depth, kinds))

    async def get_association(
        self, subject_id: str, *, depth: int = 0, kinds: Sequence[RelationKind] = ()
    ) -> Association:
        """See ``Client.get_association``."""
        return await self._do(rq.get_association(subject_id, depth, kinds))

