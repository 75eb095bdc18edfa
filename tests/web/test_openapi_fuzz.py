"""Hostile input: schemathesis sends what the app's own /openapi.json allows, and more.

Each operation of the document gets schemathesis's phases (the document's examples; coverage
cases: boundaries, wrong types, missing bodies and credentials, undeclared methods; random
fuzzing) against the app on the real Redis and Postgres, with every default check: no 500, each
status code, header and body as the document declares it, schema-valid requests accepted and
invalid ones refused, an undeclared method answered 405 with `Allow`. The document bounds ids
to Postgres's bigint (`maximum: 2^63-1`), so the coverage phase also sends 2^63 and larger in
every path; metadata nested past orjson's 254 levels is sent by a test of its own (below).

The document is read once, at collection, from the app itself through Quart's test client
(quart-schema builds it from the routes; no client starts). `schemathesis.pytest.from_fixture`
would read it during each test instead, but it uses pytest's private `Item._nodeid`, which
pytest 9.2 removed; `schemathesis.openapi.from_asgi` at collection would start the app's
lifespan before this run's database exists.
"""

from __future__ import annotations

import asyncio

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.factory import create_app
from tests.support.settings import make_settings

# Random examples per operation, after the document's examples and the coverage cases: about
# 15 s for the whole file. 300 found nothing more in repeated runs, at 50 s a run.
EXAMPLES = 50


def served_document() -> dict:
    async def fetch() -> dict:
        response = await create_app(make_settings()).test_client().get("/openapi.json")
        assert response.status_code == 200, await response.get_data()
        return await response.get_json()

    return asyncio.run(fetch())


class AppPerLifespan:
    """The ASGI app schemathesis drives: a fresh app for each lifespan it runs (it starts one
    at a test's first request and ends it with the test), since a Quart app serves only once."""

    def __init__(self) -> None:
        self.app = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            self.app = create_app(make_settings())
        await self.app(scope, receive, send)


schema = schemathesis.openapi.from_dict(served_document())
schema.app = AppPerLifespan()  # as `schemathesis.openapi.from_asgi` does: requests go over ASGI
TRACK = schema["/api/analytics/track"]["POST"]
fuzz = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,  # every request goes through Redis and Postgres
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one tenant and token per operation, on purpose
        HealthCheck.too_slow,  # generating nested metadata can be slow on a busy machine
    ],
)


@schema.hook
def map_body(context, body):
    # JSON Schema counts 1361.0 as an integer, and schemathesis sends such whole floats on
    # purpose; the contract refuses a tenant_id written as a float (tests/ingest/test_track.py
    # checks it), which no schema keyword can say. So generated tenant ids are written as
    # integers.
    tenant_id = body.get("tenant_id") if isinstance(body, dict) else None
    if isinstance(tenant_id, float) and tenant_id.is_integer():
        body = {**body, "tenant_id": int(tenant_id)}
    return body


def aim_at(case, tenant_id: int) -> bool:
    """Points a schema-valid case at `tenant_id` (path and body); whether it named a tenant."""
    meta = case.meta
    if meta is None or any(part.mode is not GenerationMode.POSITIVE
                           for part in (meta.generation, *meta.components.values())):
        return False
    aimed = False
    if "tenant_id" in (case.path_parameters or {}):
        case.path_parameters["tenant_id"] = tenant_id
        aimed = True
    if isinstance(case.body, dict) and "tenant_id" in case.body:
        case.body["tenant_id"] = tenant_id
        aimed = True
    return aimed


# Rules across a query's parameters that its JSON Schema cannot state (`from` and `to` only
# with period=custom and both then, `from` not after `to`, a real calendar date, at most 400
# days): a schema-valid query may break one, and is refused with 400 naming the rule
# (tests/test_stats.py checks each). Only such 400s are let through beyond the document.
CROSS_PARAMETER_RULES = ("period=custom", "`from` is after `to`", "at most 400 days",
                         "as YYYY-MM-DD", "period=custom needs")


def positive_data_accepted(ctx, response, case):
    if response.status_code == 400 and any(rule in response.text
                                           for rule in CROSS_PARAMETER_RULES):
        return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = {"excluded_checks": [positive_data_acceptance],
          "additional_checks": [positive_data_accepted]}


@schema.parametrize()
@fuzz
def test_anonymous_requests_get_what_the_document_says(case, database, redis):
    case.call_and_validate(**CHECKS)


@schema.parametrize()
@fuzz
def test_requests_with_a_token_get_what_the_document_says(case, database, redis, tenant,
                                                          auth_headers):
    # As generated (another tenant's numbers: 403), then at the token's own tenant, so the
    # 200s and accepted events are held to the document too.
    case.call_and_validate(headers=auth_headers, **CHECKS)
    if aim_at(case, tenant.id):
        case.call_and_validate(headers=auth_headers, **CHECKS)


# Beyond what the document's schemas generate: metadata nested past the 254 levels orjson can
# write (and up to where Python's own JSON writer, which sends the case, stops), as objects,
# arrays or both. The document promises a 400 for these (nesting is bounded); never a 5xx.
@given(levels=st.integers(min_value=200, max_value=800),
       shape=st.lists(st.booleans(), min_size=1, max_size=6))
@fuzz
def test_metadata_nested_past_what_orjson_writes_is_refused(levels, shape, database, redis,
                                                             tenant):
    value: object = 1
    for level in range(levels):
        value = [value] if shape[level % len(shape)] else {"k": value}
    case = TRACK.Case(body={"tenant_id": tenant.id, "event_type": "pageview",
                            "metadata": {"k": value}},
                      media_type="application/json")
    response = case.call_and_validate()
    assert response.status_code == 400
