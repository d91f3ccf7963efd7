"""OTLP/gRPC receiver: ``TraceService/Export`` and ``LogsService/Export`` on port 4317.

OpenTelemetry's exporters default to gRPC (``opentelemetry-exporter-otlp`` in Python,
``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``), so ``podium up`` serves it next to OTLP/HTTP
(``PODIUM_OTLP_GRPC_PORT``, 0 disables). A gRPC server with its own worker threads
receives the raw request bytes, authenticates the ``authorization`` metadata exactly as
the HTTP API does (``Bearer sk-...`` or ``Basic base64(pk:sk)``), decodes them with the
same code as ``/v1/traces`` and ``/v1/logs`` and hands the rows to the same ingest
queue on the app's event loop, under the same bounds. Errors are gRPC status codes:

    UNAUTHENTICATED      missing, malformed or revoked key
    PERMISSION_DENIED    a key whose role cannot write (viewer)
    INVALID_ARGUMENT     a body that is not an OTLP export request, or more spans / log
                         records than PODIUM_MAX_BATCH_ITEMS
    RESOURCE_EXHAUSTED   ingestion is busy (the HTTP 429; OTLP exporters retry it), or a
                         message over PODIUM_MAX_REQUEST_BYTES (from gRPC itself)
    UNAVAILABLE          shutting down, or the store cannot write (retry)

Spans or log records that cannot be stored are reported in the response's
``partial_success``, as over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, NoReturn

import grpc

from podium.core.roles import Action, key_roles_for
from podium.errors import (
    BadRequest,
    ConfigurationError,
    Forbidden,
    PayloadTooLarge,
    PodiumError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from podium.server import otlp, otlp_logs
from podium.server.convert import BatchBuilder
from podium.server.state import AppState

__all__ = ["LOGS_SERVICE", "TRACE_SERVICE", "OtlpGrpcServer"]

logger = logging.getLogger("podium.server")

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
_PROTOBUF = "application/x-protobuf"
#: Roles that may write (the HTTP routes' ``require_write``).
_WRITE_ROLES = key_roles_for(Action.INGEST)
_WORKERS = 8

_CODES: tuple[tuple[type[PodiumError], grpc.StatusCode], ...] = (
    (Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (TooManyRequests, grpc.StatusCode.RESOURCE_EXHAUSTED),
    # Too many spans in one export: retrying the same batch cannot help, so not RESOURCE_EXHAUSTED
    # (which exporters retry). A message over the byte limit gets RESOURCE_EXHAUSTED from gRPC itself.
    (PayloadTooLarge, grpc.StatusCode.INVALID_ARGUMENT),
    (BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (ServiceUnavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_code(error: PodiumError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    if error.status_code == 415:
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


class OtlpGrpcServer:
    """The receiver for one app: ``await start()`` on the app's event loop, ``await stop()``."""

    def __init__(self, state: AppState, host: str, port: int, *, strict: bool = False) -> None:
        self._st = state
        self._strict = strict
        #: Why the receiver is not serving (the port was taken), or None.
        self.error: str | None = None
        self._host = host
        self._requested_port = port
        self.port = 0
        self._server: grpc.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def address(self) -> str:
        return f"{_bracket(self._host)}:{self.port}"

    async def start(self) -> None:
        """Bind and serve. A port that cannot be bound (an OpenTelemetry Collector already on
        4317, a second Podium) is logged as an error and leaves OTLP/HTTP and the rest serving,
        unless ``strict`` (then :class:`ConfigurationError`)."""
        try:
            await self._start()
        except ConfigurationError as e:
            if self._strict:
                raise
            self.error = e.message
            logger.error("OTLP/gRPC not served: %s", e.message)

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        limit = self._st.settings.max_request_bytes
        server = grpc.server(
            ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="podium-otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 0),  # a second server on the same port fails instead of sharing it
            ],
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    TRACE_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export_traces)}
                ),
                grpc.method_handlers_generic_handler(
                    LOGS_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export_logs)}
                ),
            )
        )
        try:
            self.port = server.add_insecure_port(f"{_bracket(self._host)}:{self._requested_port}")
        except RuntimeError as e:
            server.stop(None)
            raise ConfigurationError(
                f"cannot listen on {self._host}:{self._requested_port} ({e}); the port is probably in use (an "
                "OpenTelemetry Collector?): set PODIUM_OTLP_GRPC_PORT to a free port, or 0 to disable OTLP/gRPC"
            )
        if not self.port:
            server.stop(None)
            raise ConfigurationError(
                f"cannot listen on {self._host}:{self._requested_port}; the port is probably in use: set "
                "PODIUM_OTLP_GRPC_PORT to a free port, or 0 to disable OTLP/gRPC"
            )
        server.start()
        self._server = server
        logger.info("OTLP/gRPC receiver on %s", self.address)

    async def stop(self, grace: float = 5.0) -> None:
        """Finish the calls in flight (their writes need the event loop, so wait off it)."""
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(lambda: server.stop(grace).wait())

    # --- handlers (gRPC worker threads) --------------------------------------------------------

    def _export_traces(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        def ingest(project_id: str) -> bytes:
            builder = BatchBuilder(project_id, lambda: self._st.prices_for(project_id))
            problems = otlp.decode_into(request, _PROTOBUF, builder, max_spans=self._st.settings.max_batch_items)
            refused = self._on_loop(self._st.ingester.submit(builder.batch), context)
            problems.extend(f"span {k[-1]}: {msg}" for k, msg in refused)
            self._st.count_ingest(len(builder.batch.spans) - len(refused), len(problems))
            return otlp.encode_response(rejected_spans=len(problems), error_message="; ".join(problems[:5]))

        return self._handle(request, context, ingest)

    def _export_logs(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        def ingest(project_id: str) -> bytes:
            result, builder, added = otlp_logs.prepare(self._st, project_id, request, content_type=_PROTOBUF)
            refused = self._on_loop(self._st.ingester.submit(builder.batch), context)
            rejected, message = otlp_logs.finish(self._st, result, added, refused)
            return otlp_logs.encode_response(rejected=rejected, error_message=message)

        return self._handle(request, context, ingest)

    def _handle(self, request: bytes, context: grpc.ServicerContext, ingest: Callable[[str], bytes]) -> bytes:
        nbytes = len(request)
        try:
            key = self._authenticate(context)
            self._st.ingester.reserve(nbytes)
        except PodiumError as e:
            _abort(context, e)
        try:
            return ingest(key.project_id)
        except PodiumError as e:
            _abort(context, e)
        except (FutureTimeout, TimeoutError):
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the write was committed")
        except Exception:
            logger.exception("OTLP/gRPC export failed")
            context.abort(grpc.StatusCode.INTERNAL, "the server failed on this export; see its log, then retry")
        finally:
            self._st.ingester.release(nbytes)
        raise AssertionError("unreachable")  # context.abort raises

    def _authenticate(self, context: grpc.ServicerContext) -> Any:
        authorization = None
        for k, v in context.invocation_metadata():
            if k.lower() == "authorization":
                authorization = v if isinstance(v, str) else v.decode("latin-1")
                break
        key = self._st.auth.authenticate(authorization)
        if key.role not in _WRITE_ROLES:
            raise Forbidden(
                f"a key with role {key.role!r} cannot write data; use a key with role {' or '.join(_WRITE_ROLES)}"
            )
        return key

    def _on_loop(self, coro: Coroutine[Any, Any, Any], context: grpc.ServicerContext) -> Any:
        """Run ``coro`` on the app's event loop and wait for it (within the call's deadline)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=context.time_remaining())
        except FutureTimeout:
            future.cancel()
            raise


def _bracket(host: str) -> str:
    """An IPv6 literal in a gRPC address needs brackets ("[::]:4317")."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _abort(context: grpc.ServicerContext, error: PodiumError) -> NoReturn:
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        context.set_trailing_metadata((("retry-after", str(retry_after)),))
    context.abort(status_code(error), error.message)
    raise AssertionError("unreachable")  # context.abort raises
