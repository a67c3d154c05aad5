#!/bin/sh
# Creates the login role `retention` connects as, with the password from the environment
# (RETENTION_APP_DB_PASSWORD, from deploy/.env). Its grants follow in 20-grants.sql.
set -eu
: "${RETENTION_APP_DB_PASSWORD:?set RETENTION_APP_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set=pw="$RETENTION_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE retention_svc LOGIN PASSWORD :'pw';
SQL
