# pgcluster step library. Runs on the host, as root, inside every step script.
# Each helper is idempotent and records what it changed (or, in check mode, what differs),
# so a second run reports nothing and PGCLUSTER_CHECK=1 previews drift without touching the host.
PGC_CHECK=${PGCLUSTER_CHECK:-0}
PGC_CHANGED=()
PGC_HANDLERS=()
PGC_T0=$SECONDS
PGC_TMP=$(mktemp -d /tmp/pgcluster.XXXXXX)
# Background helpers (holders of etcd locks) end with the step, however it ends.
PGC_BACKGROUND=()
trap 'for p in "${PGC_BACKGROUND[@]}"; do kill -INT "$p" 2>/dev/null || true; done; rm -rf "$PGC_TMP"' EXIT
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

pgc_log() { printf '[%s] %s\n' "$PGC_STEP" "$*"; }

# What an operator should be able to find later (a retried call, a switchover): in the step's
# output and in the host's journal (journalctl -t pgcluster), also when the step succeeds.
pgc_note() {
  pgc_log "$*"
  logger -t pgcluster -- "$PGC_STEP: $*" 2>/dev/null || true
}

# A change in apply mode, a difference in check mode.
pgc_changed() {
  PGC_CHANGED+=("$1")
  if [[ $PGC_CHECK == 1 ]]; then pgc_log "DRIFT $1"; else pgc_log "changed $1"; fi
}

# Notified handlers are also kept on the host until they have run: when a step fails after a
# file changed but before its service was restarted, the next run still restarts it.
PGC_PENDING="/var/lib/pgcluster/pending-handlers/${PGC_STEP//\//_}"

pgc_save_handlers() {
  [[ $PGC_CHECK == 1 ]] && return 0
  if ((${#PGC_HANDLERS[@]})); then
    install -d -m 0700 "$(dirname "$PGC_PENDING")"
    printf '%s\n' "${PGC_HANDLERS[@]}" > "$PGC_PENDING"
  else
    rm -f "$PGC_PENDING"
  fi
}

pgc_notify() {
  local h
  for h in "$@"; do
    [[ " ${PGC_HANDLERS[*]} " == *" $h "* ]] || PGC_HANDLERS+=("$h")
  done
  pgc_save_handlers
}

pgc_json_list() {
  local out="" item
  for item in "$@"; do
    item=${item//\\/\\\\}; item=${item//\"/\\\"}
    # Control characters (a value may hold a line break: it is quoted, not refused, in bash)
    # would break the result line's JSON: escaped or dropped.
    item=${item//$'\n'/\\n}; item=${item//$'\r'/\\r}; item=${item//$'\t'/\\t}
    [[ $item == *[[:cntrl:]]* ]] && item=$(printf '%s' "$item" | tr -d '\000-\037\177')
    out+="${out:+,}\"$item\""
  done
  printf '[%s]' "$out"
}

# Machine-readable last line: the driver counts changed/ok from it.
pgc_result() {
  local mode=apply
  [[ $PGC_CHECK == 1 ]] && mode=check
  printf 'PGCLUSTER-RESULT {"step":"%s","mode":"%s","changed":%s,"seconds":%d}\n' \
    "$PGC_STEP" "$mode" "$(pgc_json_list "${PGC_CHANGED[@]}")" "$((SECONDS - PGC_T0))"
}

# pgc_curl_as USER PASSWORD CURL-ARGS...: curl with basic auth kept out of argv (the
# credentials reach curl's config on stdin; printf is a shell builtin).
pgc_curl_as() {
  local user=$1 password=$2
  shift 2
  user=${user//\\/\\\\}; user=${user//\"/\\\"}
  password=${password//\\/\\\\}; password=${password//\"/\\\"}
  printf 'user = "%s:%s"\n' "$user" "$password" | curl -K - "$@"
}

pgc_fail() {
  printf '[%s] FAILED: %s\n' "$PGC_STEP" "$*" >&2
  exit 1
}

# pgc_retry SECONDS "WHAT" CMD...: an idempotent call to a service that may be busy or restarting
# for a moment (Patroni's REST API right after a switchover, say): run again until it succeeds,
# for up to SECONDS, and print its output. An answer no retry can change (HTTP 4xx other than 408
# and 429, as curl --fail reports it) fails at once. Failures name the last error, the tries and
# the time; a success after retries is noted.
pgc_retry() {
  local limit=$1 what=$2 start=$SECONDS tries=0 out err="" http
  shift 2
  while :; do
    tries=$((tries + 1))
    if out=$("$@" 2>"$PGC_TMP/retry.err"); then
      # On stderr: the caller takes stdout as the call's output.
      ((tries == 1)) || pgc_note "$what: ok on try $tries, after $((SECONDS - start)) s (before: $err)" >&2
      printf '%s\n' "$out"
      return 0
    fi
    err=$(grep -v '^[[:space:]]*$' "$PGC_TMP/retry.err" | tail -n 1 || true)
    err=${err:-exit status only, no message}
    http=$(grep -oE 'returned error: [0-9]{3}' <<<"$err" | grep -oE '[0-9]{3}$' || true)
    if [[ $http == 4* && $http != 408 && $http != 429 ]]; then pgc_fail "$what: $err (try $tries; not retried)"; fi
    ((SECONDS - start < limit)) || pgc_fail "$what: still failing after $tries tries in $((SECONDS - start)) s: $err"
    sleep 1
  done
}

# apt, one at a time: steps of different roles may run on one host at once, and unattended
# upgrades may hold dpkg's lock; wait for both instead of failing. A stalled mirror or proxy
# connection must not hang a step forever: bounded, retried.
pgc_apt() {
  local limit=$1
  shift
  # No HTTP pipelining: caching proxies (apt-cacher-ng) were seen to stall a pipelined update.
  flock -w 900 /run/pgcluster-apt.lock timeout "$limit" apt-get -o DPkg::Lock::Timeout=600 \
    -o Acquire::Retries=3 -o Acquire::http::Timeout=20 -o Acquire::https::Timeout=20 \
    -o Acquire::http::Pipeline-Depth=0 "$@"
}

# Package lists are refreshed at most once an hour, and whenever apt's sources or proxy changed.
pgc_apt_update() {
  local stamp=/var/lib/pgcluster/apt-lists-updated try
  if [[ -f $stamp ]] && (($(date +%s) - $(stat -c %Y "$stamp") < 3600)) && [[ -z $(find /etc/apt -newer "$stamp" -print -quit) ]]; then
    return 0
  fi
  for try in 1 2 3; do
    # --error-on=any: an index that could not be fetched fails the update (apt's default is to
    # warn and exit 0, which was seen to end in "Unable to locate package" with no lists at all).
    if pgc_apt 90 update -q --error-on=any >"$PGC_TMP/apt.log" 2>&1; then
      install -d -m 0755 /var/lib/pgcluster
      touch "$stamp"
      return 0
    fi
    pgc_log "apt-get update failed (try $try of 3): $(grep -E '^(E|W):' "$PGC_TMP/apt.log" | tail -n 1)"
    sleep 3
  done
  tail -n 20 "$PGC_TMP/apt.log" >&2
  pgc_fail "apt-get update failed 3 times (is the apt proxy / mirror reachable from $(hostname)?)"
}

# pgc_packages PKG... : install what is missing (one apt transaction).
pgc_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local m
  for m in "${missing[@]}"; do pgc_changed "package:$m"; done
  [[ $PGC_CHECK == 1 ]] && return 0
  pgc_apt_update
  if ! pgc_apt 900 install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}" >"$PGC_TMP/apt.log" 2>&1; then
    # Lists older than the mirror's pool (a point release since): refresh once and retry.
    rm -f /var/lib/pgcluster/apt-lists-updated
    pgc_apt_update
    pgc_apt 900 install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}" >"$PGC_TMP/apt.log" 2>&1 \
      || { tail -n 20 "$PGC_TMP/apt.log" >&2; pgc_fail "apt-get install ${missing[*]} failed"; }
  fi
}

pgc_mode_octal() { printf '%o' "$((8#$1))"; }

# pgc_dir PATH OWNER GROUP MODE
pgc_dir() {
  local path=$1 want
  want="$2:$3 $(pgc_mode_octal "$4")"
  if [[ ! -d $path ]]; then
    pgc_changed "dir:$path"
    [[ $PGC_CHECK == 1 ]] || install -d -o "$2" -g "$3" -m "$4" "$path"
  elif [[ $(stat -c '%U:%G %a' "$path") != "$want" ]]; then
    pgc_changed "dir:$path (owner/mode)"
    [[ $PGC_CHECK == 1 ]] || { chown "$2:$3" "$path"; chmod "$4" "$path"; }
  fi
}

# pgc_file PATH OWNER GROUP MODE [--secret] [--notify HANDLER]... [--validate 'CMD {}'] < CONTENT
# Writes atomically, only when content, owner or mode differ. --validate runs CMD on the new
# content first ({} is its path) and refuses to install a file the service would reject.
pgc_file() {
  local path=$1 owner=$2 group=$3 mode=$4
  shift 4
  local secret=0 validate="" notify=()
  while (($#)); do
    case $1 in
      --secret) secret=1 ;;
      --notify) notify+=("$2"); shift ;;
      --validate) validate=$2; shift ;;
      *) pgc_fail "pgc_file: unknown option $1" ;;
    esac
    shift
  done
  local new="$PGC_TMP/file.new" what=""
  cat >"$new"
  if [[ ! -f $path ]]; then
    what="created"
  elif ! cmp -s "$new" "$path"; then
    what="content"
  elif [[ $(stat -c '%U:%G %a' "$path") != "$owner:$group $(pgc_mode_octal "$mode")" ]]; then
    what="owner/mode"
  fi
  [[ -n $what ]] || return 0
  pgc_changed "file:$path ($what)"
  if [[ $PGC_CHECK == 1 ]]; then
    if [[ $what == content ]]; then
      if [[ $secret == 1 ]]; then pgc_log "  (holds secrets: diff not shown)"
      else diff -u --label "$path (host)" --label "$path (plan)" "$path" "$new" | sed 's/^/    /' || true; fi
    fi
    return 0
  fi
  if [[ -n $validate ]]; then
    chown "$owner:$group" "$new"; chmod "$mode" "$new"
    local out
    out=$(${validate//\{\}/$new} 2>&1) || { printf '%s\n' "$out" | tail -n 20 >&2; pgc_fail "new $path failed validation ($validate); the old file is kept"; }
  fi
  # Only a missing parent is created: install -d would also reset an existing one's owner/mode.
  [[ -d $(dirname "$path") ]] || install -d -m 0755 "$(dirname "$path")"
  install -o "$owner" -g "$group" -m "$mode" "$new" "$path.pgcluster-new"
  mv -f "$path.pgcluster-new" "$path"
  ((${#notify[@]} == 0)) || pgc_notify "${notify[@]}"
}

# pgc_absent PATH [--notify H]...: remove a file pgcluster no longer wants.
pgc_absent() {
  local path=$1
  shift
  [[ -e $path ]] || return 0
  pgc_changed "absent:$path"
  [[ $PGC_CHECK == 1 ]] && return 0
  rm -f "$path"
  [[ ${1:-} == --notify ]] && pgc_notify "$2"
  return 0
}

# pgc_service NAME [--no-block]: enabled at boot and running.
pgc_service() {
  local unit=$1 block=()
  [[ ${2:-} == --no-block ]] && block=(--no-block)
  if ! systemctl is-enabled -q "$unit" 2>/dev/null; then
    pgc_changed "service:$unit enabled"
    [[ $PGC_CHECK == 1 ]] || systemctl enable -q "$unit"
  fi
  if ! systemctl is-active -q "$unit"; then
    [[ $PGC_CHECK == 1 ]] || pgc_daemon_reload_now
    pgc_changed "service:$unit started"
    if [[ $PGC_CHECK != 1 ]]; then
      systemctl start "${block[@]}" "$unit" || { journalctl -u "$unit" -n 20 --no-pager >&2 || true; pgc_fail "service $unit did not start"; }
      # A service started here needs no restart/reload for the files written before it.
      local h kept=()
      for h in "${PGC_HANDLERS[@]}"; do [[ $h == *:"$unit" ]] || kept+=("$h"); done
      PGC_HANDLERS=("${kept[@]}")
      pgc_save_handlers
    fi
  fi
}

# A unit file or drop-in written earlier in this step must be read before a unit starts: systemd
# starts a loaded unit as it was loaded. (An etcd member started before its drop-in was read
# missed the bootstrap list and formed a cluster of its own.) Runs a pending daemon-reload now.
pgc_daemon_reload_now() {
  local h kept=() pending=0
  for h in "${PGC_HANDLERS[@]}"; do if [[ $h == daemon-reload ]]; then pending=1; else kept+=("$h"); fi; done
  ((pending)) || return 0
  systemctl daemon-reload || pgc_fail "handler daemon-reload failed"
  pgc_changed "handler:daemon-reload"
  PGC_HANDLERS=("${kept[@]}")
  pgc_save_handlers
}

# pgc_service_stopped NAME: disabled and not running (a service another host runs).
pgc_service_stopped() {
  local unit=$1
  if systemctl is-enabled -q "$unit" 2>/dev/null; then
    pgc_changed "service:$unit disabled"
    [[ $PGC_CHECK == 1 ]] || systemctl disable -q "$unit"
  fi
  if systemctl is-active -q "$unit"; then
    pgc_changed "service:$unit stopped"
    [[ $PGC_CHECK == 1 ]] || systemctl stop "$unit"
  fi
}

# Run the handlers notified by changed files: "restart:unit", "reload:unit", "daemon-reload",
# or "run:function" (a function defined by the step; "run:function:unit" when it restarts that
# unit, so that a start of the unit in this step makes it unnecessary, like restart:unit).
pgc_handlers() {
  # Not re-entered from a handler (a handler may wait with pgc_wait, which runs handlers first).
  [[ $PGC_CHECK == 1 || ${PGC_IN_HANDLERS:-0} == 1 ]] && return 0
  PGC_IN_HANDLERS=1
  local h fn ordered=()
  # systemd must read changed unit files before anything (re)starts a unit.
  for h in "${PGC_HANDLERS[@]}"; do [[ $h == daemon-reload ]] && ordered+=("$h"); done
  for h in "${PGC_HANDLERS[@]}"; do [[ $h == daemon-reload ]] || ordered+=("$h"); done
  for h in "${ordered[@]}"; do
    case $h in
      daemon-reload) systemctl daemon-reload ;;
      restart:*) systemctl restart "${h#restart:}" ;;
      # A stopped service reads its files when it starts, and so does one restarted here.
      reload:*)
        if [[ " ${ordered[*]} " == *" restart:${h#reload:} "* ]] || ! systemctl is-active -q "${h#reload:}"; then
          continue
        fi
        systemctl reload "${h#reload:}" ;;
      run:*) fn=${h#run:}; "${fn%%:*}" ;;
    esac || pgc_fail "handler $h failed"
    pgc_changed "handler:$h"
  done
  PGC_HANDLERS=()
  pgc_save_handlers
  PGC_IN_HANDLERS=0
}

# pgc_wait SECONDS "WHAT" CMD...: bounded wait; says what it waited for and how long.
# CMD's last output line is shown when the wait runs out (it may say e.g. "2/3 members").
# Pending handlers run first: a wait is about services as the files now describe them.
pgc_wait() {
  local limit=$1 what=$2 start=$SECONDS out=""
  shift 2
  [[ $PGC_CHECK == 1 ]] && return 0
  pgc_handlers
  until out=$("$@" 2>&1); do
    if ((SECONDS - start >= limit)); then
      pgc_fail "timed out after ${limit} s waiting for $what: $(printf '%s' "$out" | tail -n 1)"
    fi
    sleep 0.5
  done
  pgc_log "$what: ok after $((SECONDS - start)) s"
}

# Handlers left pending by an earlier, interrupted run of this step.
if [[ -s $PGC_PENDING ]]; then
  while IFS= read -r pgc_h; do
    [[ -n $pgc_h ]] || continue
    PGC_HANDLERS+=("$pgc_h")
    [[ $PGC_CHECK == 1 ]] && pgc_changed "pending handler:$pgc_h"
  done < "$PGC_PENDING"
fi
