#!/bin/bash
# Runs one local node: joins the node's own cgroups first (with --keep-unit and no systemd on this
# machine, nspawn would otherwise put every node in the same /payload cgroup and the nodes'
# systemds would trample each other; and the nodes' shared cpu group, local/hosts.ts cpuGroup),
# boots it, and boots it again when the node reboots (nspawn exits 133 then).
set -u
name=$1 root=$2 bridge=$3
shift 3
for cg in "$@"; do echo $$ > "$cg/cgroup.procs"; done
tries=0
while :; do
  started=$SECONDS
  systemd-nspawn -b -D "$root" -M "$name" --register=no --keep-unit \
    --network-bridge="$bridge" --resolv-conf=off --console=passive
  rc=$?
  echo "nspawn exit $rc $(date -Is)"
  [ "$rc" -eq 133 ] && continue
  # Right after the previous instance died nspawn may still find the tree busy and exit at once:
  # try again a few times rather than leave the node down.
  if [ "$rc" -ne 0 ] && [ $((SECONDS - started)) -lt 5 ] && [ "$tries" -lt 10 ]; then
    tries=$((tries + 1)); sleep 1; continue
  fi
  exit "$rc"
done
