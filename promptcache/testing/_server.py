"""The emulator's HTTP server: routing, faults, latency, ground truth.

A stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive (the SDKs pool connections),
bound to loopback unless told otherwise. Every answer — including malformed input, unknown
routes and internal errors — is in the provider's own error shape, never a traceback.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from promptcache.testing import _anthropic, _openai
from promptcache.testing._cache import Fingerprint, PrefixStore
from promptcache.testing._clock import Clock, SystemClock
from promptcache.testing._outcome import Outcome
from promptcache.testing._redirect import AsyncRedirectTransport, RedirectTransport
from promptcache.testing._reply import ApiError, fresh_id
from promptcache.testing._routing import Router
from promptcache.testing._strict import StrictServer, StrictStyle, refusal
from promptcache.testing._types import Fault, FaultKind, LatencyModel, OpenAISettings, ServedCall

__all__ = ["Emulator"]

_ROUTES: dict[str, str] = {
    "/v1/chat/completions": "openai.chat",
    "/chat/completions": "openai.chat",
    "/v1/responses": "openai.responses",
    "/responses": "openai.responses",
    "/v1/responses/input_tokens": "openai.input_tokens",
    "/responses/input_tokens": "openai.input_tokens",
    "/v1/messages": "anthropic.messages",
    "/v1/messages/count_tokens": "anthropic.count_tokens",
}

# Longest first, so ``/responses/input_tokens`` wins over ``/responses``.
_SUFFIXES = [
    *sorted((r for r in _ROUTES if not r.startswith("/v1/")), key=len, reverse=True),
    "/v1/messages/count_tokens",
    "/v1/messages",
]

_FAULT_STATUS: dict[tuple[str, FaultKind], tuple[int, str, str]] = {
    ("openai", "rate_limit"): (429, "requests", "Rate limit reached (emulated). Retry later."),
    ("openai", "server_error"): (
        500,
        "server_error",
        "The server had an error while processing your request (emulated).",
    ),
    ("openai", "overloaded"): (503, "server_error", "The engine is currently overloaded."),
    ("anthropic", "rate_limit"): (429, "rate_limit_error", "Rate limit exceeded (emulated)."),
    ("anthropic", "server_error"): (500, "api_error", "Internal server error (emulated)."),
    ("anthropic", "overloaded"): (529, "overloaded_error", "Overloaded (emulated)."),
}


class _ArmedFault:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault, remaining: int) -> None:
        self.fault = fault
        self.remaining = remaining


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The stdlib default backlog of 5 drops connections when an async client opens a burst of
    # them, and the SDK's retry then stalls for a second: real provider front ends don't.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-request (pool closed, test ended) is normal here: stay quiet.
        return


def _error_body(provider: str, err: ApiError) -> dict[str, Any]:
    if provider == "anthropic":
        return {
            "type": "error",
            "error": {"type": err.type, "message": err.message},
            "request_id": fresh_id("req_"),
        }
    return {
        "error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}
    }


def _route(path: str) -> str | None:
    """Name the API of a path, also behind a gateway's prefix (``/v1/openai/chat/completions``)."""
    api = _ROUTES.get(path)
    if api is not None:
        return api
    for suffix in _SUFFIXES:
        if path.endswith(suffix):
            return _ROUTES[suffix]
    return None


def _provider_of(api: str | None, path: str, headers: Any) -> str:
    if api is not None:
        return api.split(".", 1)[0]
    if "anthropic-version" in headers or "x-api-key" in headers or "/messages" in path:
        return "anthropic"
    return "openai"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "promptcache-emulator"
    sys_version = ""
    server: _Server

    # -- plumbing -------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
        # Small SSE frames must not wait for Nagle's algorithm.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: the ground truth is in Emulator.calls, not on stderr.
        return

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, orjson.dumps(value), headers)

    # -- verbs ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        try:
            self._handle(method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # never a traceback on the wire
            with contextlib.suppress(Exception):
                err = ApiError(
                    500,
                    f"emulator internal error: {type(exc).__name__}: {exc}",
                    type="server_error",
                )
                self._send_json(500, _error_body("openai", err))

    def _handle(self, method: str) -> None:
        emu = self.server.emulator
        started = time.perf_counter()
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        raw = self._read_body() if method in ("POST", "PUT", "PATCH") else b""
        if path.startswith("/_emulator"):
            self._control(method, path, parse_qs(split.query), raw)
            return
        api = _route(path)
        provider = _provider_of(api, path, self.headers)
        now = emu.clock.now()
        if api is None or method != "POST":
            kind = "not_found_error" if provider == "anthropic" else "invalid_request_error"
            err = ApiError(404, f"Invalid URL ({method} {self.path})", type=kind)
            if provider == "anthropic":
                err.message = "Not Found"
            self._fail(provider, err, api or "unknown", "", None, path, now, started)
            return
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
            msg = (
                "There was an error parsing the body: invalid JSON"
                if provider == "anthropic"
                else "We could not parse the JSON body of your request. (HINT: This likely "
                "means you aren't using your HTTP library correctly. The OpenAI API expects a "
                "JSON payload, but what was sent was not valid JSON.)"
            )
            self._fail(provider, ApiError(400, msg), api, "", None, path, now, started)
            return
        if body is None:
            self._fail(
                provider,
                ApiError(400, "Request body is empty; expected a JSON object."),
                api,
                "",
                None,
                path,
                now,
                started,
            )
            return
        model = str(body.get("model") or "") if isinstance(body, dict) else ""
        stream = bool(body.get("stream")) if isinstance(body, dict) else False
        record_body = body if isinstance(body, dict) and emu.record_bodies else None
        fault = emu._take_fault(api, model)
        if fault is not None and fault.kind != "stream_cut":
            status, kind, message = _FAULT_STATUS[(provider, fault.kind)]
            headers: dict[str, str] = {}
            if fault.retry_after is not None:
                headers["retry-after"] = _seconds(fault.retry_after)
                headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
            err = ApiError(
                status,
                message,
                type=kind,
                code="rate_limit_exceeded" if status == 429 and provider == "openai" else None,
            )
            self._fail(
                provider,
                err,
                api,
                model,
                record_body,
                path,
                now,
                started,
                stream,
                headers=headers,
                fault=fault.kind,
            )
            return
        refused = emu._refusal(api, body, model, self._client_host())
        if refused is not None:  # a strict server: unknown fields get its own error body
            status, kind, payload = refused
            err = ApiError(status, "", type=kind)
            self._fail(
                provider, err, api, model, record_body, path, now, started, stream, payload=payload
            )
            return
        try:
            with emu._engine_lock:
                outcome = emu._serve(api, body, now)
        except ApiError as err:
            self._fail(provider, err, api, model, record_body, path, now, started, stream)
            return
        except Exception as exc:  # an emulator bug or input it did not foresee: still no traceback
            kind = "api_error" if provider == "anthropic" else "server_error"
            bug = ApiError(500, f"emulator could not process the request: {exc!r}", type=kind)
            self._fail(provider, bug, api, model, record_body, path, now, started, stream)
            return
        handling_ms = (time.perf_counter() - started) * 1000
        ttft = 0.0
        latency = emu.latency
        b = outcome.billing
        if latency is not None:
            ttft = latency.ttft(b.uncached_input_tokens + b.cache_write_tokens, b.cache_read_tokens)
            pause = ttft if outcome.stream else ttft + b.output_tokens * latency.per_output_token_s
            time.sleep(pause)
        emu._record(
            ServedCall(
                api=api,
                model=outcome.model,
                stream=outcome.stream,
                status=outcome.status,
                request_body=record_body,
                input_tokens=b.input_tokens,
                uncached_input_tokens=b.uncached_input_tokens,
                cache_read_tokens=b.cache_read_tokens,
                cache_write_tokens=b.cache_write_tokens,
                cache_write_by_ttl=dict(b.cache_write_by_ttl),
                output_tokens=b.output_tokens,
                reasoning_tokens=b.reasoning_tokens,
                response_id=outcome.response_id,
                path=path,
                host=self._client_host(),
                started=now,
                prompt_cache_key=outcome.prompt_cache_key,
                fault=fault.kind if fault else None,
                handling_ms=handling_ms,
                ttft_s=ttft,
                machine=outcome.machine,
            )
        )
        self._reply(provider, outcome, fault, latency, handling_ms)

    def _client_host(self) -> str:
        return str(self.headers.get("x-emulator-original-host") or self.headers.get("host") or "")

    def _reply(
        self,
        provider: str,
        outcome: Outcome,
        fault: Fault | None,
        latency: LatencyModel | None,
        handling_ms: float,
    ) -> None:
        headers = {"openai-processing-ms": str(int(handling_ms)), "x-request-id": fresh_id("req_")}
        if provider == "anthropic":
            headers = {"request-id": fresh_id("req_")}
        if not outcome.stream:
            data = orjson.dumps(outcome.body)
            if fault is not None:  # stream_cut on a JSON answer: truncated body, then hang up
                self.send_response(outcome.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self._hang_up()
                return
            self._send(outcome.status, data, headers)
            return
        self.send_response(outcome.status)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        frames = outcome.frames
        cut = fault.after_events if fault is not None else None
        if cut is not None:
            frames = frames[:cut]
        if latency is None:
            self.wfile.write(b"".join(_chunk(f) for f in frames))
        else:
            for frame, is_delta in zip(frames, outcome.deltas, strict=False):
                if is_delta:
                    time.sleep(latency.per_output_token_s)
                self.wfile.write(_chunk(frame))
        if cut is not None:
            self._hang_up()
            return
        self.wfile.write(b"0\r\n\r\n")

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _fail(
        self,
        provider: str,
        err: ApiError,
        api: str,
        model: str,
        body: dict[str, Any] | None,
        path: str,
        now: float,
        started: float,
        stream: bool = False,
        *,
        headers: dict[str, str] | None = None,
        fault: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        emu = self.server.emulator
        emu._record(
            ServedCall(
                api=api,
                model=model,
                stream=stream,
                status=err.status,
                request_body=body,
                path=path,
                host=self._client_host(),
                started=now,
                error_type=err.type,
                fault=fault,
                handling_ms=(time.perf_counter() - started) * 1000,
            )
        )
        hdrs = dict(headers or {})
        hdrs["x-should-retry"] = (
            "true" if err.status in (408, 409, 429) or err.status >= 500 else "false"
        )
        self._send_json(err.status, payload or _error_body(provider, err), hdrs)

    # -- control endpoints ----------------------------------------------------------------

    def _control(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        emu = self.server.emulator
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if path == "/_emulator/calls" and method == "GET":
            with_bodies = query.get("bodies", ["1"])[0] not in ("0", "false")
            calls = [c.to_json() for c in emu.calls]
            if not with_bodies:
                for c in calls:
                    c["request_body"] = None
            self._send_json(200, calls)
        elif path == "/_emulator/health":
            self._send_json(200, {"ok": True, "calls": len(emu.calls), "now": emu.clock.now()})
        elif path == "/_emulator/reset" and method == "POST":
            emu.reset()
            self._send_json(200, {"ok": True})
        elif path == "/_emulator/clock/advance" and method == "POST":
            advance: Callable[[float], float] | None = getattr(emu.clock, "advance", None)
            if advance is None:
                self._send_json(400, {"error": {"message": "this clock cannot be advanced"}})
                return
            self._send_json(200, {"now": advance(float(body.get("seconds", 0)))})
        elif path == "/_emulator/faults" and method == "POST":
            try:
                fault = Fault(
                    kind=body["kind"],
                    retry_after=body.get("retry_after", 1.0),
                    after_events=int(body.get("after_events", 3)),
                    api=body.get("api"),
                    model=body.get("model"),
                )
                emu.inject(fault, times=int(body.get("times", 1)))
            except (KeyError, ValueError, TypeError) as exc:
                self._send_json(400, {"error": {"message": f"bad fault: {exc}"}})
                return
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": {"message": f"unknown control endpoint {path}"}})


def _chunk(frame: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(frame), frame)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Emulator:
    """An offline OpenAI + Anthropic API server on loopback that applies their caching rules.

    Use it as a context manager (or call :meth:`start` / :meth:`close`)::

        with Emulator(clock=FakeClock()) as emu:
            client = openai.OpenAI(base_url=emu.openai_base_url, api_key="x")
            anthropic_client = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x")

    Args:
        host: Interface to bind; loopback by default.
        port: TCP port; 0 picks a free one.
        clock: Time source for cache TTLs (a :class:`FakeClock` in tests); wall clock if omitted.
        latency: Optional :class:`LatencyModel`; no simulated latency by default.
        record_bodies: Keep each request body in :attr:`calls` (turn off for huge benchmarks).
        strict: Refuse request fields an OpenAI-compatible server would not know, with that
            server's error body: a :class:`StrictServer`, or just its style (``"pydantic"``,
            ``"openai"``, ``"vllm"``, ``"litellm"``, ``"tgi"``). Settable later as ``emu.strict``.
        openai: :class:`OpenAISettings`: overflow routing above 15 requests a minute per prefix
            and key, ``in_memory`` lifetime, Zero Data Retention default retention.

    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        latency: LatencyModel | None = None,
        record_bodies: bool = True,
        strict: StrictServer | StrictStyle | None = None,
        openai: OpenAISettings | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.clock: Any = clock if clock is not None else SystemClock()
        self.latency = latency
        self.record_bodies = record_bodies
        self.strict: StrictServer | StrictStyle | None = strict
        self.openai = openai if openai is not None else OpenAISettings()
        self._store = PrefixStore(
            lifetimes={"in_memory": self.openai.in_memory_idle_s},
            caps={"in_memory": self.openai.in_memory_max_s},
        )
        self._router = Router(self.openai)
        self._history: dict[str, list[Any]] = {}
        self._fingerprints: dict[str, Fingerprint] = {}
        self._calls: list[ServedCall] = []
        self._faults: list[_ArmedFault] = []
        self._lock = threading.Lock()
        self._engine_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"<Emulator {where} calls={len(self._calls)}>"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve in a background thread; returns ``self``."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"promptcache-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and drop open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with server.connections_lock:
            conns = list(server.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    stop = close

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (used by ``promptcache emulate``)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (no path)."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI``: ``http://HOST:PORT/v1``."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic``: ``http://HOST:PORT``."""
        return self.base_url

    def transport(self, **transport_options: Any) -> RedirectTransport:
        """Return an httpx2 transport that sends every request here, whatever its host.

        Lets a test keep the SDK's production base URL (or a gateway's) the way real apps do::

            client = openai.OpenAI(api_key="k", http_client=openai.DefaultHttpxClient(
                transport=emu.transport()))

        The emulator records the host the SDK addressed in :attr:`ServedCall.host`; paths behind a
        gateway prefix (``/v1/openai/chat/completions``) are routed by their suffix.
        """
        return RedirectTransport(self.base_url, **transport_options)

    def async_transport(self, **transport_options: Any) -> AsyncRedirectTransport:
        """Return the async twin of :meth:`transport`, for ``AsyncOpenAI``/``AsyncAnthropic``."""
        return AsyncRedirectTransport(self.base_url, **transport_options)

    # -- ground truth, state, faults --------------------------------------------------------

    @property
    def calls(self) -> list[ServedCall]:
        """Every request served so far, in order (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def last_call(self) -> ServedCall:
        """The most recent served call."""
        with self._lock:
            if not self._calls:
                raise LookupError("no call served yet")
            return self._calls[-1]

    def reset(self) -> None:
        """Forget served calls, the prompt cache, stored responses and pending faults."""
        with self._lock:
            self._calls.clear()
            self._faults.clear()
        with self._engine_lock:
            self._store.clear()
            self._router.clear()
            self._history.clear()
            self._fingerprints.clear()

    def clear_calls(self) -> None:
        """Forget served calls only (the prompt cache stays warm)."""
        with self._lock:
            self._calls.clear()

    def inject(
        self,
        fault: Fault | FaultKind,
        *,
        times: int = 1,
        retry_after: float | None = None,
        after_events: int | None = None,
        api: str | None = None,
        model: str | None = None,
    ) -> None:
        """Make the next ``times`` matching requests fail with ``fault``.

        ``fault`` is a :class:`Fault` or its kind (``"rate_limit"``, ``"server_error"``,
        ``"overloaded"``, ``"stream_cut"``); keyword arguments fill in or override its fields.
        """
        if isinstance(fault, str):
            fault = Fault(fault)
        changes: dict[str, Any] = {}
        if retry_after is not None:
            changes["retry_after"] = retry_after
        if after_events is not None:
            changes["after_events"] = after_events
        if api is not None:
            changes["api"] = api
        if model is not None:
            changes["model"] = model
        if changes:
            from dataclasses import replace

            fault = replace(fault, **changes)
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(_ArmedFault(fault, times))

    def _take_fault(self, api: str, model: str) -> Fault | None:
        with self._lock:
            for armed in self._faults:
                if armed.fault.matches(api, model):
                    armed.remaining -= 1
                    if armed.remaining <= 0:
                        self._faults.remove(armed)
                    return armed.fault
        return None

    def _record(self, call: ServedCall) -> None:
        with self._lock:
            self._calls.append(call)
        with self._engine_lock:
            while len(self._fingerprints) > 4096:  # diagnostics only look one turn back
                del self._fingerprints[next(iter(self._fingerprints))]

    def _refusal(
        self, api: str, body: Any, model: str, host: str
    ) -> tuple[int, str, dict[str, Any]] | None:
        strict: StrictServer | StrictStyle | None = self.strict
        if isinstance(strict, str):  # ``emu.strict = "tgi"`` works like the constructor's form
            strict = StrictServer(style=strict)
        if strict is None or not api.startswith("openai.") or not isinstance(body, dict):
            return None
        return refusal(strict, api, body, model) if strict.applies(host) else None

    def _serve(self, api: str, body: Any, now: float) -> Outcome:
        if api == "openai.chat":
            return _openai.chat_completions(body, self._store, now, self._router)
        if api == "openai.responses":
            return _openai.responses(
                body, self._store, now, self._history, self._fingerprints, self._router
            )
        if api == "openai.input_tokens":
            return _openai.input_tokens(body)
        if api == "anthropic.messages":
            return _anthropic.messages(body, self._store, now, self._fingerprints)
        return _anthropic.count_tokens(body)
