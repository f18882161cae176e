-- Tenants, authorization servers, clients, signing keys and admin credentials.
-- Timestamps are Unix seconds. Children cascade with their parents.

CREATE TABLE tenants (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE servers (
    tenant_id             TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                    TEXT COLLATE "C" NOT NULL,
    name                  TEXT NOT NULL,
    access_token_ttl      BIGINT NOT NULL,
    refresh_token_ttl     BIGINT NOT NULL,
    signing_alg           TEXT NOT NULL,
    default_audience      TEXT,
    allowed_auth_methods  TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE clients (
    tenant_id          TEXT NOT NULL,
    server_id          TEXT NOT NULL,
    client_id          TEXT COLLATE "C" NOT NULL,
    metadata           TEXT NOT NULL,
    secret_kind        TEXT NOT NULL CHECK (secret_kind IN ('none', 'hash', 'sealed')),
    secret_hash        TEXT,
    secret_sealed      BYTEA,
    secret_expires_at  BIGINT NOT NULL,
    issued_at          BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, server_id, client_id),
    FOREIGN KEY (tenant_id, server_id) REFERENCES servers (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE signing_keys (
    tenant_id       TEXT NOT NULL,
    server_id       TEXT NOT NULL,
    kid             TEXT NOT NULL,
    alg             TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('current', 'next', 'retiring')),
    sealed_private  BYTEA NOT NULL,
    public_jwk      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retire_at       BIGINT,
    PRIMARY KEY (tenant_id, server_id, kid),
    FOREIGN KEY (tenant_id, server_id) REFERENCES servers (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE admin_tokens (
    name        TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
