-- Least privilege for `retention` on an application database (MariaDB / MySQL).
--
-- Run connected to the application database (`mariadb app < app-grants.sql`), after
--     CREATE USER 'retention_svc'@'%' IDENTIFIED BY '...';
-- (narrow '%' to the hosts the daemon runs on). Written for deploy/examples/config.yaml. Grant
-- DELETE only where a rule deletes, and UPDATE only on the columns an `anonymize:` rewrites.

-- Subject table: read the lifecycle events.
GRANT SELECT ON accounts TO 'retention_svc'@'%';

-- login_events: a delete rule.
GRANT SELECT, DELETE ON login_events TO 'retention_svc'@'%';

-- support_tickets: an anonymize rule; UPDATE on the personal columns only.
GRANT SELECT, UPDATE (requester_email, requester_name, client_ip) ON support_tickets
    TO 'retention_svc'@'%';
