-- More grants (issue 14).
-- trusted_issuers: JSON array of {issuer, jwks? | jwks_uri?, subjects?, scope?}, the issuers
-- whose JWTs the JWT bearer grant and token exchange accept; NULL means none.
ALTER TABLE servers ADD COLUMN trusted_issuers TEXT;
