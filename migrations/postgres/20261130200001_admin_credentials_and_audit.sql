-- Tenant-scoped admin credentials and the audit trail.
--
-- A credential's token is stored only as its SHA-256 (hex): the token carries 256 random bits.
-- Credentials go with their tenant; audit rows do not (no foreign key): the trail outlives
-- what it describes.

CREATE TABLE admin_credentials (
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'read-only')),
    token_hash  TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE INDEX admin_credentials_by_tenant ON admin_credentials (tenant_id, id);

-- Identity ids order the trail and serve as the paging cursor.
CREATE TABLE audit_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    server_id     TEXT,
    client_id     TEXT,
    occurred_at   BIGINT NOT NULL,
    actor         TEXT NOT NULL CHECK (actor <> ''),
    action        TEXT NOT NULL CHECK (action <> ''),
    resource      TEXT NOT NULL,
    address       TEXT,
    before_state  TEXT,
    after_state   TEXT,
    detail        TEXT
);

CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_events_by_client ON audit_events (tenant_id, client_id, id);
