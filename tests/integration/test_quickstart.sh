#!/usr/bin/env bash
# The README's first command as a newcomer runs it: tools/quickstart MOUNTPOINT starts a demo
# PostgreSQL and Redis, mounts with the sample loaders, and tools/quickstart stop takes it all
# down again. The demo lives in $T/demo (SHARDED_DEMO_DIR), never in /var/tmp/sharded-demo, and
# uses the binaries of $SHARDED_BUILD_DIR (SHARDED_BIN_DIR) instead of building build/ again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QS=$SHARDED_SOURCE_DIR/tools/quickstart
[[ -x $SHARDED_BUILD_DIR/mount.sharded ]] || die "no $SHARDED_BUILD_DIR/mount.sharded: build first"

quickstart() { timeout 120 env SHARDED_DEMO_DIR="$DEMO" SHARDED_BIN_DIR="$SHARDED_BUILD_DIR" "$QS" "$@"; }

# the processes of the demo, from its own pid files and state
demo_pids() {
  local pid
  pid=$(head -n 1 "$DEMO/pg/postmaster.pid" 2>/dev/null || true)
  [[ -n $pid ]] && echo "pg:$pid"
  pid=$(cat "$DEMO/redis/redis.pid" 2>/dev/null || true)
  [[ -n $pid ]] && echo "redis:$pid"
  pid=$(sed -n 's/^DAEMON_PID=//p' "$DEMO/state" 2>/dev/null || true)
  [[ -n $pid ]] && echo "mount.sharded:$pid"
  return 0
}

# leftovers: every process whose command line names the demo directory or the mount point
leftovers() {
  local f pid args
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    args=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
    [[ $args == *"$DEMO/"* || $args == *" $MNT "* || $args == *" $MNT" ]] || continue
    [[ $args == *test_quickstart* || $args == *"$QS"* ]] && continue
    echo "$pid $args"
  done
}

gone() { ! alive "$1"; }

# On every exit path: the quickstart's own stop, then whatever is still running by its pid.
qs_cleanup() {
  local rc=$? p
  set +e
  if [[ -n ${DEMO:-} && -d $DEMO ]]; then
    quickstart stop >/dev/null 2>&1
    for p in $(demo_pids); do stop_pid "${p#*:}" 5; done
  fi
  (exit "$rc")
  cleanup
}

setup_tmp
trap qs_cleanup EXIT
DEMO=$T/demo
MNT=$T/mnt
t0=$SECONDS

# --- start ---------------------------------------------------------------------------------
out=$(quickstart "$MNT" 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out" >"$T/quickstart.out"
check_eq "tools/quickstart MOUNTPOINT exits 0" 0 "$rc"
((rc == 0)) || { show_log "$T/quickstart.out"; finish; }
check "it uses the binaries already built" grep -q 'using the binaries in' <<<"$out"
check "it did not build" test ! -e "$DEMO/build.log"
check "it says where it mounted" grep -qF "sharded is mounted at $MNT" <<<"$out"
require "the mount point is mounted" is_mounted "$MNT"
check "the demo lives in SHARDED_DEMO_DIR" test -f "$DEMO/state" -a -f "$DEMO/pg/PG_VERSION"
check "the daemon's pid is recorded" test -n "$(sed -n 's/^DAEMON_PID=//p' "$DEMO/state")"

# --- what the quickstart tells a newcomer to try ----------------------------------------------
check "ls M" ls "$MNT"
check "ls M shows the metrics file" grep -qx metrics <<<"$(timeout 10 ls -A "$MNT")"
require "mkdir M/user-1" mkdir "$MNT/user-1"
check_eq "ls M/user-1" "Event Order User invalidate sync-status ttl" \
  "$(timeout 10 ls "$MNT/user-1" | tr '\n' ' ' | sed 's/ $//')"
check "the loader brought user 1's orders" test -n "$(timeout 10 ls "$MNT/user-1/Order")"
check "cat M/user-1/User/1.json is JSON of user 1" jq -e '.id == 1 and (.email | type == "string")' \
  "$MNT/user-1/User/1.json"
check "it was loaded, not read through (records > 0)" \
  bash -c "[[ \$(sed -n 's/^records //p' '$MNT/user-1/sync-status') -gt 0 ]]"

again=$(quickstart "$MNT" 2>&1) || true
check "running it again only says it is running" grep -q 'already running' <<<"$again"

# --- stop ------------------------------------------------------------------------------------
pids=$(demo_pids)
check_eq "three processes to stop (pg, redis, mount.sharded)" 3 "$(grep -c . <<<"$pids")"
check "tools/quickstart stop exits 0" quickstart stop
check "the mount is gone" bash -c "! grep -qF ' $MNT ' /proc/self/mountinfo"
for p in $pids; do
  check "${p%%:*} (pid ${p#*:}) has exited" wait_for 20 gone "${p#*:}"
done
check_eq "no process of the demo is left" "" "$(leftovers)"
check "stop again is harmless" quickstart stop

log "took $((SECONDS - t0)) s"
finish
