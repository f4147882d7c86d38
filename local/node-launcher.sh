#!/bin/bash
# Runs one local node: joins the node's own cgroup first (with --keep-unit and no systemd on this
# machine, nspawn would otherwise put every node in the same /payload cgroup and the nodes'
# systemds would trample each other), boots it, and boots it again when the node reboots
# (nspawn exits 133 then).
set -u
name=$1 root=$2 bridge=$3
shift 3
for cg in "$@"; do echo $$ > "$cg/cgroup.procs"; done
while :; do
  systemd-nspawn -b -D "$root" -M "$name" --register=no --keep-unit \
    --network-bridge="$bridge" --resolv-conf=off --console=passive
  rc=$?
  echo "nspawn exit $rc $(date -Is)"
  [ "$rc" -eq 133 ] || exit "$rc"
done
