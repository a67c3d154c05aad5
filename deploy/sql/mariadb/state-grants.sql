-- Least privilege for `retention` on its state database (MariaDB / MySQL).
--
-- The tables were created once by another account (retention_owner, or your migrations);
-- MariaDB grants on a table need the table to exist. Run connected to the state database
-- (`mariadb retention_state < state-grants.sql`) after
--     CREATE USER 'retention_svc'@'%' IDENTIFIED BY '...';

-- The audit log is append-only: insert and read, never update or delete.
GRANT SELECT, INSERT ON retention_audit TO 'retention_svc'@'%';

-- Runs are opened, advanced and closed; leases are taken, renewed and fenced.
GRANT SELECT, INSERT, UPDATE ON retention_runs TO 'retention_svc'@'%';
GRANT SELECT, INSERT, UPDATE ON retention_leases TO 'retention_svc'@'%';

-- Intents: written before a batch acts, removed once it is audited (crash recovery).
GRANT SELECT, INSERT, DELETE ON retention_intents TO 'retention_svc'@'%';

-- S3 legal holds retention placed (mirror_holds): recorded when placed, removed when released.
GRANT SELECT, INSERT, DELETE ON retention_legal_holds TO 'retention_svc'@'%';

-- Schedules: per rule, up to when its fire times have been run (catch-up after downtime).
GRANT SELECT, INSERT, UPDATE ON retention_schedule TO 'retention_svc'@'%';

-- Replicas sharing shards (service.lease_scope: dataset): each counts itself alive, renews
-- that, and removes itself on a clean stop; what has run is marked per rule and shard.
GRANT SELECT, INSERT, UPDATE, DELETE ON retention_replicas TO 'retention_svc'@'%';
GRANT SELECT, INSERT, UPDATE ON retention_shard_schedule TO 'retention_svc'@'%';

-- What each run applied (rule packs, holds, settings), content-addressed: written once, kept.
GRANT SELECT, INSERT ON retention_contents TO 'retention_svc'@'%';
GRANT SELECT, INSERT ON retention_run_contents TO 'retention_svc'@'%';

-- The schema's revision (Alembic): read at every start; only the owner upgrades it.
GRANT SELECT ON retention_alembic_version TO 'retention_svc'@'%';
