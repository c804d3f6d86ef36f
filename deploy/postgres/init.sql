-- Roles and database for deploy/compose.yaml, run once by the postgres
-- image on an empty data directory (docker-entrypoint-initdb.d). The same
-- shape as scripts/services.sh: api_owner owns the schema and runs
-- migrations; api_app (the server) gets table rights from the migrations.
-- Development passwords: change them (and deploy/pgbouncer/userlist.txt)
-- for anything but a laptop.
CREATE ROLE api_owner LOGIN PASSWORD 'api_owner';
CREATE ROLE api_app LOGIN PASSWORD 'api_app';
CREATE DATABASE api OWNER api_owner;
\connect api
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO api_app;
GRANT CREATE ON SCHEMA public TO api_owner;
