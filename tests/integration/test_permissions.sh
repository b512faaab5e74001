#!/usr/bin/env bash
# Who may read and write (issue 13): uid=, gid= and umask= give the whole tree one owner, group
# and set of modes, which the kernel enforces (default_permissions). The everyday tools run as
# the owner (allowed), as another user (EACCES) and as root (allowed); a user the modes exclude
# cannot make the daemon read a row through from PostgreSQL; records, blocks and scratch files
# created by anyone belong to the mount's owner; allow_other without an owner and unknown user
# or group names are refused before connecting to anything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3   # not root's pyenv shim: the test users cannot reach /root
OWNER=shperm-own-$$
OTHER=shperm-oth-$$

remove_users() {
  local u
  for u in "$OWNER" "$OTHER"; do
    id "$u" >/dev/null 2>&1 && userdel "$u" >/dev/null 2>&1
    getent group "$u" >/dev/null && groupdel "$u" >/dev/null 2>&1
  done
  return 0
}
# the harness's cleanup first (it unmounts), then the users, whatever ended the test
perm_cleanup() {
  local rc=$?
  set +e
  (exit $rc)   # cleanup reads the test's status from $?
  cleanup
  remove_users
}

setup_tmp
trap perm_cleanup EXIT
cd "$T"   # the test users run tools here
for u in "$OWNER" "$OTHER"; do
  useradd -M -U -s /usr/sbin/nologin "$u" || die "useradd $u failed"
done
OWNER_UID=$(id -u "$OWNER") OWNER_GID=$(id -g "$OWNER")

# errno_as USER OP PATH: run one system call as USER, print its errno name (or OK)
cat >"$T/op.py" <<'EOF'
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "read": os.close(os.open(path, os.O_RDONLY))
    elif op == "write": os.close(os.open(path, os.O_WRONLY))
    elif op == "create": os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    elif op == "mkdir": os.mkdir(path)
    elif op == "unlink": os.unlink(path)
    elif op == "list": os.listdir(path)
    elif op == "stat": os.stat(path)
    elif op == "chmod": os.chmod(path, 0o600)
    elif op == "chown": os.chown(path, 0, 0)
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
chmod 644 "$T/op.py"
errno_as() { timeout 10 runuser -u "$1" -- "$PY" "$T/op.py" "$2" "$3"; }
as() { timeout 10 runuser -u "$1" -- "${@:2}"; }
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }

# $T is 0755 (lib.sh), but TMPDIR may lie under a directory they cannot search
require "the test users can reach $T" as "$OTHER" test -r "$T/op.py"

start_postgres
load_sample_schema
start_redis

# --- refused before connecting: PostgreSQL is unreachable, the message is about the option ---
dead_pg="postgresql://postgres@127.0.0.1:1/nope"
mkdir -p "$T/m-bad"
refused() {   # refused NAME OPTS MESSAGE_RE
  local status=0 out
  out=$(timeout 20 "$SHARDED_BUILD_DIR/mount.sharded" -f -o "pg=$dead_pg,data=$T/d-bad,$2" \
    "$T/m-bad" 2>&1) || status=$?
  check_eq "$1: exit 2" 2 "$status"
  check "$1: the message says why ($3)" grep -Eq "$3" <<<"$out"
  check_eq "$1: not a connection error" "" "$(grep -Ei 'postgres|connect' <<<"$out" || true)"
  check "$1: nothing mounted" bash -c "! grep -q ' $T/m-bad ' /proc/mounts"
}
refused "an unknown user name" "uid=no-such-user-$$" "unknown user 'no-such-user-$$'"
refused "an unknown group name" "uid=$OWNER,gid=no-such-group-$$" "unknown group 'no-such-group-$$'"
refused "a bad umask" "uid=$OWNER,umask=0999" "invalid umask '0999'"
refused "allow_other without an owner" "allow_other" "allow_other needs uid="

# --- the mount: owned by OWNER and its group (by name), umask 027 by default ----------------
mount_sharded "uid=$OWNER,gid=$OWNER,allow_other"
B=$MNT/b1
U=$B/User

check_eq "the root belongs to the owner, 0750" "$OWNER_UID:$OWNER_GID 750" "$(stat -c '%u:%g %a' "$MNT")"
check_eq "metrics: 0440" 440 "$(stat -c %a "$MNT/metrics")"

# the owner: every everyday tool
check "owner: mkdir of a block" as "$OWNER" mkdir "$B"
check_eq "the block belongs to the owner, 0750" "$OWNER_UID:$OWNER_GID 750" "$(stat -c '%u:%g %a' "$B")"
check_eq "a model directory: owner's, 0750" "$OWNER_UID:$OWNER_GID 750" "$(stat -c '%u:%g %a' "$U")"
check "owner: cat (read through)" bash -c "runuser -u '$OWNER' -- cat '$U/1.json' | grep -q Lovelace"
check_eq "a record: owner's, 0640" "$OWNER_UID:$OWNER_GID 640" "$(stat -c '%u:%g %a' "$U/1.json")"
check_eq "a writable control file: 0640" 640 "$(stat -c %a "$B/invalidate")"
check_eq "a read-only control file: 0440" 440 "$(stat -c %a "$B/sync-status")"
check "owner: echo > a new record" as "$OWNER" bash -c \
  "echo '{\"id\": 900, \"email\": \"o@example.com\"}' > '$U/900.json'"
check_eq "the new record is the owner's, 0640" "$OWNER_UID:$OWNER_GID 640" "$(stat -c '%u:%g %a' "$U/900.json")"
check "owner: sed -i" as "$OWNER" sed -i 's/o@example.com/sed@example.com/' "$U/900.json"
check_eq "sed -i changed the record" sed@example.com "$(jq -r .email "$U/900.json")"
check "owner: jq + mv" as "$OWNER" bash -c \
  "jq '.name = \"Jq\"' '$U/900.json' > '$U/900.tmp' && mv '$U/900.tmp' '$U/900.json'"
check_eq "jq + mv changed the record" Jq "$(jq -r .name "$U/900.json")"
check "owner: echo 1 > invalidate" as "$OWNER" bash -c "echo 1 > '$B/invalidate'"
check "owner: rm of a record" as "$OWNER" rm "$U/900.json"
check "rm deleted the row in PostgreSQL" wait_for 15 pg_is 0 'select count(*) from "User" where id = 900'
# a scratch file made by root belongs to the owner too, with the mount's modes
check "root: a scratch file" bash -c "echo draft > '$U/notes.txt'"
check_eq "the scratch file is the owner's, 0640" "$OWNER_UID:$OWNER_GID 640" "$(stat -c '%u:%g %a' "$U/notes.txt")"
check_eq "owner: chmod of a record: EPERM (modes are the mount's)" EPERM "$(errno_as "$OWNER" chmod "$U/1.json")"
check_eq "owner: chown of a record: EPERM" EPERM "$(errno_as "$OWNER" chown "$U/1.json")"

# another user: refused by the kernel, EACCES, whatever the tool
check_eq "other: read a cached record" EACCES "$(errno_as "$OTHER" read "$U/1.json")"
check_eq "other: write a record" EACCES "$(errno_as "$OTHER" write "$U/1.json")"
check_eq "other: create a record" EACCES "$(errno_as "$OTHER" create "$U/901.json")"
check_eq "other: mkdir of a block" EACCES "$(errno_as "$OTHER" mkdir "$MNT/b2")"
check_eq "other: write invalidate" EACCES "$(errno_as "$OTHER" write "$B/invalidate")"
check_eq "other: rm of a record" EACCES "$(errno_as "$OTHER" unlink "$U/1.json")"
check_eq "other: list a model directory" EACCES "$(errno_as "$OTHER" list "$U")"
check_eq "other: read metrics" EACCES "$(errno_as "$OTHER" read "$MNT/metrics")"
check "other: cat fails with 'Permission denied'" bash -c \
  "runuser -u '$OTHER' -- cat '$U/1.json' 2>&1 | grep -q 'Permission denied'"
check "other: echo > fails" bash -c \
  "! runuser -u '$OTHER' -- bash -c \"echo '{}' > '$U/1.json'\" 2>/dev/null"
check "other: sed -i fails" bash -c "! runuser -u '$OTHER' -- sed -i s/Ada/Eve/ '$U/1.json' 2>/dev/null"
check "other: echo 1 > invalidate fails" bash -c \
  "! runuser -u '$OTHER' -- bash -c \"echo 1 > '$B/invalidate'\" 2>/dev/null"
check_eq "the record is unchanged" "Ada Lovelace" "$(jq -r .name "$U/1.json")"

# read-through: the kernel refuses before the lookup, so the daemon never asks PostgreSQL
check_eq "other: read a row the block does not hold" EACCES "$(errno_as "$OTHER" read "$U/2.json")"
check_eq "other: stat it" EACCES "$(errno_as "$OTHER" stat "$U/2.json")"
check_eq "other: read an Order row the block does not hold" EACCES "$(errno_as "$OTHER" read "$B/Order/10.json")"
check "the block does not hold User 2 (nothing read through)" bash -c "! ls '$U' | grep -qx 2.json"
check_eq "... nor any Order" "" "$(ls "$B/Order")"

# root: allowed everything
check "root: cat" bash -c "cat '$U/3.json' | grep -q grace"
check "a row read through shows in the listing (the checks above can fail)" bash -c "ls '$U' | grep -qx 3.json"
check "root: echo > a record" bash -c "echo '{\"id\": 902, \"email\": \"r@example.com\"}' > '$U/902.json'"
check_eq "root's new record is the owner's" "$OWNER_UID:$OWNER_GID 640" "$(stat -c '%u:%g %a' "$U/902.json")"
check "root: mkdir of a block" mkdir "$MNT/b3"
check_eq "root's block is the owner's" "$OWNER_UID:$OWNER_GID 750" "$(stat -c '%u:%g %a' "$MNT/b3")"
check "root: rm" rm "$U/902.json"
check "unmount" unmount_sharded

# --- umask=007 and gid= by number: the group writes, others still get nothing ----------------
mount_sharded "uid=$OWNER_UID,gid=$OTHER,umask=007,allow_other"
check_eq "umask=007: a record is 0660, group $OTHER" "$OWNER_UID:$(id -g "$OTHER") 660" \
  "$(stat -c '%u:%g %a' "$MNT/b1/User/1.json")"
check_eq "... a block 0770" 770 "$(stat -c %a "$MNT/b1")"
check "a group member writes a record" as "$OTHER" bash -c \
  "echo '{\"id\": 903, \"email\": \"g@example.com\"}' > '$MNT/b1/User/903.json'"
check_eq "... which belongs to the owner" "$OWNER_UID" "$(stat -c %u "$MNT/b1/User/903.json")"
check "a group member: sed -i" as "$OTHER" sed -i s/g@example.com/sed@example.com/ "$MNT/b1/User/903.json"
check_eq "... changed the record" sed@example.com "$(jq -r .email "$MNT/b1/User/903.json")"
check "a group member: jq + mv" as "$OTHER" bash -c \
  "jq '.name = \"G\"' '$MNT/b1/User/903.json' > '$MNT/b1/User/903.tmp' && mv '$MNT/b1/User/903.tmp' '$MNT/b1/User/903.json'"
check_eq "... changed the record" G "$(jq -r .name "$MNT/b1/User/903.json")"
check "rm" rm "$MNT/b1/User/903.json"
check "unmount" unmount_sharded

# --- umask=066: others may not read records, so they may not search directories either ------
# (0711 would let them name a record, and naming it reads the row through from PostgreSQL)
mount_sharded "uid=$OWNER,umask=066,allow_other"
check_eq "gid= not given: the owner's primary group" "$OWNER_UID:$OWNER_GID" "$(stat -c %u:%g "$MNT")"
check_eq "umask=066: directories are 0700, not 0711" "700 700" \
  "$(stat -c %a "$MNT" "$MNT/b1/User" | tr '\n' ' ' | sed 's/ $//')"
check_eq "other: stat a row the block does not hold" EACCES "$(errno_as "$OTHER" stat "$MNT/b1/Order/11.json")"
check "... which was not read through" bash -c "! ls '$MNT/b1/Order' | grep -qx 11.json"
check "unmount" unmount_sharded

finish
