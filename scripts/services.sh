#!/usr/bin/env bash
# Installs (Debian packages) and starts PostgreSQL and MariaDB on loopback when they are not
# running, creates the test role/user with the right to create databases, and prints the
# `export` lines for the test URLs. Idempotent: a second run only checks.
#   eval "$(scripts/services.sh)"
set -euo pipefail
log() { echo "services: $*" >&2; }

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 || need_apt+=(mariadb-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_apt[@]}" >&2
fi

# PostgreSQL: the Debian cluster, started without systemd.
pg_ver=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
  log "creating PostgreSQL cluster $pg_ver/main"
  pg_createcluster "$pg_ver" main >&2
fi
pg_cluster=$(pg_lsclusters -h | head -n 1 | awk '{print $1" "$2}')
pg_port=$(pg_lsclusters -h | head -n 1 | awk '{print $3}')
if ! pg_lsclusters -h | head -n 1 | grep -q online; then
  log "starting PostgreSQL $pg_cluster"
  pg_ctlcluster $pg_cluster start >&2
fi
for _ in $(seq 1 60); do
  su postgres -c "psql -p $pg_port -tAc 'SELECT 1'" >/dev/null 2>&1 && break
  sleep 0.5
done
su postgres -c "psql -p $pg_port -v ON_ERROR_STOP=1 -q" >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'honeysens') THEN
    CREATE ROLE honeysens LOGIN CREATEDB PASSWORD 'honeysens';
  END IF;
END $$;
SQL
su postgres -c "psql -p $pg_port -tAc \"SELECT 1 FROM pg_database WHERE datname = 'honeysens'\"" | grep -q 1 \
  || su postgres -c "createdb -p $pg_port -O honeysens honeysens" >&2

# MariaDB: started directly when no service manager runs it.
if ! mariadb-admin ping >/dev/null 2>&1 && ! mysqladmin ping >/dev/null 2>&1; then
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  (service mariadb start || service mysql start) >&2 2>&1 || (mysqld_safe >/dev/null 2>&1 &)
  for _ in $(seq 1 60); do
    mariadb-admin ping >/dev/null 2>&1 && break
    sleep 0.5
  done
fi
mariadb -uroot >&2 <<'SQL'
CREATE USER IF NOT EXISTS 'honeysens'@'localhost' IDENTIFIED BY 'honeysens';
CREATE USER IF NOT EXISTS 'honeysens'@'127.0.0.1' IDENTIFIED BY 'honeysens';
GRANT ALL PRIVILEGES ON *.* TO 'honeysens'@'localhost';
GRANT ALL PRIVILEGES ON *.* TO 'honeysens'@'127.0.0.1';
CREATE DATABASE IF NOT EXISTS honeysens CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
FLUSH PRIVILEGES;
SQL
my_port=$(mariadb -uroot -N -e 'SELECT @@port')

# No TLS on loopback: it protects nothing here, and sqlx 0.9.0 does not set TCP_NODELAY, so
# TLS records stall on Nagle + delayed ACK (~40 ms per larger write; sqlx#4335).
echo "export HONEYSENS_TEST_POSTGRES_URL=postgres://honeysens:honeysens@127.0.0.1:${pg_port}/honeysens?sslmode=disable"
echo "export HONEYSENS_TEST_MYSQL_URL=mysql://honeysens:honeysens@127.0.0.1:${my_port}/honeysens?ssl-mode=disabled"
