-- Least privilege for `retention` on an application database (PostgreSQL).
--
-- Run as the owner of the tables, connected to the application database, after
--     CREATE ROLE retention_svc LOGIN PASSWORD '...';
-- (and, if CONNECT was revoked from PUBLIC: GRANT CONNECT ON DATABASE app TO retention_svc;).
-- Written for deploy/examples/config.yaml: one line per table that config.yaml names. Grant
-- DELETE only where a rule deletes, and UPDATE only on the columns an `anonymize:` rewrites.

GRANT USAGE ON SCHEMA public TO retention_svc;

-- Subject table: read the lifecycle events (created, closed, terminated, ...).
GRANT SELECT ON accounts TO retention_svc;

-- login_events: a delete rule. Find what is due, delete it.
GRANT SELECT, DELETE ON login_events TO retention_svc;

-- support_tickets: an anonymize rule. Find what is due, rewrite the personal columns only.
GRANT SELECT ON support_tickets TO retention_svc;
GRANT UPDATE (requester_email, requester_name, client_ip) ON support_tickets TO retention_svc;
