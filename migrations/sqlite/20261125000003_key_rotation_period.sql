-- A server may rotate its signing keys on a schedule: seconds between rotations, NULL for
-- manual rotation only.
ALTER TABLE servers ADD COLUMN key_rotation_period BIGINT;
