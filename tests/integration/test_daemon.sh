#!/usr/bin/env bash
# The daemon as a process: what it shows in ps and /proc/mounts, its debug output, and its
# refusal of bad options before anything is mounted.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_tmp
start_postgres
start_redis
load_sample_schema
psql_q "alter user postgres password 'sekrit-pw'" >/dev/null
PG_URL="postgresql://postgres:sekrit-pw@127.0.0.1:$PGPORT/sharded_test"
mount_sharded "debug"

check "the password is not in the daemon's command line" \
  bash -c "! tr '\0' ' ' < /proc/$DAEMON_PID/cmdline | grep -q sekrit-pw"
check "the password's place is masked" grep -q 'postgres:\*\*\*' <(tr '\0' ' ' < "/proc/$DAEMON_PID/cmdline")
check_eq "/proc/mounts shows source and type" "sharded fuse.sharded" \
  "$(awk -v m="$MNT" '$2 == m {print $1, $3}' /proc/mounts)"
mkdir "$MNT/d1"
cat "$MNT/d1/User/1.json" >/dev/null
check "-o debug logs libfuse's requests" grep -q 'opcode: LOOKUP' "$T/daemon.log"
check "the password is never logged" bash -c "! grep -v '^###' '$T/daemon.log' | grep -q sekrit-pw"

# bad NAME STATUS OPTIONS: the mount fails at once with exit STATUS (the man page's: 2 for a
# usage error, 1 for a failure to connect or load), one line, and nothing mounted. A timeout
# (124) is never a refusal.
bad() {
  local out status=0
  mkdir -p "$T/m-$1"
  out=$(timeout 20 "$SHARDED_BUILD_DIR/mount.sharded" -f -o "$3" "$T/m-$1" 2>&1) || status=$?
  check_eq "$1: refused with exit status $2" "$2" "$status"
  check_eq "$1: one line of explanation" 1 "$(grep -c . <<<"$out")"
  check "$1: nothing mounted" bash -c "! mountpoint -q '$T/m-$1'"
  BAD_OUT=$out
}
bad "bad ttl" 2 "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,ttl=soon"
bad "bad sync" 2 "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,sync=sometimes"
bad "bad max_doc" 2 "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,max_doc=-1"
bad "unknown model" 1 "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,models=User\\,Nope"
bad "bad redis url" 1 "pg=$PG_URL,redis=http://x,data=$T/d2"
bad "unknown local model" 1 "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,local=User\\,Nope"
check "... naming it" grep -q "local=: no exposed model 'Nope'" <<<"$BAD_OUT"

# An unknown option is a usage error found before connecting: with PostgreSQL unreachable the
# message is still about the typo.
dead_pg="postgresql://postgres@127.0.0.1:1/nope"
bad "unknown option" 2 "pg=$dead_pg,redis=$REDIS_URL,data=$T/d2,alow_other"
check "unknown option: the message names it" grep -q "unknown option 'alow_other'" <<<"$BAD_OUT"
check_eq "unknown option: not a connection error" "" "$(grep -Ei 'postgres|connect' <<<"$BAD_OUT" || true)"
bad "two unknown options" 2 "pg=$dead_pg,data=$T/d2,nope1,nope2=3"
check "two unknown options: both named" grep -q "'nope1,nope2=3'" <<<"$BAD_OUT"
mkdir -p "$T/m-x"
status=0
out=$(timeout 20 "$SHARDED_BUILD_DIR/mount.sharded" -f --bogus "$T/m-x" 2>&1) || status=$?
check_eq "an unknown command-line flag: exit 2" 2 "$status"
check "... naming it" grep -q "unknown option '--bogus'" <<<"$out"
# libfuse's own options still reach libfuse: with PostgreSQL unreachable they get as far as
# connecting (exit 1, a connection error), not refused as unknown
libfuse_opts="allow_other,default_permissions,debug,fsname=x,subtype=y,auto_unmount,max_read=131072"
libfuse_opts+=",ro,rw,nosuid,suid,nodev,dev,noexec,exec,atime,noatime,sync,async,dirsync,allow_root"
libfuse_opts+=",clone_fd,max_idle_threads=4,max_threads=8"
# (allow_other needs an owner: uid=, test_permissions.sh)
bad "libfuse options pass the check" 1 "pg=$dead_pg,redis=$REDIS_URL,data=$T/d2,uid=0,$libfuse_opts"
check "libfuse options: the failure is the connection" grep -q 'postgresql' <<<"$BAD_OUT"
check "-s and -d pass the check" bash -c \
  "timeout 20 '$SHARDED_BUILD_DIR/mount.sharded' -s -d -o 'pg=$dead_pg,data=$T/d2' '$T/m-x' 2>&1 | grep -q postgresql"
mkdir -p "$T/m4" "$T/m5"
# mounted (no -f) with OPTS on M, then: the /proc/mounts line matches RE and CMD succeeds
mounted_with() {
  local m=$1 opts=$2 re=$3 rc=0
  shift 3
  timeout 20 "$SHARDED_BUILD_DIR/mount.sharded" -o "pg=$PG_URL,redis=$REDIS_URL,data=$T/d-${m##*/},$opts" \
    "$m" || return 1
  wait_for 5 is_mounted "$m" || return 1
  awk -v m="$m" '$2 == m' /proc/mounts | grep -Eq -- "$re" || rc=1
  ((rc)) || timeout 10 "$@" || rc=1
  wait_for 10 timeout 5 fusermount3 -u "$m" || rc=1
  return $rc
}
check "a mount with libfuse's options works (allow_other, fsname, max_read, noatime, ...)" mounted_with \
  "$T/m4" "uid=0,allow_other,default_permissions,fsname=demo,auto_unmount,max_read=131072,nosuid,nodev,noatime" \
  '^demo [^ ]+ fuse\.sharded rw,nosuid,nodev,noatime,.*allow_other,max_read=131072' mkdir "$T/m4/b"
check "-o ro mounts read-only" mounted_with "$T/m5" "ro,subtype=sharded" \
  '^sharded [^ ]+ fuse\.sharded ro,' bash -c "mkdir '$T/m5/b' 2>&1 | grep -q 'Read-only file system'"
mkdir -p "$T/m3"
check "models=User exposes only User" bash -c "
  timeout 20 '$SHARDED_BUILD_DIR/mount.sharded' -o 'pg=$PG_URL,redis=$REDIS_URL,data=$T/d3,models=User' '$T/m3' &&
  mkdir '$T/m3/b' && ls '$T/m3/b' | grep -qx User && ! ls '$T/m3/b' | grep -qx Order;
  status=\$?; fusermount3 -u '$T/m3'; exit \$status"

# local=User: a User record a block does not hold does not exist (no read-through), and new
# ones are written and synced as usual
mkdir -p "$T/m6"
check "local=User mounts" timeout 20 "$SHARDED_BUILD_DIR/mount.sharded" \
  -o "pg=$PG_URL,redis=$REDIS_URL,data=$T/d6,local=User" "$T/m6"
check "local=User: mkdir a block" mkdir "$T/m6/b"
check_eq "local=User: User 1 is in PostgreSQL" 1 "$(psql_q 'select count(*) from "User" where id = 1')"
check "local=User: but not in the block, so User/1.json does not exist" bash -c \
  "cat '$T/m6/b/User/1.json' 2>&1 | grep -q 'No such file or directory'"
check "local=User: a new User record is written" bash -c \
  "echo '{\"id\":9601,\"email\":\"l9601@example.com\"}' > '$T/m6/b/User/9601.json'"
has_9601() { [[ $(psql_q 'select count(*) from "User" where id = 9601') == 1 ]]; }
check "local=User: ... and reaches PostgreSQL" wait_for 20 has_9601
check_eq "local=User: it reads back" l9601@example.com "$(jq -r .email "$T/m6/b/User/9601.json" 2>&1)"
check_eq "local=User: Order (not local) still reads through" 10 "$(jq -r .id "$T/m6/b/Order/10.json" 2>&1)"
fusermount3 -u "$T/m6" 2>/dev/null || true

if unmount_sharded; then _pass "clean unmount"; else _fail "clean unmount"; fi
finish
