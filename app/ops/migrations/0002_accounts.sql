-- Login sessions live on the server: the cookie carries a random id and this table only its
-- SHA-256, so logging out ends a session in every process and a copy of the table opens none.
CREATE TABLE sessions (
    id_hash bytea PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Tokens may be given an end of life; NULL keeps them valid until revoked.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id);
CREATE INDEX memberships_tenant ON memberships (tenant_id);
