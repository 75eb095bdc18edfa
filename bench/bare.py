"""The framework floor: a bare Quart app answering what /track answers, nothing else."""

from quart import Quart, Response

app = Quart(__name__)


@app.post("/api/analytics/track")
async def track() -> Response:
    return Response(b'{"success":true}', content_type="application/json")
