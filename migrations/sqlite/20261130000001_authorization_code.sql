-- The authorization-code flow: per-server users for the built-in login, remembered consents,
-- and refresh tokens (stored as SHA-256 digests, grouped in families for reuse detection).
-- Timestamps are Unix seconds.

ALTER TABLE servers ADD COLUMN require_pkce BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE servers ADD COLUMN allow_plain_pkce BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE servers ADD COLUMN logo_uri TEXT;
ALTER TABLE servers ADD COLUMN brand_color TEXT;

CREATE TABLE users (
    tenant_id      TEXT NOT NULL,
    server_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    username       TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    claims         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, server_id, id),
    UNIQUE (tenant_id, server_id, username),
    FOREIGN KEY (tenant_id, server_id) REFERENCES servers (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE consents (
    tenant_id   TEXT NOT NULL,
    server_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, server_id, user_id, client_id),
    FOREIGN KEY (tenant_id, server_id, user_id) REFERENCES users (tenant_id, server_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, server_id, client_id) REFERENCES clients (tenant_id, server_id, client_id) ON DELETE CASCADE
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    server_id   TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    family_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    auth_time   BIGINT NOT NULL,
    amr         TEXT NOT NULL,
    access_jti  TEXT NOT NULL,
    access_exp  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    rotated_at  BIGINT,
    revoked_at  BIGINT,
    FOREIGN KEY (tenant_id, server_id, user_id) REFERENCES users (tenant_id, server_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, server_id, client_id) REFERENCES clients (tenant_id, server_id, client_id) ON DELETE CASCADE
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_user_client ON refresh_tokens (tenant_id, server_id, user_id, client_id);
