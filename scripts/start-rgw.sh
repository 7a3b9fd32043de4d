#!/usr/bin/env bash
# scripts/start-rgw.sh DIR PORT
#
# A real S3 endpoint for the tests and the benchmark: a single-node, throw-away Ceph cluster
# (one monitor, one OSD keeping objects in memory, no manager, no cephx) and a RADOS Gateway on
# 127.0.0.1:PORT, all state and logs under DIR. Nothing is written to /etc/ceph and no service
# manager is involved, so an unprivileged user can run it. Needs Debian's `ceph` and `radosgw`
# (scripts/install-test-tools.sh installs them).
#
# Prints one line, also written to DIR/env, that a shell can eval:
#   S3_ENDPOINT=http://127.0.0.1:PORT S3_ACCESS_KEY=... S3_SECRET_KEY=... RGW_PIDS="mon osd rgw"
# Stop it with: kill $RGW_PIDS (the daemons), then remove DIR.
#
# Settings from the environment: S3_ACCESS_KEY, S3_SECRET_KEY (the user's keys),
# RGW_MEMORY_BYTES (what the in-memory OSD may hold, default 4 GiB), RGW_START_SECONDS (default 120).
set -euo pipefail

dir=${1:?usage: start-rgw.sh DIR PORT}
port=${2:?usage: start-rgw.sh DIR PORT}
access_key=${S3_ACCESS_KEY:-wharftestaccesskey01}
secret_key=${S3_SECRET_KEY:-wharftestsecretkey0000000000000000000001}
memory_bytes=${RGW_MEMORY_BYTES:-4294967296}
give_up_at=$(( $(date +%s) + ${RGW_START_SECONDS:-120} ))

for tool in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool python3; do
  command -v "$tool" >/dev/null || { echo "start-rgw: $tool is missing; run scripts/install-test-tools.sh" >&2; exit 1; }
done
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
  echo "start-rgw: $dir is not empty; give a new directory" >&2
  exit 1
fi
mkdir -p "$dir"/{mon,osd,rgw,log,run}
dir=$(cd "$dir" && pwd)
conf=$dir/ceph.conf
ceph_args=(-c "$conf")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mon_port=$(free_port)
fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')

# Loopback only, msgr2 only, no authentication between daemons: a disposable test cluster.
cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
log to stderr = false
mon cluster log file = $dir/log/cluster.log
crash dir = $dir/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false

[mon]
mon data = $dir/mon/\$cluster-\$id
# The gateway's first start creates its pools one map change at a time: commit changes at once.
paxos propose interval = 0.01
paxos min wait = 0.001

[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $memory_bytes

[client.rgw.wharf]
rgw data = $dir/rgw
rgw frontends = beast endpoint=127.0.0.1:$port
rgw dns name = localhost
# The gateway asks for cephx and a secure monitor session unless told otherwise.
auth client required = none
ms mon client mode = crc
CONF

pids=()
stop_all() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
die() {
  echo "start-rgw: $*" >&2
  for log in "$dir"/log/*; do [ -f "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }; done
  stop_all
  exit 1
}
wait_for() { # wait_for WHAT PID COMMAND...
  local what=$1 pid=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "$what exited"
    [ "$(date +%s)" -lt "$give_up_at" ] || die "$what did not come up in time"
    sleep 0.3
  done
}
trap 'stop_all' INT TERM

# Monitor.
ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' >/dev/null
monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
ceph-mon "${ceph_args[@]}" -i a --mkfs --monmap "$dir/monmap" --keyring "$dir/keyring" || die "ceph-mon --mkfs failed"
ceph-mon "${ceph_args[@]}" -i a -f </dev/null >"$dir/log/mon.out" 2>&1 &
pids+=($!)
wait_for "the monitor" "${pids[0]}" timeout 10 ceph "${ceph_args[@]}" mon stat

# One OSD, objects in memory.
osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
osd_id=$(ceph "${ceph_args[@]}" osd new "$osd_uuid")
mkdir -p "$dir/osd/ceph-$osd_id"
ceph-osd "${ceph_args[@]}" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1 || die "ceph-osd --mkfs failed"
ceph-osd "${ceph_args[@]}" -i "$osd_id" -f </dev/null >"$dir/log/osd.out" 2>&1 &
pids+=($!)
osd_up() { ceph "${ceph_args[@]}" osd stat -f json | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["num_up_osds"] >= 1 else 1)'; }
wait_for "the OSD" "${pids[1]}" osd_up

# The gateway, then its S3 user.
radosgw "${ceph_args[@]}" -n client.rgw.wharf -f </dev/null >"$dir/log/rgw.out" 2>&1 &
pids+=($!)
wait_for "the RADOS Gateway" "${pids[2]}" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=2)"
radosgw-admin "${ceph_args[@]}" -n client.admin user create --uid=wharf --display-name=wharf \
  --access-key="$access_key" --secret-key="$secret_key" >"$dir/user.json" 2>"$dir/log/user-create.err" || die "radosgw-admin user create failed"

trap - INT TERM
line="S3_ENDPOINT=http://127.0.0.1:$port S3_ACCESS_KEY=$access_key S3_SECRET_KEY=$secret_key RGW_PIDS=\"${pids[*]}\""
echo "$line" >"$dir/env"
echo "$line"
