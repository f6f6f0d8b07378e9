#!/usr/bin/env bash
# Install and start a real PostgreSQL server on 127.0.0.1 for the test suite (Debian's package).
# Idempotent: safe to run when it is already installed and running.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  pg_createcluster "$version" main >/dev/null
fi
conf=/etc/postgresql/$version/main/postgresql.conf
changed=0
if ! grep -q "^listen_addresses = '127.0.0.1'" "$conf"; then
  echo "listen_addresses = '127.0.0.1'" >> "$conf"; changed=1
fi
# A throwaway test server: durability settings off, room for several worker replicas.
if ! grep -q "^fsync = off" "$conf"; then
  printf "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n" >> "$conf"; changed=1
fi
if pg_ctlcluster "$version" main status >/dev/null 2>&1; then
  [ "$changed" = 1 ] && pg_ctlcluster "$version" main restart
else
  pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -q && break; sleep 1; done
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='permit'\"" | grep -q 1 ||
  su postgres -c "psql -q -c \"CREATE ROLE permit LOGIN SUPERUSER PASSWORD 'permit'\""
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname='permit_test'\"" | grep -q 1 ||
  su postgres -c "createdb -O permit permit_test"
echo "postgresql+psycopg://permit:permit@127.0.0.1:5432/permit_test"
