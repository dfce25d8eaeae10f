"""What keeps the server up under slow or greedy clients, below the routes.

- `GuardedH11Protocol` (uvicorn's h11 protocol, extended): a connection must finish its request
  headers within `header_timeout` seconds of opening (or of its previous response), else it gets
  408 and is closed; connections past `max_connections` get 503 and are closed at once. This
  replaces uvicorn's `limit_concurrency`, which counts idle connections too, so that 150 slow
  clients turned every request, /healthz included, into a 503.
- `RequestGuard` (ASGI middleware): a request body must arrive whole within `body_timeout`
  seconds (408 otherwise) and within `max_body_bytes` (413), checked before the multipart parser
  buffers anything. Bodies are read before a request enters the inference queue, so a slow
  sender never holds a worker or a network slot.
- `PixelBudget`: decoded pixels in flight across all requests; past it a request is refused
  with 503 (retry later) before it decodes anything.
- `release_memory()`: hands freed heap back to the OS after a big decode (glibc only).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import threading

from uvicorn.protocols.http.h11_impl import H11Protocol

from impasto.errors import ImpastoError


def _raw_response(status: int, reason: str, message: str, extra: bytes = b"") -> bytes:
    body = json.dumps({"error": message, "status": status}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n").encode() + extra + b"\r\n" + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header read timeout and a connection cap (see module doc).
    Configure with `configured(header_timeout, max_connections)`."""

    header_timeout: float = 10.0
    max_connections: int = 512

    @classmethod
    def configured(cls, header_timeout: float, max_connections: int) -> type:
        return type("GuardedH11Protocol", (cls,), {"header_timeout": header_timeout,
                                                   "max_connections": max_connections})

    def connection_made(self, transport) -> None:
        self._header_timer = None
        self._waiting_after = None
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(_raw_response(503, "Service Unavailable",
                                          "too many connections; retry shortly", b"retry-after: 1\r\n"))
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        """Start the clock for the next request's headers (the current cycle is the last one)."""
        self._disarm()
        self._waiting_after = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.cycle is self._waiting_after and not self.transport.is_closing():
            self.transport.write(_raw_response(
                408, "Request Timeout", f"request headers not received within {self.header_timeout:g} s"))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is not None and self.cycle is not self._waiting_after:
            self._disarm()  # the headers are in: the body has its own limit (RequestGuard)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # keep-alive: the next request's headers are on the clock too

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


async def send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "status": status}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: refuse bodies over `limit` bytes with 413 (from Content-Length when given,
    else while streaming) and bodies that take longer than `body_timeout` s with 408."""

    def __init__(self, app, limit: int, body_timeout: float = 60.0):
        self.app, self.limit, self.body_timeout = app, limit, body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                too_big = False
            if too_big:
                return await send_json(send, 413, f"request body over the limit of {self.limit} bytes")
        loop = asyncio.get_running_loop()
        state = {"received": 0, "responded": False, "deadline": loop.time() + self.body_timeout, "done": False}

        async def refuse(status: int, message: str):
            state["responded"] = True
            await send_json(send, status, message)
            return {"type": "http.disconnect"}

        async def guarded_receive():
            if state["responded"]:
                return {"type": "http.disconnect"}
            if state["done"]:
                return await receive()  # the body is in: only a disconnect can follow
            try:
                msg = await asyncio.wait_for(receive(), max(0.0, state["deadline"] - loop.time()))
            except asyncio.TimeoutError:
                return await refuse(408, f"request body not received within {self.body_timeout:g} s")
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                if state["received"] > self.limit:
                    return await refuse(413, f"request body over the limit of {self.limit} bytes")
                if not msg.get("more_body", False):
                    state["done"] = True
            return msg

        async def guarded_send(msg):
            if not state["responded"]:
                await send(msg)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if not state["responded"]:
                raise


class PixelBudget:
    """Decoded pixels in flight, across requests. `take(n)` refuses with 503 past the budget."""

    def __init__(self, max_pixels: int):
        self.max_pixels = max_pixels
        self.in_use = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> "_Held":
        with self._lock:
            if self.in_use + n > self.max_pixels:
                raise ImpastoError("the server is decoding too many large images at once; retry shortly", 503)
            self.in_use += n
        return _Held(self, n)

    def give(self, n: int) -> None:
        with self._lock:
            self.in_use -= n


class _Held:
    def __init__(self, budget: PixelBudget, n: int):
        self.budget, self.n = budget, n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.budget.give(self.n)


_libc = None


def tune_allocator() -> None:
    """glibc: a fixed mmap threshold, so that big decode buffers are mapped and unmapped instead
    of fragmenting the heap (the dynamic threshold climbs after the first big free)."""
    global _libc
    try:
        name = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(name) if name else None
        if _libc is not None and hasattr(_libc, "mallopt"):
            _libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB
    except OSError:
        _libc = None


def release_memory() -> None:
    """Return freed heap pages to the OS (glibc malloc_trim); a no-op elsewhere."""
    if _libc is not None and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)
