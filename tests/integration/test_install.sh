#!/usr/bin/env bash
# At home on a Linux server (issue 7): `cmake --install` into a staging prefix, the man pages,
# mount(8) with -t fuse.sharded and through an fstab file (mount -T), the mount(8) helper's
# option handling, the daemon detaching only once mounted, failures before that reported on
# the terminal, one daemon per data directory, SIGTERM, and the systemd units checked with
# systemd-analyze verify.
#
# mount(8) looks for helpers in /sbin only, so for the mount(8) part this test links
# /sbin/mount.fuse.sharded to the staged helper and removes the link on every exit path. It
# refuses to replace a /sbin/mount.fuse.sharded that is already there.
source "$(dirname "$0")/lib.sh"

setup_tmp
P=$T/prefix
SBIN_LINK=/sbin/mount.fuse.sharded
LINKED=0

# Our own EXIT trap: remove the /sbin link (only if it is ours), then the harness's cleanup.
install_cleanup() {
  local rc=$?
  set +e   # under set -e, the (exit $rc) below would end the trap before cleanup
  if ((LINKED)) && [[ -L $SBIN_LINK && $(readlink "$SBIN_LINK") == "$P"/* ]]; then
    rm -f "$SBIN_LINK"
  fi
  (exit "$rc")
  cleanup
}
trap install_cleanup EXIT

# Daemons that mount(8) started detach: catch their ASan reports in files, and find their pids.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/asan"

# daemon_of DIR: the pid of the mount.sharded process serving DIR (its command line ends
# with DIR), empty if none.
daemon_of() {
  local f pid cmd
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    cmd=$(tr '\0' '\n' 2>/dev/null <"$f") || continue
    if [[ $(tail -n 1 <<<"$cmd") == "$1" && $(head -n 1 <<<"$cmd") == *mount.sharded ]]; then
      echo "$pid"
      return 0
    fi
  done
}

mount_line() { awk -v d="$1" '$2 == d' /proc/mounts; }

# unmounted_and_gone DIR PID: DIR is not mounted and PID has exited (within 15 s).
unmounted_and_gone() {
  ! is_mounted "$1" && wait_exit "$2" 15
}

# ---------------------------------------------------------------------------------------------
# cmake --install into a staging prefix

require "cmake --install into a staging prefix" \
  cmake --install "$SHARDED_BUILD_DIR" --prefix "$P"
for f in bin/mount.sharded bin/sharded sbin/mount.fuse.sharded; do
  check "installed and executable: $f" test -x "$P/$f"
done
# the benchmark is a developer's tool: installed only when asked for
if grep -q '^INSTALL_BENCH:BOOL=ON$' "$SHARDED_BUILD_DIR/CMakeCache.txt"; then
  check "installed with -DINSTALL_BENCH=ON: bin/sharded-bench" test -x "$P/bin/sharded-bench"
else
  check "not installed without -DINSTALL_BENCH=ON: bin/sharded-bench" test ! -e "$P/bin/sharded-bench"
fi
for f in share/man/man8/mount.sharded.8 share/man/man1/sharded.1 \
         lib/systemd/system/sharded@.service share/doc/sharded/examples/mnt-blocks.mount; do
  check "installed: $f" test -s "$P/$f"
done
check_eq "no link in /sbin from a staged install" "" \
  "$(readlink "$SBIN_LINK" 2>/dev/null | grep -F "$P" || true)"
check_eq "sharded@.service runs the installed mount.sharded" \
  "ExecStart=$P/bin/mount.sharded -f -o \${SHARDED_OPTIONS} %f" \
  "$(grep '^ExecStart=' "$P/lib/systemd/system/sharded@.service")"

# ---------------------------------------------------------------------------------------------
# man pages

man_renders() {
  local out err
  err=$(MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null)
  [[ -z $err ]] || { echo "warnings: $err"; return 1; }
  out=$(MANWIDTH=80 man -l "$1" 2>/dev/null)
  grep -q "^NAME" <<<"$out" && grep -q "$2" <<<"$out"
}
check "man -l renders mount.sharded.8 without warnings" \
  man_renders "$P/share/man/man8/mount.sharded.8" "fuse.sharded"
check "man -l renders sharded.1 without warnings" \
  man_renders "$P/share/man/man1/sharded.1" "dlq retry"
check "man finds both pages in the prefix's MANPATH" \
  env MANPATH="$P/share/man" man -w mount.sharded sharded
check "man ./docs/mount.sharded.8 works from the source tree" \
  man_renders "$SHARDED_SOURCE_DIR/docs/mount.sharded.8" "mount.sharded"

# ---------------------------------------------------------------------------------------------
# systemd units

# tools/deps.sh installs systemd, so a missing systemd-analyze is a failure, not a skip
check "systemd-analyze is installed" command -v systemd-analyze
if ((CHECK_RC == 0)); then
  mkdir -p "$T/units"
  cp "$P/share/doc/sharded/examples/mnt-blocks.mount" "$T/units/"
  # man:fusermount3(1) and friends: the prefix's man pages and the system's
  check "systemd-analyze verify sharded@mnt-blocks.service (installed template)" \
    env MANPATH="$P/share/man:" systemd-analyze verify \
    "$P/lib/systemd/system/sharded@mnt-blocks.service"
  check "systemd-analyze verify mnt-blocks.mount (example)" \
    env MANPATH="$P/share/man:" systemd-analyze verify "$T/units/mnt-blocks.mount"
  sed "s|$P/bin/mount.sharded|$T/nowhere/mount.sharded|" \
    "$P/lib/systemd/system/sharded@.service" >"$T/units/sharded@.service"
  # verify is not a rubber stamp: a unit whose binary is missing fails, for that reason (not,
  # say, because the unit file was not found)
  rc=0
  out=$(timeout 60 systemd-analyze verify --man=no "$T/units/sharded@x.service" 2>&1) || rc=$?
  check "systemd-analyze verify fails for a missing ExecStart binary" test "$rc" -ne 0 -a "$rc" -ne 124
  check "... complaining about that binary" grep -qF \
    "sharded@x.service: Command $T/nowhere/mount.sharded is not executable" <<<"$out"
fi

# ---------------------------------------------------------------------------------------------
# The servers, and the helper in /sbin

start_postgres
load_sample_schema
start_redis
MNT=$T/mnt
DATA=$T/data
mkdir -p "$MNT" "$DATA"
OPTS="pg=$PG_URL,redis=$REDIS_URL,data=$DATA"

if [[ -e $SBIN_LINK || -L $SBIN_LINK ]]; then
  _fail "link $SBIN_LINK to the staged helper" \
    "$SBIN_LINK exists already ($(readlink -f "$SBIN_LINK")); not replacing it"
  finish
fi
ln -s "$P/sbin/mount.fuse.sharded" "$SBIN_LINK"
LINKED=1
# only the staged binaries, so that nothing else on the machine is tested by mistake
export PATH="$P/sbin:$P/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# ---------------------------------------------------------------------------------------------
# mount -t fuse.sharded

check "mount -t fuse.sharded sharded MNT -o pg=...,redis=...,data=..." \
  mount -t fuse.sharded sharded "$MNT" -o "$OPTS"
check "mounted as soon as mount(8) returned" is_mounted "$MNT"
check_eq "/proc/mounts: source sharded, type fuse.sharded" "sharded $MNT fuse.sharded" \
  "$(mount_line "$MNT" | cut -d' ' -f1-3)"
pid=$(daemon_of "$MNT")
[[ -n $pid ]] && track_pid "$pid"
check "the daemon runs from the prefix" test "$(readlink "/proc/${pid:-0}/exe")" = "$P/bin/mount.sharded"
check "the daemon detached (a session of its own)" \
  test "$(ps -o sid= -p "${pid:-0}" | tr -d ' ')" != "$(ps -o sid= -p $$ | tr -d ' ')"
check "mkdir a block through the mount(8) mount" mkdir "$MNT/user-1"
check_eq "read-through works" "Ada Lovelace" "$(jq -r .name "$MNT/user-1/User/1.json" 2>&1)"
check "a write" sh -c "echo '{\"name\":\"Ada L.\"}' > '$MNT/user-1/User/1.json'"
synced() { grep -qx 'pending 0' "$MNT/user-1/sync-status"; }
check "the write syncs" wait_for 20 synced
check_eq "PostgreSQL has it" "Ada L." "$(psql_q 'select name from "User" where id = 1')"
check "umount MNT" umount "$MNT"
check "unmounted, and the daemon exited" unmounted_and_gone "$MNT" "${pid:-0}"

# ---------------------------------------------------------------------------------------------
# an fstab line, with options meant for mount(8) only

printf 'sharded %s fuse.sharded %s,_netdev,noauto,nofail,x-systemd.requires=network-online.target,comment=test 0 0\n' \
  "$MNT" "$OPTS" >"$T/fstab"
check "mount -f -T FSTAB MNT (fake) mounts nothing" mount -f -T "$T/fstab" "$MNT"
check_fails "nothing mounted after mount -f" is_mounted "$MNT"
check "mount -T FSTAB MNT with _netdev,noauto,nofail,x-*,comment=" mount -T "$T/fstab" "$MNT"
check_eq "/proc/mounts: type fuse.sharded" "sharded $MNT fuse.sharded" \
  "$(mount_line "$MNT" | cut -d' ' -f1-3)"
pid=$(daemon_of "$MNT")
[[ -n $pid ]] && track_pid "$pid"
check_eq "the block and its record are still there" "Ada L." \
  "$(jq -r .name "$MNT/user-1/User/1.json" 2>&1)"
mkdir -p "$T/mnt2"
out=$(timeout 30 mount -t fuse.sharded sharded "$T/mnt2" -o "$OPTS" 2>&1)
rc=$?
check "a second daemon on the same data directory is refused" test "$rc" -ne 0 -a "$rc" -ne 124
check "... with a message naming the data directory" grep -Fq "'$DATA' is in use" <<<"$out"
check_fails "... and nothing mounted" is_mounted "$T/mnt2"
check "backup of a mounted block with sqlite3 .backup (README, Backups)" \
  sqlite3 "$DATA/user-1.sqlite" ".backup '$T/backup.sqlite'"
check_eq "the backup holds the record" "1" \
  "$(sqlite3 "$T/backup.sqlite" "select count(*) from records where model = 'User' and pk = '1'" 2>&1)"
check "fusermount3 -u MNT" fusermount3 -u "$MNT"
check "unmounted, and the daemon exited" unmounted_and_gone "$MNT" "${pid:-0}"
check "mount -a -T FSTAB" mount -a -T "$T/fstab"
check_fails "... skips the noauto line" is_mounted "$MNT"

# ---------------------------------------------------------------------------------------------
# the helper: passwords, refused options, failures before mounting

check "mount -f -v shows the command without the password" \
  sh -c "mount -f -v -t fuse.sharded sharded '$MNT' -o 'pg=postgresql://u:s3cret@127.0.0.1:1/x' 2>&1 |
         grep -F 'pg=...' && ! mount -f -v -t fuse.sharded sharded '$MNT' \
         -o 'pg=postgresql://u:s3cret@127.0.0.1:1/x' 2>&1 | grep -F s3cret"
check_fails "setuid= is refused" mount -t fuse.sharded sharded "$MNT" -o "$OPTS,setuid=nobody"
check_fails "an unknown option is refused" mount -t fuse.sharded sharded "$MNT" -o "$OPTS,bogus=1"
check_fails "nothing mounted after the refusals" is_mounted "$MNT"

bad="pg=postgresql://postgres@127.0.0.1:1/nodb,redis=$REDIS_URL,data=$DATA"
out=$(timeout 30 mount -t fuse.sharded sharded "$MNT" -o "$bad" 2>&1)
rc=$?
check "mount(8) with an unreachable PostgreSQL fails" test "$rc" -ne 0 -a "$rc" -ne 124
check "... with the daemon's message on the terminal" grep -q '^mount.sharded: ' <<<"$out"
check_fails "... and nothing mounted" is_mounted "$MNT"

out=$(timeout 30 "$P/bin/mount.sharded" -o "$bad" "$MNT" 2>&1)
rc=$?
check_eq "mount.sharded (no -f) with an unreachable PostgreSQL: exit status 1" 1 "$rc"
check "... one line on the terminal" test "$(grep -c . <<<"$out")" = 1
out=$(timeout 30 "$P/bin/mount.sharded" -o "pg=$PG_URL,redis=redis://127.0.0.1:1,data=$DATA" \
  "$MNT" 2>&1)
rc=$?
check_eq "mount.sharded (no -f) with an unreachable Redis: exit status 1" 1 "$rc"
check_fails "... and nothing mounted" is_mounted "$MNT"

# ---------------------------------------------------------------------------------------------
# mount.sharded without -f, then SIGTERM

check "mount.sharded -o ... MNT (no -f) returns" "$P/bin/mount.sharded" -o "$OPTS" "$MNT"
check "mounted as soon as it returned" is_mounted "$MNT"
pid=$(daemon_of "$MNT")
[[ -n $pid ]] && track_pid "$pid"
check "a read" test -s "$MNT/user-1/User/1.json"
check "SIGTERM" kill -TERM "${pid:-0}"
check "SIGTERM unmounted, and the daemon exited" unmounted_and_gone "$MNT" "${pid:-0}"

# ---------------------------------------------------------------------------------------------
# sharded@.service's command line, as systemd runs it: settings from the environment
# (DATABASE_URL, REDIS_URL, SHARDED_OPTIONS), -f, stopped by its ExecStop

unit=$P/lib/systemd/system/sharded@.service
start=$(sed -n 's/^ExecStart=//p' "$unit")
stop=$(sed -n 's/^ExecStop=-\{0,1\}//p' "$unit")
start=${start//"\${SHARDED_OPTIONS}"/data=$DATA}
start=${start//%f/$MNT}
stop=${stop//%f/$MNT}
: >"$T/service.log"
# shellcheck disable=SC2086 # the unit's command line, split into words as systemd does
DATABASE_URL=$PG_URL REDIS_URL=$REDIS_URL $start </dev/null >>"$T/service.log" 2>&1 &
spid=$!
track_pid "$spid"
check "the unit's ExecStart mounts (settings from DATABASE_URL, REDIS_URL)" \
  wait_for 15 is_mounted "$MNT"
check "the unit's daemon stays in the foreground (Type=simple)" alive "$spid"
check_eq "the block is there" "Ada L." "$(jq -r .name "$MNT/user-1/User/1.json" 2>&1)"
# shellcheck disable=SC2086
check "the unit's ExecStop unmounts" $stop
check "the daemon exits" wait_exit "$spid" 15
wait "$spid"
check_eq "... with status 0" 0 "$?"
check_fails "no sanitizer report from the unit's daemon" sanitizer_report "$T/service.log"

# ---------------------------------------------------------------------------------------------

asan_logs=$(ls "$T"/asan.* 2>/dev/null || true)
check_eq "no sanitizer report from detached daemons" "" "$asan_logs"
[[ -n $asan_logs ]] && head -n 40 "$T"/asan.*
finish
