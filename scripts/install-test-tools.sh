#!/usr/bin/env bash
# Installs what `npm ci` needs to build and the real clients and servers the test suite drives
# (Debian 12, as root).
# Only what is missing is installed; run it once on a fresh machine.
set -euo pipefail
packages=(
  python3 make g++                          # npm ci compiles better-sqlite3 where no prebuilt binary fits
  skopeo podman buildah containerd uidmap   # real registry clients
  docker-registry                           # the reference registry (CNCF Distribution)
  apache2-utils openssl jq curl bsdutils    # htpasswd, certificates, script (a pseudo-terminal)
  nginx-light wrk                           # benchmark baselines and load
  postgresql                                # PostgreSQL 15 (Debian 12): tests start throwaway clusters with initdb
  chromium fonts-dejavu-core                # the web UI tests drive Debian's browser (playwright-core)
  zstd rpm golang-go                        # image scanning: zstd layers, an rpmdb.sqlite, a Go binary
  ceph radosgw                              # a real S3 endpoint (scripts/start-rgw.sh)
  haproxy                                   # the load balancer in front of replicas (deploy/haproxy/haproxy.cfg)
)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
# The docker CLI (no engine) is used for `docker manifest`; Debian ships it in docker.io.
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian docker-registry package starts a service on :5000; tests run their own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
# Debian's postgresql package starts a cluster on :5432; tests run their own throwaway clusters.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postgresql 2>/dev/null; then
  systemctl stop postgresql || true
fi
