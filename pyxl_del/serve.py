"""The local decision service: `pyxl-del serve` (optional extra ``pyxl_del[serve]``: FastAPI and uvicorn).

Endpoints: POST /v1/decisions (one `Application`, or ``{"applications": [...]}``), GET /v1/policy, GET /healthz,
and the OpenAPI docs (/docs, /openapi.json). Requests and answers are the pydantic models of pyxl_del.decision.decide, the
same the Python API and =DEL_DECIDE use, and a decision is `DecisionEngine.evaluate`'s.

* Every path but /healthz needs the API key in the ``X-API-Key`` header, compared in constant time
  (hmac.compare_digest), before any of the body is read: a request without it gets 401 and its connection is
  closed. The key comes from the environment variable [decide] api_key_env or the file [decide] api_key_file;
  never from config.toml itself, which is copied into report workbooks.
* The server binds to loopback; another address only when asked explicitly (``allow_remote``: the service speaks
  plain HTTP). Bodies over [decide] max_body_bytes get 413. A connection whose request line and headers do not
  arrive within [decide] header_timeout seconds is closed, a body that does not arrive within [decide]
  body_timeout gets 408: a slow or idle client cannot hold connections open.
* Bad input gets 422 naming the field and the reason (unknown segments included), never a 500 or a traceback.
* Every decision is appended to the request log ([decide] request_log, JSON Lines): request id, application,
  decision and policy version; each policy the service loads is logged there too, so any answer can be
  reproduced from the log and the twin's data. The log is rotated by size ([decide] request_log_max_bytes,
  keeping request_log_backups old files), and each new file starts with the policy in force.
* The policy reloads when config.toml changes (`pyxl-del apply` rewrites its [policy] section): a watcher thread
  checks the file every [decide] reload_seconds and, once a change has held for one check (an edit caught
  half-written is never served; a file that has lost its [policy] section, as one copied slowly in place has for a
  while, is not loaded, and GET /v1/policy says why), builds a new immutable snapshot (policy, twin, engine) and
  swaps it in with one assignment. A request reads the snapshot once, so requests in flight finish on the policy they started with. A
  config that does not load leaves the running policy in place (GET /v1/policy reports why).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Discriminator, Tag
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from pyxl_del import __version__
from pyxl_del.decision.decide import (
    Application,
    ApplicationBatch,
    Decision,
    DecisionBatch,
    DecisionEngine,
    DecisionInputError,
    applied_engine,
    config_folder,
    default_data,
    with_config,
)
from pyxl_del.decision.policy import Policy
from pyxl_del.decision.twin import Twin, fit_twin
from pyxl_del.engine.config import Config, load_config
from pyxl_del.engine.errors import InputError, describe_error, read_text

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
OPEN_PATHS = frozenset({"/healthz"})
MAX_PROBLEMS = 100  # problems listed in one 422
THREADED_BATCH = 256  # larger batches run off the event loop so single decisions keep their latency
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ServeError(OSError):
    """The service cannot start as configured (no key, a port in use, ...); the message says why."""


def _kind(body: Any) -> str:
    return "batch" if isinstance(body, dict) and "applications" in body else "single"


DecisionRequest = Annotated[Annotated[Application, Tag("single")] | Annotated[ApplicationBatch, Tag("batch")],
                            Discriminator(_kind)]


class PolicyInfo(BaseModel):
    """GET /v1/policy: the policy decisions are made under now, and where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_version: str
    policy: Policy
    segments: list[str]
    loaded_at: str
    config: str | None
    data: str
    reload_error: str | None = None
    caveat: str = ""  # "ILLUSTRATIVE: ..." when the policy's prices and values rest on default economics


class Health(BaseModel):
    status: Literal["ok", "degraded"] = "ok"
    policy_version: str
    problem: str | None = None  # degraded: why (the request log cannot be written, so no decision is served)


class LoadedPolicy(BaseModel):
    """The request log's line for a policy the service starts deciding under."""

    event: Literal["policy"] = "policy"
    time: str
    policy_version: str
    policy: Policy
    config: str | None
    data: str


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ----------------------------------------------------------------------------------------------- state


@dataclass(frozen=True, eq=False)
class Snapshot:
    """What one request decides with; replaced whole, never changed."""

    engine: DecisionEngine
    loaded_at: str


class RequestLog:
    """Append-only JSON Lines; one write per request, under a lock (requests are served from several threads).

    Rotated by size: when a write would take the file past ``max_bytes`` it becomes ``<name>.1`` (``.1`` becomes
    ``.2``, ..., and the oldest beyond ``backups`` goes), and the new file starts with the policy line in force, so
    each file can be read on its own."""

    def __init__(self, path: Path | None, *, max_bytes: int = 100_000_000, backups: int = 10):
        self.path = path
        self.max_bytes, self.backups = max_bytes, backups
        self._lock = threading.Lock()
        self._file = None
        self._policy_line: bytes = b""
        self.failure: str | None = None  # why the last write failed (a full disk), until one succeeds
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered: a line that cannot be written all is cut off at once (`_append`), not left in a buffer
            # that a later write flushed, logging decisions whose requests had got a 500.
            self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - held open for the service's life

    def write(self, lines: list[str], *, policy: bool = False) -> None:
        """Append ``lines``; ``policy``: they are the line of a policy now in force (repeated after a rotation)."""
        if self._file is None or not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        with self._lock:
            if policy:
                self._policy_line = data
            if self._file.tell() > 0 and self._file.tell() + len(data) > self.max_bytes:
                self._rotate()
            self._append(data)  # a line per decision is on disk before its answer leaves

    def _append(self, data: bytes) -> None:
        """Write ``data`` whole, or nothing: a part left by a full disk would be a line of JSON cut short, or read
        as a decision never answered."""
        start = self._file.tell()
        view = memoryview(data)
        try:
            while view:
                view = view[self._file.write(view):]
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._file.truncate(start)
            self.failure = f"the request log {self.path} cannot be written ({exc.strerror or exc})"
            log.error("%s: answering 500 until it can", self.failure)
            raise
        self.failure = None

    def _rotate(self) -> None:
        self._file.close()
        numbered = [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.backups + 1)]
        numbered[-1].unlink(missing_ok=True)
        for older, newer in zip(reversed(numbered[1:]), reversed(numbered[:-1]), strict=True):
            if newer.exists():
                os.replace(newer, older)
        os.replace(self.path, numbered[0])
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        if self._policy_line:
            self._append(self._policy_line)
        log.info("request log rotated: %s -> %s", self.path, numbered[0])

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class PolicySource:
    """The service's current snapshot, built from config.toml and the twin's data, and rebuilt when the file
    changes (`check`, called by the watcher thread `start` runs)."""

    def __init__(self, config_path: Path | None, data: Any = None, request_log: RequestLog | None = None):
        self.config_path = config_path
        self.request_log = request_log or RequestLog(None)
        self.reload_error: str | None = None
        self._data_arg = data
        self._stamp = self._stat()
        self._settling: tuple | None = None  # a changed stamp seen once, read when the next check sees it again
        self._has_policy = self._policy_written()
        config = self._config()
        self.data_label = ""
        self._twin: Twin = fit_twin(self._data(config), config)
        self.snapshot = self._build(self._twin)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _config(self) -> Config:
        return load_config(self.config_path) if self.config_path is not None else Config()

    def _policy_written(self) -> bool:
        """Whether the config file holds a [policy] section (a file that does not parse: False; loading it says why)."""
        if self.config_path is None:
            return False
        try:
            return "policy" in tomllib.loads(read_text(self.config_path, "config"))
        except (ValueError, OSError):
            return False

    def _data(self, config: Config):
        """The panel the twin is fitted on (the one given, else [decide] data or the scored sample), labelled."""
        data = self._data_arg if self._data_arg is not None else default_data(config, self.config_path)
        if isinstance(data, (str, Path)):
            self.data_label = str(data)
        else:
            self.data_label = "a DataFrame" if self._data_arg is not None else "the scored sample"
        return data

    def _stat(self) -> tuple | None:
        try:
            st = self.config_path.stat() if self.config_path is not None else None
        except OSError:
            return None
        return None if st is None else (st.st_mtime_ns, st.st_size, st.st_ino)

    def _build(self, twin: Twin) -> Snapshot:
        engine = applied_engine(twin)
        snapshot = Snapshot(engine=engine, loaded_at=_now())
        self.request_log.write([LoadedPolicy(time=snapshot.loaded_at, policy_version=engine.version,
                                             policy=engine.policy, config=self.config_label,
                                             data=self.data_label).model_dump_json()], policy=True)
        log.info("deciding under policy %s", engine.version)
        return snapshot

    @property
    def config_label(self) -> str | None:
        return None if self.config_path is None else str(self.config_path)

    def check(self) -> bool:
        """Reload when the config file changed and has stayed the same since the previous check; True when a new
        snapshot is in place.

        An editor that truncates and rewrites in place can be caught between the two: the half-written file may
        still parse (the text before [policy] is a valid config with the default policy) and would be served.
        Waiting for the same stamp on two checks in a row reads the file only once it has settled."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            self._settling = None
            return False
        if stamp != self._settling:
            self._settling = stamp
            return False
        self._stamp, self._settling = stamp, None
        if self._has_policy and not self._policy_written():
            # A file written slowly in place (a download, a copy over the network) settles for a check with its
            # first part only: a valid config whose policy is the default, with no cut-offs. Served, it approved
            # what the policy declines. A policy removed on purpose takes a restart.
            self.reload_error = (f"{self.config_path} changed and has no [policy] section now (still being "
                                 f"written?): still deciding under policy {self.snapshot.engine.version}; write the "
                                 f"file whole (save it elsewhere, then rename it over), or restart the service to "
                                 f"serve the default policy")
            log.error("%s", self.reload_error)
            return False
        try:
            config = self._config()
            try:
                twin = with_config(self._twin, config)
            except ValueError:  # more than the policy changed: the chains depend on it
                twin = fit_twin(self._data(config), config)
            snapshot = self._build(twin)
        except (ValueError, OSError) as exc:
            self.reload_error = describe_error(exc, one_line=True)
            log.error("config %s changed but does not load; still deciding under policy %s: %s",
                      self.config_path, self.snapshot.engine.version, self.reload_error)
            return False
        old = self.snapshot.engine.version
        self._twin, self.snapshot, self.reload_error = twin, snapshot, None
        self._has_policy = self._policy_written()
        log.info("policy reloaded from %s: %s -> %s", self.config_path, old, snapshot.engine.version)
        return True

    def start(self, interval: float) -> None:
        if self.config_path is None or self._thread is not None:
            return

        def watch():
            while not self._stop.wait(interval):
                self.check()

        self._thread = threading.Thread(target=watch, name="pyxl_del-policy-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


# ----------------------------------------------------------------------------------------------- the app


def _json(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


def _problem(loc, msg: str, kind: str) -> dict:
    """One 422 entry; the tags that tell a single application from a batch are left out of the location."""
    loc = [p for p in loc if p not in ("single", "batch")]
    parts = loc[1:] if loc[:1] == ["body"] else loc
    field = "body" if kind == "json_invalid" or not parts else ".".join(map(str, parts))
    return {"loc": loc, "field": field, "msg": msg, "type": kind}


class Guard:
    """ASGI middleware in front of everything: request id, API key, body size and time. A request without the key
    or too large never reaches parsing, and its body is not read: the answer closes the connection."""

    def __init__(self, app, api_key: str, max_body_bytes: int, body_timeout: float = 30.0):
        self.app = app
        self.key = api_key.encode("utf-8")
        self.max_body = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                       (REQUEST_ID_HEADER.lower().encode(), request_id.encode())]
            await send(message)

        async def reply(status: int, detail: str, extra: tuple = ()):
            # Every refusal closes the connection: the server then reads none of a body that is still coming.
            body = json.dumps({"detail": detail, "request_id": request_id}).encode()
            await send_with_id({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode()),
                                            (b"connection", b"close"), *extra]})
            await send_with_id({"type": "http.response.body", "body": body})

        if scope["path"] not in OPEN_PATHS:
            key = headers.get(API_KEY_HEADER.lower().encode())
            if key is None or not hmac.compare_digest(key, self.key):
                return await reply(401, f"missing or invalid API key (header {API_KEY_HEADER})",
                                   ((b"www-authenticate", b"ApiKey"),))
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await reply(413, f"request body over {self.max_body:,} bytes")
        # The body is read here in full (every endpoint needs all of it) so a chunked one is held to the limit too,
        # and a slow one to the time limit.
        chunks, size, more = [], 0, True
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                return await reply(408, f"request body not received within {self.body_timeout:g} s")
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await reply(413, f"request body over {self.max_body:,} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send_with_id)


def create_app(source: PolicySource, api_key: str, *, max_body_bytes: int = 16_000_000,
               max_batch: int = 100_000, body_timeout: float = 30.0):
    """The FastAPI application over ``source``'s snapshots."""
    app = FastAPI(title="pyxl_del decisions", version=__version__,
                  description="Credit decisions under the applied policy (docs/decisions-realtime.md). "
                              f"Send the API key in the {API_KEY_HEADER} header.")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        problems = [_problem(e.get("loc", ()), e.get("msg", "invalid"), e.get("type", "value_error"))
                    for e in errors[:MAX_PROBLEMS]]
        if len(errors) > MAX_PROBLEMS:  # a small body of many bad items must not make a huge answer
            problems.append(_problem(("body",), f"and {len(errors) - MAX_PROBLEMS:,} more problems", "too_many"))
        return _json(422, {"detail": problems, "request_id": request.state.request_id})

    @app.exception_handler(DecisionInputError)
    async def undecidable(request: Request, exc: DecisionInputError):
        problems = [_problem(("body", *(() if p.index is None else ("applications", p.index)), p.field)
                             if request.state.batch else ("body", p.field), p.message, "value_error")
                    for p in exc.problems]
        return _json(422, {"detail": problems, "request_id": request.state.request_id})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:  # FastAPI's answer to a body it cannot even decode: bad input like any other
            return _json(422, {"detail": [_problem(("body",), f"not JSON text: {exc.detail}", "json_invalid")],
                               "request_id": request.state.request_id})
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        request_id = getattr(request.state, "request_id", "?")
        log.error("request %s failed", request_id, exc_info=exc)
        return _json(500, {"detail": f"internal error; the service log has request {request_id}",
                           "request_id": request_id})

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> Health:
        failure = source.request_log.failure
        health = Health(policy_version=source.snapshot.engine.version, status="degraded" if failure else "ok",
                        problem=failure)
        # A monitor reads the status code: decisions are refused while the log cannot take them.
        return JSONResponse(health.model_dump(), status_code=503) if failure else health

    @app.get("/v1/policy", response_model=PolicyInfo, tags=["decisions"])
    async def policy() -> PolicyInfo:
        snapshot = source.snapshot
        engine = snapshot.engine
        return PolicyInfo(policy_version=engine.version, policy=engine.policy, segments=list(engine.segments),
                          loaded_at=snapshot.loaded_at, config=source.config_label, data=source.data_label,
                          reload_error=source.reload_error, caveat=engine.twin.caveat())

    @app.post("/v1/decisions", response_model=Decision | DecisionBatch, tags=["decisions"],
              responses={401: {"description": "no or wrong API key"}, 413: {"description": "body too large"},
                         422: {"description": "bad input: the field and the reason"}})
    async def decisions(request: Request, body: Annotated[DecisionRequest, Body()]) -> Response:
        """One application, or {"applications": [...]}; the answer is a Decision, or a DecisionBatch in order."""
        engine = source.snapshot.engine  # read once: the whole request is decided under this policy
        batch = isinstance(body, ApplicationBatch)
        request.state.batch = batch
        apps = body.applications if batch else [body]
        if len(apps) > max_batch:
            raise RequestValidationError([{"loc": ("body", "applications"), "type": "too_long",
                                           "msg": f"at most {max_batch:,} applications per request"}])
        if len(apps) > THREADED_BATCH:
            answers = await run_in_threadpool(_decide_and_log, engine, apps, request.state.request_id,
                                              source.request_log)
        else:
            answers = _decide_and_log(engine, apps, request.state.request_id, source.request_log)
        content = (DecisionBatch.model_construct(policy_version=engine.version, decisions=answers) if batch
                   else answers[0]).model_dump_json()
        return Response(content=content, media_type="application/json")

    return Guard(app, api_key, max_body_bytes, body_timeout)


def _decide_and_log(engine: DecisionEngine, apps: list[Application], request_id: str,
                    request_log: RequestLog) -> list[Decision]:
    answers = engine.decide_many(apps)
    # One line per decision: {"event": "decision", "time", "request_id", "policy_version", "application": an
    # Application, "decision": a Decision}. The envelope's values are safe as they stand (a checked request id, a
    # timestamp, a hex version); the two models are written by pydantic.
    head = (f'{{"event":"decision","time":"{_now()}","request_id":"{request_id}",'
            f'"policy_version":"{engine.version}","application":')
    request_log.write([f'{head}{a.model_dump_json()},"decision":{d.model_dump_json()}}}'
                       for a, d in zip(apps, answers, strict=True)])
    return answers


# ------------------------------------------------------------------------------------------- running it


def api_key(config: Config, config_path: Path | None) -> str | None:
    """The API key: the environment variable [decide] api_key_env, else the file [decide] api_key_file; None when
    neither is set (the service makes one for the run). A source set but empty is an error: it had started the
    service with a random key, so every client got 401 while the health check said ok."""
    settings = config.decide
    value = os.environ.get(settings.api_key_env)
    if value is not None and not value.strip() and not settings.api_key_file:
        raise InputError(f"the environment variable {settings.api_key_env} ([decide] api_key_env) is set but empty: "
                         f"give it the API key, or unset it to have the service make one for this run")
    if value is not None and value.strip():
        return value.strip()
    if settings.api_key_file:
        path = Path(settings.api_key_file).expanduser()
        path = path if path.is_absolute() else config_folder(config_path) / path
        value = read_text(path, "API key").strip()
        if not value:
            raise InputError(f"the API key file {path} ([decide] api_key_file) is empty: write the key in it")
        return value
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


REMOTE_REFUSED = ("the service speaks plain HTTP: on {host} the API key and every application and decision would "
                  "cross the network readable and alterable by anyone on the way. Serve on 127.0.0.1 behind a TLS "
                  "reverse proxy (nginx, Caddy, IIS) that forwards to it, or, if the network is trusted, pass "
                  "--allow-remote")


class RemoteBindError(InputError):
    """A non-loopback address without the explicit permission to serve other machines."""


def check_host(host: str, *, allow_remote: bool = False) -> None:
    """A non-loopback ``host`` only with ``allow_remote``: otherwise RemoteBindError says why."""
    if not is_loopback(host) and not allow_remote:
        raise RemoteBindError(f"refusing to listen on {host}: " + REMOTE_REFUSED.format(host=host))


def bind(host: str, port: int, *, allow_remote: bool = False) -> socket.socket:
    """A listening socket (port 0: a free one, see ``getsockname()``) on a host `check_host` allows."""
    check_host(host, allow_remote=allow_remote)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on connections whose protocol says TCP, and
    # with it on every answer waits for a delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = (f"; another program (or another pyxl-del serve) holds port {port}: stop it, or choose another "
                f"with --port or [decide] port (--port 0 takes a free one)" if exc.errno == errno.EADDRINUSE else "")
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    if not is_loopback(host):
        log.warning("listening on %s: reachable from other machines, over plain HTTP", host)
    return sock


def header_timeout_protocol(seconds: float):
    """uvicorn's HTTP protocol (h11) with a time limit on the request line and headers: a connection that has not
    sent a whole request head within ``seconds`` of opening, or of its previous answer, is closed. uvicorn's own
    keep-alive timeout stops as soon as any byte arrives, so a client sending headers a byte at a time (or a
    half), or nothing at all on a new connection, would hold the connection open for ever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeout(H11Protocol):
        _head_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # the next request on this connection has as long for its head

        def connection_lost(self, exc) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(seconds, self._expire, self.cycle)

        def _expire(self, cycle) -> None:
            # No request has begun since the timer was armed (the cycle is the same) and none is being answered.
            waiting = self.cycle is cycle and (cycle is None or cycle.response_complete)
            if waiting and not self.transport.is_closing():
                log.info("closing a connection from %s: no request head within %g s", self.client, seconds)
                self.transport.close()

    return HeaderTimeout


def run(app, sock: socket.socket, *, on_started: Callable[[], None] | None = None,
        header_timeout: float = 10.0) -> None:
    """Serve ``app`` on ``sock`` until interrupted (uvicorn; no access log: the request log has every decision)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           http=header_timeout_protocol(header_timeout)))
    if on_started is not None:
        async def serve():
            task = asyncio.ensure_future(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            if server.started:
                on_started()
            await task

        asyncio.run(serve())
    else:
        server.run(sockets=[sock])
