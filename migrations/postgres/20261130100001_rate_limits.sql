-- Per-server rate limits of the token, introspection and revocation endpoints, as a JSON
-- object ({"client_per_second": …, "client_burst": …, "address_per_second": …,
-- "address_burst": …}); NULL: every limit takes the process default. Nullable, so releases
-- that do not know the column keep working on this schema.
ALTER TABLE servers ADD COLUMN rate_limits TEXT;
