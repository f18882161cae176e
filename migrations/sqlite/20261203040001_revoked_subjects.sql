-- Revocation by what a token stands for: the access tokens of a deleted client, or of a
-- user deleted or whose password changed, issued at or before `revoked_before` (Unix
-- milliseconds) are revoked. Kept until `expires_at` (Unix seconds), when every token it
-- revokes has expired. A new table: an older release ignores it.
CREATE TABLE revoked_subjects (
    tenant_id       TEXT NOT NULL,
    server_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    revoked_before  BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, server_id, kind, subject),
    FOREIGN KEY (tenant_id, server_id) REFERENCES servers (tenant_id, id) ON DELETE CASCADE
);
