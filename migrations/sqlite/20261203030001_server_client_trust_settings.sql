-- Per-server trust settings (issue 10).
-- tls_client_ca: PEM bundle of the CAs `tls_client_auth` certificates of this server must
-- chain to; NULL takes the process-wide bundle (--tls-client-ca).
ALTER TABLE servers ADD COLUMN tls_client_ca TEXT;
-- introspection_clients: JSON array of client ids (resource servers) that may introspect
-- any token of this server; NULL means none.
ALTER TABLE servers ADD COLUMN introspection_clients TEXT;
-- allow_insecure_redirect_uris: plain `http` redirect URIs to non-loopback hosts (off, as
-- OAuth 2.1 asks).
ALTER TABLE servers ADD COLUMN allow_insecure_redirect_uris BOOLEAN NOT NULL DEFAULT FALSE;
