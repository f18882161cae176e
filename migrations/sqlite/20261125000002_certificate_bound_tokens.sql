-- RFC 8705 §3: a server may bind access tokens to the client certificate.
ALTER TABLE servers ADD COLUMN certificate_bound_tokens BOOLEAN NOT NULL DEFAULT FALSE;
