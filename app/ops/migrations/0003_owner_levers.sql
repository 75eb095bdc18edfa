-- Owners run their own account (issue 15): platform tokens, share links and invites.

-- A platform token provisions tenants and belongs to none; a tenant token reads one tenant.
ALTER TABLE api_tokens ADD COLUMN kind text NOT NULL DEFAULT 'tenant'
    CHECK (kind IN ('tenant', 'platform'));
ALTER TABLE api_tokens ALTER COLUMN tenant_id DROP NOT NULL;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_kind_tenant
    CHECK ((kind = 'tenant') = (tenant_id IS NOT NULL));

-- Read-only dashboards at an unguessable URL; only the token's SHA-256 is kept.
CREATE TABLE share_links (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX share_links_tenant ON share_links (tenant_id);

-- Single-use links that make their taker an owner of one tenant.
CREATE TABLE invites (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    used_by bigint REFERENCES users (id) ON DELETE SET NULL,
    revoked_at timestamptz
);
CREATE INDEX invites_tenant ON invites (tenant_id);
