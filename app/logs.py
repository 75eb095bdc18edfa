"""Logging for every process: no client address and no query string ever reaches a log line.

A query string may carry what must not be kept (`?events=1` today, a share token tomorrow):
uvicorn's request lines (its access log, and the websocket handshake line it logs at INFO)
keep their path only.
"""

from __future__ import annotations

import logging
import re

_ADDRESS = re.compile(
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b"  # IPv4
    r"|\b(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}\b"  # IPv6
)


def _mask(match: re.Match) -> str:
    # The wildcard bind address is ours, not a client's; keeping it makes startup lines useful.
    return match[0] if match[0] in ("0.0.0.0", "::") else "[address]"


class RedactAddresses(logging.Filter):
    """Rewrites the message with addresses masked, whatever logger produced it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _ADDRESS.sub(_mask, message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class DropQueryStrings(logging.Filter):
    """Cuts the query string off the paths in uvicorn's request lines (their arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn") and isinstance(record.args, tuple):
            record.args = tuple(
                arg.split("?", 1)[0] if isinstance(arg, str) and arg.startswith("/") else arg
                for arg in record.args
            )
        return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": RedactAddresses}, "queries": {"()": DropQueryStrings}},
    "formatters": {
        "default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": '%(asctime)s access: "%(request_line)s" %(status_code)s',
            "use_colors": False,
        },
    },
    "handlers": {
        "default": {"class": "logging.StreamHandler", "formatter": "default",
                    "filters": ["queries", "redact"], "stream": "ext://sys.stderr"},
        "access": {"class": "logging.StreamHandler", "formatter": "access",
                   "filters": ["queries", "redact"], "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "": {"handlers": ["default"], "level": "INFO"},
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["access"], "level": "WARNING", "propagate": False},
        "apscheduler": {"level": "WARNING"},
    },
}


def configure() -> None:
    import logging.config

    logging.config.dictConfig(LOGGING)
