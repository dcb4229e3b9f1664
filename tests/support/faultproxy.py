"""A reverse proxy on loopback that injects HTTP faults in front of a real server.

Tests put it between a real client (pyarrow's and boto3's S3 clients, the Kubernetes client,
kopf) and a real server (moto's S3 server, kube-apiserver), then tell it which requests to
answer with an error instead of forwarding: e.g. the next three PUTs under a prefix get
`503 SlowDown`. Nothing in the product is patched; the client sees exactly what a flaky
server would send. Responses are streamed, so long-lived Kubernetes watches pass through.

Every request is kept in `proxy.seen`, in the order it arrived, with the order its response
finished, so a test can prove which requests really happened and in which order; a faulted one
also records which local process sent it (its command line, which Ray sets to the task's or
actor's name), so a test can prove that a fault met the process it was meant for.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import ssl
import threading
from dataclasses import dataclass, field

import psutil
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

from support.s3server import free_port

# Hop-by-hop headers are the proxy's own business (RFC 9110 section 7.6.1).
_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}


@dataclass
class Seen:
    """One request as the proxy saw it. `arrived` and `finished` count from 1 over all requests:
    a request whose response finished before another arrived happened before it."""

    arrived: int
    method: str
    path: str  # with the query string
    conditional: bool  # carried If-None-Match or If-Match
    status: int = 0
    finished: int = 0
    faulted: bool = False
    sender: str = ""  # the sending process's command line; faulted requests only

    @property
    def key(self) -> str:
        """The object key in a path-style request, without the bucket or the query."""
        return self.path.split("?", 1)[0].lstrip("/").partition("/")[2]


@dataclass
class Fault:
    """Answer the next `times` requests matching `method` and the `path` regex (searched in the
    path with its query string) with `status`, `body` and `headers`."""

    method: str
    path: str
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    times: int = 1
    injected: int = 0
    hits: list[Seen] = field(default_factory=list)

    def matches(self, method: str, path_qs: str) -> bool:
        return self.injected < self.times and self.method in ("*", method) and re.search(self.path, path_qs) is not None


def s3_error(code: str, status: int, times: int, method: str = "*", path: str = ".") -> Fault:
    """An error as S3 sends it (the XML body its SDKs parse for the code)."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected by the test</Message></Error>"
    ).encode()
    return Fault(method, path, status, body, {"Content-Type": "application/xml"}, times)


def kube_error(reason: str, status: int, times: int, method: str, path: str) -> Fault:
    """An error as kube-apiserver sends it (a `Status` object)."""
    body = (
        f'{{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"{reason}",'
        f'"message":"injected by the test","code":{status}}}'
    ).encode()
    return Fault(method, path, status, body, {"Content-Type": "application/json"}, times)


class FaultProxy:
    def __init__(self, upstream: str, upstream_ssl: ssl.SSLContext | None = None):
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ssl = upstream_ssl
        self._faults: list[Fault] = []
        self.seen: list[Seen] = []
        self._order = itertools.count(1)
        self._senders: dict[int, str] = {}  # client port -> command line
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="faultproxy")
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    # ----------------------------------------------------------------- control, from the test
    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(15)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- the proxy itself
    async def _start(self) -> None:
        self._session = ClientSession(
            connector=TCPConnector(ssl=self._ssl if self._ssl is not None else False),
            timeout=ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._session:  # first, so that streams still open (watches) end
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    def _take_fault(self, seen: Seen) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(seen.method, seen.path):
                    fault.injected += 1
                    fault.hits.append(seen)
                    return fault
        return None

    def _sender(self, request: web.Request) -> str:
        """The command line of the local process on the other end of this connection."""
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if not peer:
            return "?"
        port = peer[1]
        if port not in self._senders:
            owner = next(
                (
                    c.pid
                    for c in psutil.net_connections(kind="inet")
                    if c.laddr and c.laddr.port == port and c.raddr and c.raddr.port == self.port and c.pid
                ),
                None,
            )
            try:
                self._senders[port] = " ".join(psutil.Process(owner).cmdline()) if owner else "?"
            except psutil.Error:
                self._senders[port] = "?"
        return self._senders[port]

    def _finish(self, seen: Seen, status: int) -> None:
        with self._lock:
            seen.status, seen.finished = status, next(self._order)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # read even when answering with a fault, as a server would
        with self._lock:
            seen = Seen(
                next(self._order),
                request.method,
                request.path_qs,
                "If-None-Match" in request.headers or "If-Match" in request.headers,
            )
            self.seen.append(seen)
        fault = self._take_fault(seen)
        if fault is not None:
            seen.faulted, seen.sender = True, self._sender(request)
            self._finish(seen, fault.status)
            return web.Response(status=fault.status, body=fault.body, headers=fault.headers)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
            )
        except OSError as err:  # the server is down: a client sees a bad gateway
            self._finish(seen, 502)
            return web.Response(status=502, text=f"upstream unreachable: {err}")
        # The server has done what was asked once it answers: that is when the request
        # finished, and no client can have seen its answer before.
        self._finish(seen, upstream.status)
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in _HOP:
                    response.headers.add(k, v)
            if upstream.headers.get("Content-Length") is not None:  # HEAD too: S3 sizes come from it
                response.content_length = int(upstream.headers["Content-Length"])
            await response.prepare(request)
            try:
                if request.method != "HEAD":
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                await response.write_eof()
            except (OSError, ClientError):
                # One side went away mid-stream (e.g. a watch when the API server stops): drop
                # the other side's connection too, as the real server's death would.
                if request.transport is not None:
                    request.transport.close()
            return response
