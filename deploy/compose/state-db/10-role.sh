#!/bin/sh
# The state database of the compose example: a login role for the daemon, with the password
# from the environment (RETENTION_STATE_DB_PASSWORD, from deploy/.env), owning a database in
# which the daemon creates its tables (retention_audit, retention_runs, ...) at first start.
# For production, let another role own the tables and grant the daemon only
# deploy/sql/postgres/state-grants.sql (deploy/README.md, "Least-privilege database grants").
set -eu
: "${RETENTION_STATE_DB_PASSWORD:?set RETENTION_STATE_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set=pw="$RETENTION_STATE_DB_PASSWORD" <<'SQL'
CREATE ROLE retention_svc LOGIN PASSWORD :'pw';
CREATE DATABASE retention_state OWNER retention_svc;
SQL
