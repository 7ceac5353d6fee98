"""The etcd backend: etcd v3 over gRPC, through aetcd's bindings.

The translation of the `Store` contract into etcd requests is done once, here:
- create = Txn(create_revision(key) == 0, put); update = Txn(mod_revision(key) == expected and the key
  exists, put with prev_kv, else range(key)); delete = Txn(the key exists [and mod_revision == expected],
  delete with prev_kv, else range(key)). A failed compare reads the current value in the same round trip,
  which is what `RevisionMismatch` carries. Every write's revision is its response header's revision.
- list = range over the prefix at one revision, in pages of ``page_size`` keys (the first page fixes the
  revision, so the pages form one snapshot); count = range with count_only.
- watch = one gRPC Watch stream per call, with prev_kv, yielding each response's events as one batch.
  etcd's compaction answer becomes `Compacted`; a DELETE event is rebuilt from the event's prev_kv (last
  value, create revision) and its own mod_revision (the deletion revision).
- compact(R) compacts etcd at R - 1, because etcd compacted at C also drops a DELETE made at C, which a
  watch from C would then miss; so `compacted_revision` is etcd's compaction revision + 1. etcd has no
  request for that revision: it is found by a binary search for the oldest revision a range can still
  read (each probe a count-only range), remembered as a lower bound for the next search. A watch from S
  asks etcd for S - 1 (dropping that extra event), so that etcd refuses it exactly when S is compacted,
  also when someone else compacted etcd.

aetcd's high-level `Client` cannot range at a revision, count, page, or dial several endpoints, and its
watcher hands events over one by one behind a lock; so this module uses aetcd's generated stubs and
messages (``aetcd.rpc``) on a channel of its own. The channel multiplexes every request, so concurrent
callers pipeline: nothing here serializes requests. Several ``http://IP:PORT`` endpoints of one address
family become one channel that fails over between them (gRPC ``pick_first``).

``prefix`` is prepended to every key on the wire and removed from every key read back, so several stores
(or test cases) can share one etcd. etcd that cannot be reached raises `Unavailable`.
"""

from __future__ import annotations

import asyncio
import builtins
import ipaddress
import urllib.parse
from collections.abc import AsyncGenerator
from typing import Any

import grpc
from aetcd import rpc
from aetcd.utils import prefix_range_end

from .interface import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    StorageError,
    Unavailable,
)

_ERR_COMPACTED = "required revision has been compacted"
_ERR_FUTURE = "required revision is a future revision"
_UNAVAILABLE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
})
_MAX_MESSAGE = 64 * 1024 * 1024
_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    # Notice a dead etcd under an idle watch; etcd accepts pings every 5 s or slower.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Come back quickly once etcd is back, instead of gRPC's default backoff of up to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)
_ANY_KEY = b"\x00"  # a range on it answers with the current header, whatever the keys


def channel_target(endpoints: builtins.list[str]) -> str:
    """The gRPC target for etcd client URLs (``http://host:port``; port 2379 when left out).
    One endpoint may be a host name; several must be IP addresses of one family."""
    if not endpoints:
        raise ValueError("no etcd endpoint given")
    addrs: builtins.list[tuple[str, int]] = []
    for endpoint in endpoints:
        url = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"unsupported etcd endpoint {endpoint!r}: expected http://HOST:PORT")
        addrs.append((url.hostname, url.port or 2379))
    versions: set[int] = set()
    for host, _ in addrs:
        try:
            versions.add(ipaddress.ip_address(host).version)
        except ValueError:
            versions.add(0)
    if len(addrs) == 1:
        host, port = addrs[0]
        return f"[{host}]:{port}" if versions == {6} else f"{host}:{port}"
    if versions == {4}:
        return "ipv4:" + ",".join(f"{h}:{p}" for h, p in addrs)
    if versions == {6}:
        return "ipv6:" + ",".join(f"[{h}]:{p}" for h, p in addrs)
    raise ValueError(f"several etcd endpoints must all be IP addresses of one family: {endpoints}")


class EtcdStore:
    """A `Store` on an etcd v3 cluster (see the module docstring)."""

    def __init__(
        self,
        endpoints: builtins.list[str],
        *,
        prefix: str = "",
        request_timeout: float = 10.0,
        page_size: int = 1000,
    ) -> None:
        self.endpoints = list(endpoints)
        self.prefix = prefix
        self.request_timeout = request_timeout
        self.page_size = page_size
        self._target = channel_target(self.endpoints)
        self._prefix = prefix.encode()
        self._channel: Any = None
        self._kv: Any = None
        self._watch: Any = None
        self._closed = False
        self._watches: set[Any] = set()
        self._compacted = 0  # a lower bound of compacted_revision(), known without asking etcd

    async def __aenter__(self) -> EtcdStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the channel and check that etcd answers (`Unavailable` if not)."""
        if self._channel is not None:
            return
        self._closed = False
        self._channel = rpc.insecure_channel(self._target, options=_CHANNEL_OPTIONS)
        self._kv = rpc.KVStub(self._channel)
        self._watch = rpc.WatchStub(self._channel)
        try:
            await self.current_revision()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the channel; open watches end with `Unavailable`."""
        if self._channel is None:
            return
        self._closed = True
        for call in list(self._watches):
            call.cancel()
        channel, self._channel = self._channel, None
        await channel.close()

    # -- plumbing --------------------------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _range(self, prefix: str) -> tuple[bytes, bytes]:
        start = self._key(prefix)
        if not start:
            return _ANY_KEY, _ANY_KEY  # etcd: from "\0" to "\0" is every key
        return start, prefix_range_end(start)

    def _kv_of(self, kv: Any) -> KeyValue:
        return KeyValue(kv.key[len(self._prefix):].decode(), kv.value, kv.create_revision, kv.mod_revision)

    def _stubs(self) -> Any:
        if self._channel is None:
            raise Unavailable("etcd store is closed")
        return self._kv

    def _rpc_error(self, e: grpc.aio.AioRpcError) -> StorageError:
        if e.code() in _UNAVAILABLE_CODES:
            return Unavailable(f"etcd {self._target}: {e.code().name}: {e.details()}")
        return StorageError(f"etcd {self._target}: {e.code().name}: {e.details()}")

    def _closed_under_us(self) -> bool:
        """Whether a CancelledError comes from close() cancelling our gRPC call, not from our caller."""
        task = asyncio.current_task()
        return self._closed and task is not None and not task.cancelling()

    async def _call(self, method: str, request: Any, revision: int = 0) -> Any:
        stub = self._stubs()
        try:
            return await getattr(stub, method)(request, timeout=self.request_timeout)
        except grpc.aio.AioRpcError as e:
            details = e.details() or ""
            if e.code() == grpc.StatusCode.OUT_OF_RANGE and _ERR_COMPACTED in details:
                raise Compacted(revision, await self.compacted_revision()) from None
            if e.code() == grpc.StatusCode.OUT_OF_RANGE and _ERR_FUTURE in details:
                raise FutureRevision(revision, await self.current_revision()) from None
            raise self._rpc_error(e) from e
        except asyncio.CancelledError:
            if self._closed_under_us():
                raise Unavailable("etcd store is closed") from None
            raise

    # -- reads -----------------------------------------------------------------------------------------

    async def current_revision(self) -> int:
        resp = await self._call("Range", rpc.RangeRequest(key=_ANY_KEY, count_only=True))
        return int(resp.header.revision)

    async def compacted_revision(self) -> int:
        """One above etcd's compaction revision (0 when nothing was ever compacted): see `compact`."""
        head = await self.current_revision()
        lo = max(self._compacted - 1, 1)
        if not await self._readable(lo):
            # Invariant: `lo` is compacted away, `hi` is readable (the head always is).
            hi = head
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if await self._readable(mid):
                    hi = mid
                else:
                    lo = mid
            lo = hi
        # `lo` is etcd's compaction revision: the oldest one a range can read.
        self._compacted = max(self._compacted, lo + 1 if lo > 1 else 0)
        return self._compacted

    async def _readable(self, revision: int) -> bool:
        try:
            await self._stubs().Range(
                rpc.RangeRequest(key=_ANY_KEY, revision=revision, count_only=True),
                timeout=self.request_timeout,
            )
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.OUT_OF_RANGE and _ERR_COMPACTED in (e.details() or ""):
                return False
            raise self._rpc_error(e) from e
        return True

    async def get(self, key: str) -> KeyValue | None:
        resp = await self._call("Range", rpc.RangeRequest(key=self._key(key)))
        return self._kv_of(resp.kvs[0]) if resp.kvs else None

    async def list(self, prefix: str, revision: int = 0) -> tuple[builtins.list[KeyValue], int]:
        if 0 < revision < self._compacted:
            # etcd could still read one revision below (see `compact`), but the contract says no.
            raise Compacted(revision, self._compacted)
        start, end = self._range(prefix)
        items: builtins.list[KeyValue] = []
        at = revision
        while True:
            request = rpc.RangeRequest(key=start, range_end=end, revision=at, limit=self.page_size)
            resp = await self._call("Range", request, revision)
            at = at or int(resp.header.revision)
            items.extend(self._kv_of(kv) for kv in resp.kvs)
            if not resp.more or not resp.kvs:
                return items, at
            start = resp.kvs[-1].key + b"\x00"  # the next page starts right after the last key

    async def count(self, prefix: str) -> int:
        start, end = self._range(prefix)
        resp = await self._call("Range", rpc.RangeRequest(key=start, range_end=end, count_only=True))
        return int(resp.count)

    # -- writes ----------------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        k = self._key(key)
        resp = await self._call("Txn", rpc.TxnRequest(
            compare=[_compare_create(k, rpc.Compare.EQUAL)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
        ))
        if not resp.succeeded:
            raise KeyExists(key)
        revision = int(resp.header.revision)
        return KeyValue(key, value, revision, revision)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        k = self._key(key)
        resp = await self._call("Txn", rpc.TxnRequest(
            compare=[_compare_create(k, rpc.Compare.GREATER), _compare_mod(k, expected_revision)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value, prev_kv=True))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        ))
        if not resp.succeeded:
            raise self._write_conflict(key, resp)
        prev = resp.responses[0].response_put.prev_kv
        return KeyValue(key, value, prev.create_revision, int(resp.header.revision))

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        """Delete ``key``; the result is the last value with the deletion revision as ``mod_revision``
        (the ``kv`` of the DELETE event)."""
        k = self._key(key)
        compare = [_compare_create(k, rpc.Compare.GREATER)]
        if expected_revision is not None:
            compare.append(_compare_mod(k, expected_revision))
        resp = await self._call("Txn", rpc.TxnRequest(
            compare=compare,
            success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k, prev_kv=True))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        ))
        if not resp.succeeded:
            raise self._write_conflict(key, resp)
        prev = resp.responses[0].response_delete_range.prev_kvs[0]
        return KeyValue(key, prev.value, prev.create_revision, int(resp.header.revision))

    def _write_conflict(self, key: str, resp: Any) -> StorageError:
        """Why a guarded write's compare failed, from the range run in its failure branch."""
        kvs = resp.responses[0].response_range.kvs
        return RevisionMismatch(key, self._kv_of(kvs[0])) if kvs else KeyNotFound(key)

    # -- watch -----------------------------------------------------------------------------------------

    async def watch(self, prefix: str, start_revision: int) -> AsyncGenerator[builtins.list[Event], None]:
        """Events under ``prefix`` from ``start_revision`` on (0: from the next write), one batch per
        etcd watch response."""
        self._stubs()
        start, end = self._range(prefix)
        call = self._watch.Watch()
        self._watches.add(call)
        next_rev = start_revision
        # Asking etcd for one revision more makes it refuse exactly the start revisions whose history
        # may have lost a DELETE to compaction (see `compact`); the extra event is dropped below.
        etcd_start = start_revision - 1 if start_revision > 1 else start_revision
        try:
            await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=start, range_end=end, start_revision=etcd_start, prev_kv=True,
            )))
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    raise Unavailable(f"etcd {self._target} ended the watch stream")
                if resp.compact_revision:
                    raise Compacted(next_rev, int(resp.compact_revision) + 1)
                if resp.canceled:
                    raise Unavailable(f"etcd {self._target} canceled the watch: {resp.cancel_reason}")
                batch = [self._event(ev) for ev in resp.events if ev.kv.mod_revision >= next_rev]
                if batch:
                    next_rev = batch[-1].revision + 1
                    yield batch
        except grpc.aio.AioRpcError as e:
            raise self._rpc_error(e) from e
        except asyncio.CancelledError:
            if self._closed_under_us():
                raise Unavailable("etcd store is closed") from None
            raise
        finally:
            self._watches.discard(call)
            call.cancel()

    def _event(self, ev: Any) -> Event:
        prev = self._kv_of(ev.prev_kv) if ev.HasField("prev_kv") else None
        if ev.type == rpc.Event.DELETE:
            # etcd's DELETE carries only the key and the deletion revision; the rest is in prev_kv
            # (absent only if that revision was compacted before the watch read it).
            key = ev.kv.key[len(self._prefix):].decode()
            value, created = (prev.value, prev.create_revision) if prev is not None else (b"", 0)
            return Event("DELETE", KeyValue(key, value, created, ev.kv.mod_revision), prev)
        kv = self._kv_of(ev.kv)
        # A create has no previous value, whatever etcd found at the revision before.
        return Event("PUT", kv, None if kv.create_revision == kv.mod_revision else prev)

    # -- compaction ------------------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        """Drop history older than ``revision``; a revision at or below the last compaction is a no-op.

        etcd compacted at C drops a DELETE made at C itself (a key's last version goes when it is a
        tombstone), so a watch from C could miss it. The contract keeps every event from ``revision`` on,
        hence etcd is compacted at ``revision - 1``, and `compacted_revision` reports etcd's + 1."""
        head = await self.current_revision()
        if revision > head:
            raise FutureRevision(revision, head)
        if revision <= max(self._compacted, 1):
            return
        try:
            await self._call("Compact", rpc.CompactionRequest(revision=revision - 1), revision)
        except Compacted:
            return
        self._compacted = revision


def _compare_create(key: bytes, result: Any) -> Any:
    """create_revision(key) <result> 0: EQUAL means absent, GREATER means present."""
    return rpc.Compare(key=key, target=rpc.Compare.CREATE, result=result, create_revision=0)


def _compare_mod(key: bytes, revision: int) -> Any:
    return rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=revision)
