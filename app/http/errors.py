"""One error type for handlers, the JSON body every error gets, and the one mapping from a
failed store (or an unknown tenant) to the answer a client gets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar

import orjson
from pydantic import Field
from quart import Quart, Response, current_app, request
from quart_schema import document_response
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.accounts.tenants import DirectoryUnavailable, UnknownTenant
from app.clients import STORE_ERRORS

log = logging.getLogger(__name__)

MESSAGES = {
    400: "the request is malformed",
    401: "authentication required",
    403: "these credentials do not cover this tenant",
    404: "not found",
    405: "method not allowed",
    413: "body is larger than 16384 bytes",
    415: "unsupported content type",
    429: "too many requests",
    503: "service unavailable, try again shortly",
}


@dataclass
class Error:
    """An error: `{"success": false, "error": "<message a person can act on>"}`."""

    success: Literal[False]
    error: str


@dataclass
class RetryAfter:
    """Too many requests: `Retry-After` says how long to wait."""

    retry_after: Annotated[int, Field(ge=1, description="whole seconds to wait, then try again")]


F = TypeVar("F", bound=Callable)


def document_errors(*statuses: int) -> Callable[[F], F]:
    """Documents the error responses a route answers, each with the JSON error body (and
    `Retry-After` on 429)."""
    def decorator(func: F) -> F:
        for status in statuses:
            func = document_response(Error, status, RetryAfter if status == 429 else None)(func)
        return func
    return decorator


class APIError(Exception):
    def __init__(self, status: int, message: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message or MESSAGES.get(status, "error")
        self.headers = headers or {}


# Failures of a store, in whatever form they reach a handler.
STORE_FAILURES = (*STORE_ERRORS, DirectoryUnavailable)


def store_failure(error: BaseException, *, writing: bool = False) -> APIError:
    """The answer to a store that failed: 503, saying whether trying again is safe."""
    log.warning("store failed: %s", type(error).__name__)
    if isinstance(error, DirectoryUnavailable):
        return APIError(503, "the service is starting, try again shortly")
    if isinstance(error, TimeoutError | RedisTimeoutError) and writing:
        # The write may have happened and only its reply be late.
        return APIError(503, "the event buffer did not answer in time; "
                             "the event may have been recorded")
    if isinstance(error, TimeoutError | RedisTimeoutError):
        return APIError(503, "the analytics store did not answer in time, try again shortly")
    return APIError(503, "the analytics store is unreachable, try again shortly")


@contextlib.asynccontextmanager
async def store_call(deadline: float | None = None, *,
                     writing: bool = False) -> AsyncIterator[None]:
    """Runs the block within `deadline`; a store failing in it becomes `store_failure`."""
    try:
        async with asyncio.timeout(deadline):
            yield
    except STORE_FAILURES as error:
        raise store_failure(error, writing=writing) from None


def error_body(message: str) -> bytes:
    return orjson.dumps({"success": False, "error": message})


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message), status=status, headers=headers,
                    content_type="application/json")


def _matches_another_method(error: MethodNotAllowed) -> bool:
    """Whether a route really takes this path with one of the methods a 405 would offer.
    Werkzeug weighs the method before a converter's bounds, so a path no route takes (an id
    past 2^63-1, app.http.ids) could be answered 405 instead of 404."""
    adapter = current_app.create_url_adapter(request)
    for method in error.valid_methods or ():
        try:
            adapter.match(request.path, method=method)
        except HTTPException:
            continue
        return True
    return False


def register(app: Quart) -> None:
    @app.errorhandler(APIError)
    async def api_error(error: APIError) -> Response:
        return error_response(error.status, error.message, error.headers)

    @app.errorhandler(UnknownTenant)
    async def unknown_tenant(error: UnknownTenant) -> Response:
        return error_response(404, str(error))

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if isinstance(error, MethodNotAllowed) and not _matches_another_method(error):
            return error_response(404, MESSAGES[404])
        # Keep what the exception says besides its HTML body's type: `Allow` on a 405 (RFC 9110).
        headers = {name: value for name, value in error.get_headers()
                   if name.lower() != "content-type"}
        return error_response(status, MESSAGES.get(status, error.name.lower()), headers)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal error")
