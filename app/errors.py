"""One error type for handlers, and the JSON body every error gets."""

from __future__ import annotations

import logging

import orjson
from quart import Quart, Response
from werkzeug.exceptions import HTTPException

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


class APIError(Exception):
    def __init__(self, status: int, message: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message or MESSAGES.get(status, "error")
        self.headers = headers or {}


def error_body(message: str) -> bytes:
    return orjson.dumps({"success": False, "error": message})


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message), status=status, headers=headers,
                    content_type="application/json")


def register(app: Quart) -> None:
    @app.errorhandler(APIError)
    async def api_error(error: APIError) -> Response:
        return error_response(error.status, error.message, error.headers)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        return error_response(status, MESSAGES.get(status, error.name.lower()))

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal error")
