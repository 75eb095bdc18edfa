CREATE TABLE tenants (
    id bigserial PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone text NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE memberships (
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, tenant_id)
);

CREATE TABLE api_tokens (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);

-- Raw events, one partition a month so retention drops whole partitions.
-- `id` is the shard and Redis stream id, which makes the drain idempotent.
CREATE TABLE events (
    id text NOT NULL,
    tenant_id bigint NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    user_agent text NOT NULL DEFAULT '',
    referrer text NOT NULL DEFAULT '',
    ip_hash char(45) NOT NULL,
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX events_tenant_time ON events (tenant_id, occurred_at);

-- One row per tenant and day (in the tenant's timezone).
CREATE TABLE daily_rollups (
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day date NOT NULL,
    events bigint NOT NULL DEFAULT 0,
    pageviews bigint NOT NULL DEFAULT 0,
    whatsapp_clicks bigint NOT NULL DEFAULT 0,
    call_clicks bigint NOT NULL DEFAULT 0,
    currency_toggles bigint NOT NULL DEFAULT 0,
    qr_scans bigint NOT NULL DEFAULT 0,
    product_clicks bigint NOT NULL DEFAULT 0,
    time_on_page_count bigint NOT NULL DEFAULT 0,
    time_on_page_ms bigint NOT NULL DEFAULT 0,
    visitors bigint NOT NULL DEFAULT 0,
    visitors_hll bytea,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, day)
);

-- Flush batches already applied: a batch retried after a crash is applied once.
CREATE TABLE applied_flushes (
    id text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
