#!/usr/bin/env bash
# Start a local PostgreSQL for the store tests (idempotent; Debian, run as root).
#   eval "$(bash .ci/postgres.sh)"   # sets NAS_TEST_POSTGRES_URL
# and, when this run started the server, NAS_CI_POSTGRES_STARTED ("<version> main").
# Only the final `export` line goes to stdout; everything else goes to stderr.
# The server is started with that stdout closed: a daemon holding the pipe open
# would make `$(bash .ci/postgres.sh)` wait for ever.
set -euo pipefail
exec 3>&1 1>&2 </dev/null

port=${NAS_PG_PORT:-5432}
role=nas password=nas database=nas_test
started=""

start_server() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "postgres.sh: run as root (it installs and starts the server)"
        exit 1
    fi

    if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null \
        || ! command -v pg_ctlcluster >/dev/null; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
    fi

    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    if ! pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" {found = 1} END {exit !found}'; then
        pg_createcluster --port "$port" "$version" main
    fi
    cluster_port=$(pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
    if [ "$cluster_port" != "$port" ]; then
        echo "postgres.sh: cluster $version/main listens on port $cluster_port, expected $port"
        exit 1
    fi
    if ! pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online" {found = 1} END {exit !found}'; then
        pg_ctlcluster "$version" main start
        started="$version main"
    fi
    pg_isready --host 127.0.0.1 --port "$port" --timeout 60

    admin() {
        (cd /tmp && runuser -u postgres -- psql --port "$port" -v ON_ERROR_STOP=1 -qAtX "$@")
    }
    if [ -z "$(admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" ]; then
        admin -c "CREATE ROLE $role LOGIN PASSWORD '$password'"
    fi
    if [ -z "$(admin -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" ]; then
        admin -c "CREATE DATABASE $database OWNER $role"
    fi
}
start_server 3>&-

echo "postgres.sh: PostgreSQL $version ready on 127.0.0.1:$port, database $database"
echo "export NAS_TEST_POSTGRES_URL=postgresql+psycopg://$role:$password@127.0.0.1:$port/$database" >&3
if [ -n "$started" ]; then
    echo "export NAS_CI_POSTGRES_STARTED='$started'" >&3
fi
