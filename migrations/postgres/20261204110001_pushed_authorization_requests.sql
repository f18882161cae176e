-- Pushed authorization requests (issue 11, RFC 9126).
-- require_par: refuse authorization requests that were not pushed (server field
-- `require_pushed_authorization_requests`).
ALTER TABLE servers ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT FALSE;
-- par_ttl: lifetime of a pushed request's request_uri, seconds
-- (`pushed_authorization_request_ttl`).
ALTER TABLE servers ADD COLUMN par_ttl BIGINT NOT NULL DEFAULT 60;
