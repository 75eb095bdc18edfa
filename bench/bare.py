"""The framework floor: a bare Quart app answering what /track and GET summary answer,
nothing else, served as `analytics serve` serves ours (bench/stack.py).

The summary's body is whatever bench/reads.py wrote to BENCH_SUMMARY_FILE (the real
endpoint's answer for the bench tenant), read once at the first request.
"""

import os
from pathlib import Path

from quart import Quart, Response

app = Quart(__name__)
_body: list[bytes] = []


@app.post("/api/analytics/track")
async def track() -> Response:
    return Response(b'{"success":true}', content_type="application/json")


@app.get("/api/analytics/<int:tenant_id>")
async def summary(tenant_id: int) -> Response:
    if not _body:
        _body.append(Path(os.environ["BENCH_SUMMARY_FILE"]).read_bytes())
    return Response(_body[0], content_type="application/json")
