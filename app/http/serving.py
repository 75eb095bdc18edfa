"""uvicorn as the web process runs it, in one place: `analytics serve`, the tests' servers and
the benchmarks' all take these options, so what they test and measure is what ships.

    python -m app.http.serving MODULE:APP [--host HOST] [--log-level LEVEL]
                               [--ws IMPL] [--ws-per-message-deflate true|false]

serves another ASGI app (a test's routes, the bench's bare route) as `analytics serve`
serves the product: the port and the workers from the settings (PORT, WEB_CONCURRENCY);
`--ws` and `--ws-per-message-deflate` let bench/sockets.py weigh the alternatives.
"""

from __future__ import annotations

import argparse
from typing import Any

from app.http.http_protocol import HTTP_PROTOCOL
from app.http.ws_protocol import WS_PROTOCOL
from app.logs import LOGGING
from app.settings import Settings

PRODUCT = "app.asgi:app"


def options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config's keyword arguments for the web process, but the app, where it listens
    and how many workers."""
    return {
        "loop": "uvloop",
        "http": HTTP_PROTOCOL,  # httptools, each response in one write
        "ws": WS_PROTOCOL,  # websockets-sansio, keeping less per socket
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_interval,
        "ws_max_size": 64 * 1024,  # clients only ever send small frames
        # A deflate context per socket costs more resident memory than the rest of the socket
        # (bench/sockets.py) to shrink frames of a few hundred bytes: off.
        "ws_per_message_deflate": False,
        "proxy_headers": False,  # TRUSTED_PROXY_HOPS decides what X-Forwarded-For is worth
        "server_header": False,
        "log_config": LOGGING,
        "timeout_graceful_shutdown": int(settings.shutdown_grace),
    }


def run(settings: Settings, app: str, *, host: str, **overrides: Any) -> None:
    """Serves `app` (an import string, so that workers can import it) on `host` until
    stopped."""
    import uvicorn

    uvicorn.run(app, host=host, port=settings.port, workers=settings.web_concurrency,
                **{**options(settings), **overrides})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.http.serving",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("app", nargs="?", default=PRODUCT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--ws", default=None)
    parser.add_argument("--ws-per-message-deflate", choices=("true", "false"), default=None)
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.log_level is not None:
        overrides["log_level"] = args.log_level
    if args.ws is not None:
        overrides["ws"] = args.ws
    if args.ws_per_message_deflate is not None:
        overrides["ws_per_message_deflate"] = args.ws_per_message_deflate == "true"
    run(Settings.from_env(), args.app, host=args.host, **overrides)


if __name__ == "__main__":
    main()
