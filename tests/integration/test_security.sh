#!/usr/bin/env bash
# Bad input and security (issue 5): every bad document, name and control-file value is refused
# with the right errno, changes nothing in the block or in PostgreSQL, is logged once with the
# block, the file and the reason, and counts in the metrics. Identifiers that need quoting and
# JSON keys that look like SQL. No path leaves the mount or the data directory. Passwords stay
# out of the logs, the process list, sync-status and metrics.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3
PW=Sup3rSecretPw0rd
RPW=R3disS3cretPw0rd

jq_true() { timeout 10 jq -e "$2" "$1" >/dev/null; }
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }
status_of() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }
pending_is_zero() { [[ $(status_of pending) == 0 ]]; }
content() { timeout 10 cat "$1" 2>/dev/null || echo "<absent>"; }
serving() { jq_true "$B/User/1.json" '.id == 1'; }
snapshot() {
  psql_q 'select json_agg(u order by id) from "User" u' &&
    psql_q 'select json_agg(o order by id) from "Order" o' &&
    psql_q 'select json_agg(e order by id) from "Event" e'
}
refused_total() { timeout 10 awk '$1 == "sharded_refused_writes_total" {print $2}' "$MNT/metrics"; }
log_size() { stat -c %s "$T/daemon.log"; }
log_since() { tail -c +"$(($1 + 1))" "$T/daemon.log"; }

write_fsop() {
  cat >"$T/fsop.py" <<'EOF'
import errno, os, sys
op, a = sys.argv[1], sys.argv[2:]
def name(e): return errno.errorcode.get(e.errno, str(e.errno))
step = "open"
try:
    if op in ("write", "writefile", "append"):
        body = os.fsencode(a[1]) if op != "writefile" else open(a[1], "rb").read()
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if op == "append" else os.O_TRUNC)
        fd = os.open(os.fsencode(a[0]), flags, 0o644)
        step = "write"
        try:
            while body:          # a big write reaches FUSE in pieces: a short count is no error
                body = body[os.write(fd, body):]
        except OSError:
            try: os.close(fd)
            except OSError: pass
            raise
        step = "close"
        os.close(fd)
    elif op == "create": os.close(os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    elif op == "mkdir": os.mkdir(os.fsencode(a[0]))
    elif op == "rmdir": os.rmdir(os.fsencode(a[0]))
    elif op == "read": open(a[0], "rb").read()
    elif op == "listdir": os.listdir(a[0])
    elif op in ("createat", "mkdirat"):     # a[1] relative to the directory a[0], as given
        dfd = os.open(a[0], os.O_RDONLY | os.O_DIRECTORY)
        try:
            if op == "mkdirat": os.mkdir(os.fsencode(a[1]), dir_fd=dfd)
            else: os.close(os.open(os.fsencode(a[1]), os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dfd))
        finally:
            os.close(dfd)
    elif op == "rename": os.rename(os.fsencode(a[0]), os.fsencode(a[1]))
    elif op == "symlink": os.symlink(os.fsencode(a[0]), os.fsencode(a[1]))
    elif op == "link": os.link(os.fsencode(a[0]), os.fsencode(a[1]))
    else: sys.exit("unknown op " + op)
    print("OK")
except OSError as e:
    print(name(e) + ("@" + step if op in ("write", "writefile", "append") else ""))
EOF
}
fsop() { timeout 20 "$PY" "$T/fsop.py" "$@"; }

# bad_doc NAME EXPECTED_RE FILE BODY [OP]: the write's outcome (ERRNO@step) matches EXPECTED_RE;
# the file and PostgreSQL are unchanged; one log line names the block, the file and a reason;
# sharded_refused_writes_total grew by one; the daemon still serves.
bad_doc() {
  local name=$1 want=$2 file=$3 body=$4 op=${5:-write}
  local before pg_before n0 n1 off got lines rel
  rel=${file#"$B/"}
  before=$(content "$file")
  pg_before=$(snapshot)
  n0=$(refused_total)
  off=$(log_size)
  got=$(fsop "$op" "$file" "$body" 2>&1)
  if [[ $got =~ ^($want)$ ]]; then _pass "refused: $name ($got)"; else
    _fail "refused: $name" "expected: $want" "actual:   $got"; fi
  check_eq "unchanged in the block: $name" "$before" "$(content "$file")"
  sleep 0.3
  check_eq "unchanged in PostgreSQL: $name" "$pg_before" "$(snapshot)"
  lines=$(log_since "$off" | grep -F "block 'user-1'" | grep -F "$rel" | grep -E 'refused: .+' || true)
  check_eq "logged once with block, file and reason: $name" 1 "$(grep -c . <<<"$lines" || true)"
  n1=$(refused_total)
  check_eq "sharded_refused_writes_total grew by one: $name" "$((n0 + 1))" "$n1"
  check "the daemon still serves after: $name" serving
}

# bad_ctl NAME FILE BODY [OP]: a control-file value refused with EINVAL, value unchanged, logged.
bad_ctl() {
  local name=$1 file=$2 body=$3 op=${4:-write} before off got n0
  before=$(content "$file")
  off=$(log_size)
  n0=$(refused_total)
  got=$(fsop "$op" "$file" "$body" 2>&1)
  if [[ $got == EINVAL@* ]]; then _pass "refused: $name ($got)"; else
    _fail "refused: $name" "expected: EINVAL@..." "actual:   $got"; fi
  check_eq "unchanged: $name" "$before" "$(content "$file")"
  check_eq "logged once with block, file and reason: $name" 1 \
    "$(log_since "$off" | grep -F "block 'user-1'" | grep -F "'${file##*/}'" | grep -c 'refused: ' || true)"
  check_eq "sharded_refused_writes_total grew by one: $name" "$((n0 + 1))" "$(refused_total)"
  check "the daemon still serves after: $name" serving
}

# data_dir_clean: the data directory holds only <id>.sqlite (and SQLite's -wal/-shm/-journal)
# files of blocks that ls lists, and every listed block has its file.
data_dir_clean() {
  local f id listed bad=""
  listed=$(ls -A "$MNT" | grep -vx metrics || true)
  while IFS= read -r f; do
    [[ -n $f && $f != .lock ]] || continue   # .lock: the daemon's one-per-directory lock
    id=${f%.sqlite*}
    [[ $f =~ \.sqlite(-wal|-shm|-journal)?$ ]] || { bad+=" unexpected:$f"; continue; }
    grep -qxF -- "$id" <<<"$listed" || bad+=" unlisted:$f"
  done < <(ls -A "$DATA")
  while IFS= read -r id; do
    [[ -z $id || -f $DATA/$id.sqlite ]] || bad+=" nofile:$id"
  done <<<"$listed"
  [[ -z $(find "$DATA" -mindepth 1 -type d) ]] || bad+=" subdirs:$(find "$DATA" -mindepth 1 -type d)"
  [[ -z $bad ]] || { echo "$bad"; return 1; }
}

# start_redis_pw: a second redis-server, on RPORT, that requires the password $RPW.
start_redis_pw() {
  RPORT=$(free_port)
  mkdir -p "$T/redis-pw"
  redis-server --bind 127.0.0.1 --port "$RPORT" --dir "$T/redis-pw" --daemonize no \
    --save '' --appendonly no --requirepass "$RPW" --logfile "$T/redis-pw/redis.log" \
    </dev/null >/dev/null 2>&1 &
  track_pid $!
  wait_for 10 _redis_pw_ping || die "redis-server with requirepass did not answer on $RPORT"
}
_redis_pw_ping() {
  [[ $(timeout 5 redis-cli -h 127.0.0.1 -p "$RPORT" -a "$RPW" --no-auth-warning PING </dev/null) == PONG ]]
}

setup_tmp
start_postgres
load_sample_schema

# --- tables and columns that need quoting (created before the mount) ---------------------------
"$PGBIN/psql" -qX -v ON_ERROR_STOP=1 </dev/null >/dev/null <<'SQL' || die "creating the weird tables failed"
CREATE TABLE "Weird ""Table""" (
  id                 bigint PRIMARY KEY,
  "order"            text,
  """quoted"""       text,
  "drop table x;--"  text,
  "select"           integer,
  "a b'c"            jsonb
);
CREATE TABLE "select" (
  id      bigint PRIMARY KEY,
  "from"  text NOT NULL,
  "where" text
);
SQL

start_redis
write_fsop
mount_sharded
B=$MNT/user-1
U=$B/User

require "mkdir a block" mkdir "$B"
for f in User/1.json User/2.json Order/10.json Event/0b5e7c1a-3f4d-4a8e-9c2b-7d6e5f4a3b21.json; do
  content "$B/$f" >/dev/null
done
check "the sample records are readable" jq_true "$B/Order/10.json" '.id == 10'
check "the mount uses default_permissions" \
  grep -q default_permissions <<<"$(awk -v d="$MNT" '$5 == d' /proc/self/mountinfo)"
check "the mount does not use allow_other" \
  test -z "$(awk -v d="$MNT" '$5 == d' /proc/self/mountinfo | grep allow_other || true)"

EV=$B/Event/0b5e7c1a-3f4d-4a8e-9c2b-7d6e5f4a3b21.json

# --- bad documents ---------------------------------------------------------------------------------
bad_doc "not JSON" 'EINVAL@(write|close)' "$U/1.json" 'this is not json'
bad_doc "a JSON array" 'EINVAL@write' "$U/1.json" '[1,2,3]'
bad_doc "a JSON number" 'EINVAL@(write|close)' "$U/1.json" '42'
bad_doc "truncated JSON" 'EINVAL@close' "$U/1.json" '{"id":1,"name":"cut'
bad_doc "truncated JSON (open object)" 'EINVAL@close' "$U/1.json" '{"id":1,'
bad_doc "invalid UTF-8 bytes in a string" 'EINVAL@(write|close)' "$U/1.json" $'{"id":1,"name":"\xff\xfe"}\n'
bad_doc "an overlong UTF-8 sequence" 'EINVAL@(write|close)' "$U/1.json" $'{"id":1,"name":"\xc0\xaf"}\n'
bad_doc "invalid UTF-8 in a key" 'EINVAL@(write|close)' "$U/1.json" $'{"id":1,"n\xe9me":"x"}\n'
bad_doc "an unknown key" 'EINVAL@write' "$U/1.json" '{"id":1,"nickname":"x"}'
bad_doc "a string into bigint" 'EINVAL@write' "$B/Order/10.json" '{"id":10,"userId":"abc"}'
bad_doc "an object into text" 'EINVAL@write' "$U/1.json" '{"id":1,"name":{"a":1}}'
bad_doc "an array into text" 'EINVAL@write' "$U/1.json" '{"id":1,"email":["a@example.com"]}'
bad_doc "1e400 into numeric" 'EINVAL@write' "$B/Order/10.json" '{"id":10,"total":1e400}'
bad_doc "99999999999999999999 into bigint" 'EINVAL@write' "$B/Order/10.json" '{"id":10,"userId":99999999999999999999}'
bad_doc "a fraction into bigint" 'EINVAL@write' "$B/Order/10.json" '{"id":10,"userId":1.5}'
bad_doc "a malformed timestamptz" 'EINVAL@write' "$B/Order/10.json" '{"id":10,"placed_at":"2024-13-45T99:00:00"}'
bad_doc "a malformed timestamp" 'EINVAL@write' "$EV" '{"id":"0b5e7c1a-3f4d-4a8e-9c2b-7d6e5f4a3b21","happened_at":"not a time"}'
bad_doc "a malformed uuid" 'EINVAL@write' "$EV" '{"id":"0b5e7c1a-3f4d-4a8e-9c2b-7d6e5f4a3bzz"}'
bad_doc "null into NOT NULL email" 'EINVAL@write' "$U/1.json" '{"id":1,"email":null}'
bad_doc "null into NOT NULL status" 'EINVAL@write' "$B/Order/10.json" '{"id":10,"status":null}'
bad_doc "a new User missing its required email" 'EINVAL@(write|close)' "$U/5001.json" '{"id":5001,"name":"x"}'
check "no record 5001.json was created" test ! -e "$U/5001.json"
bad_doc "a new Order missing its required userId" 'EINVAL@(write|close)' "$B/Order/5002.json" '{"id":5002,"total":1}'
check "no record Order/5002.json was created" test ! -e "$B/Order/5002.json"
bad_doc "body id differs from the file name" 'EINVAL@write' "$U/1.json" '{"id":2,"email":"x@example.com"}'
bad_doc "body id of the wrong type" 'EINVAL@write' "$U/1.json" '{"id":"1"}'
bad_doc "two JSON objects" 'EINVAL@(write|close)' "$U/1.json" '{"id":1} {"id":1}'
bad_doc "a JSON key that looks like SQL" 'EINVAL@write' "$U/1.json" \
  '{"id":1,"name\"; DROP TABLE \"User\"; --":"x"}'
bad_doc "a JSON key that is SQL" 'EINVAL@write' "$U/1.json" '{"id":1,"1=1) OR (1":1}'
bad_doc "O_APPEND of a second object" 'EINVAL@(write|close)' "$U/1.json" '{"name":"appended"}' append

# file names that cannot be keys, each refusal counted once
# bad_name NAME EXPECTED FSOP ARGS...: fsop prints EXPECTED and the refusal counter grows by one
bad_name() {
  local name=$1 want=$2 n0
  shift 2
  n0=$(refused_total)
  check_eq "$name: $want" "$want" "$(fsop "$@")"
  check_eq "sharded_refused_writes_total grew by one: $name" "$((n0 + 1))" "$(refused_total)"
}
abc_off=$(log_size)
bad_name "abc.json in a bigint-keyed model" EINVAL create "$U/abc.json"
bad_name "writing abc.json" EINVAL@open write "$U/abc.json" '{"id":1}'
bad_name "1.5.json in a bigint-keyed model" EINVAL create "$U/1.5.json"
bad_name "99999999999999999999.json in a bigint-keyed model" EINVAL \
  create "$U/99999999999999999999.json"
bad_name "not-a-uuid.json in a uuid-keyed model" EINVAL create "$B/Event/not-a-uuid.json"
check "a scratch file to rename" test "$(fsop write "$U/t-abc" '{"id":1}')" = OK
bad_name "renaming a scratch file onto abc.json" EBADMSG rename "$U/t-abc" "$U/abc.json"
check "the scratch file stays after the refused rename" test -e "$U/t-abc"
check "... and is removable" rm "$U/t-abc"
check "the refused names are logged with block and file" \
  grep -q "block 'user-1'.*User/abc.json" <<<"$(log_since "$abc_off")"
check "no abc.json appears" test ! -e "$U/abc.json"
check "ls User shows only records" test -z "$(ls -A "$U" | grep -v '^[0-9]*\.json$' || true)"

# --- the size cap: default 1 MiB -----------------------------------------------------------------
"$PY" -c "import json; print(json.dumps({'id': 1, 'name': 'x' * (1024 * 1024 + 10)}))" >"$T/big.json"
bad_doc "a document above the default 1 MiB cap" 'EFBIG@write' "$U/1.json" "$T/big.json" writefile
"$PY" -c "import json; print(json.dumps({'id': 1, 'name': 'y' * (1024 * 1024 - 100)}))" >"$T/almost.json"
check_eq "a document just below 1 MiB is accepted" OK "$(fsop writefile "$U/1.json" "$T/almost.json")"
check "the big record reaches PostgreSQL" \
  wait_for 20 pg_is $((1024 * 1024 - 100)) 'select length(name) from "User" where id = 1'
check "put the name back" wait_for 5 test "$(fsop write "$U/1.json" '{"id":1,"name":"Ada"}')" = OK
check "the name is back in PostgreSQL" wait_for 10 pg_is Ada 'select name from "User" where id = 1'

# --- model directories ------------------------------------------------------------------------------
check_eq "an unknown model directory: ENOENT" ENOENT "$(fsop listdir "$B/Nope")"
check_eq "writing into an unknown model directory: ENOENT" ENOENT@open "$(fsop write "$B/Nope/1.json" '{"id":1}')"
check_eq "a model name in the wrong case: ENOENT" ENOENT "$(fsop listdir "$B/user")"
check_eq "mkdir inside a model directory: EPERM" EPERM "$(fsop mkdir "$U/sub")"
check_eq "mkdir of a new model directory in a block is refused" EPERM "$(fsop mkdir "$B/Nope")"
check "no sub directory appears" test ! -e "$U/sub"
check "no Nope directory appears" test ! -e "$B/Nope"
check "the daemon still serves after the model directory refusals" serving

# --- block ids ------------------------------------------------------------------------------------
bad_block() {   # bad_block NAME EXPECTED_RE ID
  local got off n0
  off=$(log_size)
  n0=$(refused_total)
  got=$(fsop mkdir "$MNT/$3")
  if [[ $got =~ ^($2)$ ]]; then _pass "block id refused: $1 ($got)"; else
    _fail "block id refused: $1" "expected: $2" "actual:   $got"; fi
  check "no block appears: $1" test -z "$(ls -A "$MNT" | grep -vxE 'metrics|user-1|a\\b|x{128}' || true)"
  if [[ $got != EEXIST && $got != ENOENT ]]; then   # ENOENT and EEXIST come from the kernel
    check_eq "logged on exactly one line: $1" 1 "$(log_since "$off" | wc -l)"
    check "the log line says refused: $1" grep -q "mkdir '.*' refused: ." <<<"$(log_since "$off")"
    check_eq "sharded_refused_writes_total grew by one: $1" "$((n0 + 1))" "$(refused_total)"
  fi
}
bad_block "starting with ." 'EINVAL' ".hidden"
bad_block "..x" 'EINVAL' "..x"
bad_block ".." 'EEXIST|EINVAL' ".."
bad_block "a control character" 'EINVAL' $'a\x01b'
bad_block "a newline" 'EINVAL' $'a\nb'
bad_block "a tab" 'EINVAL' $'a\tb'
bad_block "DEL" 'EINVAL' $'a\x7fb'
bad_block "an escape sequence" 'EINVAL' $'a\e[31mred'
bad_block "129 bytes" 'ENAMETOOLONG|EINVAL' "$(printf 'x%.0s' {1..129})"
bad_block "metrics" 'EEXIST' "metrics"
bad_block "a/b (no parent a)" 'ENOENT' "a/b"
check_eq "128 bytes is a valid block id" OK "$(fsop mkdir "$MNT/$(printf 'x%.0s' {1..128})")"
got=$(fsop mkdir "$MNT/a\\b")
check "a\\b is allowed or refused cleanly ($got)" test "$got" = OK -o "$got" = EINVAL
check "the data dir holds only <id>.sqlite files of listed blocks" data_dir_clean
check "the daemon still serves after the block id refusals" serving
# A block id is text from any local user: it must not put terminal escapes or other control
# characters into the operator's log.
check_eq "the log holds no raw control characters from refused block ids" 0 \
  "$(LC_ALL=C grep -c $'[\x01-\x08\x0b-\x1f\x7f]' "$T/daemon.log" || true)"

# --- control files -------------------------------------------------------------------------------
check "ttl 60" test "$(fsop write "$B/ttl" $'60\n')" = OK
for v in abc -1 1.5 $'\n' ' 60' 1e3 '12 34' 99999999999999999999999 $'60\n\n' $'60\r\n' 0x10; do
  bad_ctl "ttl $(printf %q "$v")" "$B/ttl" "$v"
done
printf '6\0000\n' >"$T/nul.txt"
bad_ctl "ttl with a NUL byte" "$B/ttl" "$T/nul.txt" writefile
check_eq "ttl is still 60" 60 "$(content "$B/ttl")"
inv=$(content "$B/invalidate")
for v in 2 0 abc $'\n' yes 11 ' 1'; do
  bad_ctl "invalidate $(printf %q "$v")" "$B/invalidate" "$v"
done
check_eq "invalidate's time did not move" "$inv" "$(content "$B/invalidate")"
check_eq "sync-status is read-only" EACCES@open "$(fsop write "$B/sync-status" 'pending 0')"
check_eq "metrics is read-only" EACCES@open "$(fsop write "$MNT/metrics" 'x')"

# --- quoting: identifiers and values --------------------------------------------------------------
W='Weird "Table"'
check "the table \"Weird \"\"Table\"\"\" is a model directory" test -d "$B/$W"
check "the table \"select\" is a model directory" test -d "$B/select"
evil="'); DROP TABLE \"User\"; --"
doc=$(jq -cn --arg e "$evil" '{id: 1, order: $e, "\"quoted\"": "q'"'"'uote\\\"", "drop table x;--": "x\"; DELETE FROM \"Order\"; --", select: 7, "a b'"'"'c": {"k": $e, "n": [1, null]}}')
check "write a record with keys that need quoting" test "$(fsop write "$B/$W/1.json" "$doc")" = OK
check_eq "it reads back" "$(jq -cS . <<<"$doc")" "$(jq -cS . "$B/$W/1.json" 2>&1)"
weird_in_pg() {
  [[ $(psql_q 'select row_to_json(w)::jsonb from "Weird ""Table""" w where id = 1' | jq -cS .) == \
     "$(jq -cS . <<<"$doc")" ]]
}
check "it is in PostgreSQL exactly" wait_for 10 weird_in_pg
check "select/1.json with keys from and where" \
  test "$(fsop write "$B/select/1.json" "$(jq -cn --arg e "$evil" '{id: 1, from: $e, where: "1=1"}')")" = OK
check "select/1 is in PostgreSQL exactly" wait_for 10 pg_is "$evil|1=1" 'select "from", "where" from "select" where id = 1'
check_eq "\"User\" still exists with its rows" 3 "$(psql_q 'select count(*) from "User" where id in (1, 2, 3)')"
check_eq "\"Order\" still has its rows" 3 "$(psql_q 'select count(*) from "Order"')"
bad_doc "an unknown key in the quoted table" 'EINVAL@write' "$B/$W/1.json" '{"id":1,"order; DROP TABLE \"User\"":"x"}'
bad_doc "the unquoted spelling of a quoted column" 'EINVAL@write' "$B/$W/1.json" '{"id":1,"quoted":"x"}'
check "User/1 with a value that looks like SQL" \
  test "$(fsop write "$U/1.json" "$(jq -cn --arg e "$evil" '{id: 1, name: $e}')")" = OK
check "the SQL-looking value is stored as text" wait_for 10 pg_is "$evil" 'select name from "User" where id = 1'
check_eq "\"User\" still exists" 1 "$(psql_q "select count(*) from pg_tables where tablename = 'User'")"

# --- no path leaves the mount or the data directory --------------------------------------------------
# The kernel resolves "." and ".." itself, so "$U/../../../etc/passwd" never reaches the daemon.
# These names do, as they are: backslashes, URL-encoded slashes, names relative to a directory
# descriptor, links, very long names. Each carries $mark; afterwards no file with $mark exists
# outside the data directory, and the data directory holds only block files of listed blocks.
mark=escape$$
long_name() {   # long_name BYTES [SUFFIX]: $mark, padded with z to BYTES bytes in all
  local suffix=${2:-} pad
  pad=$(($1 - ${#mark} - ${#suffix}))
  printf '%s%s%s' "$mark" "$(printf "%${pad}s" '' | tr ' ' z)" "$suffix"
}
outside_marks() {
  {
    find "$T" \( -path "$MNT" -o -path "$DATA" \) -prune -o -name "*$mark*" -print
    find /tmp /var/tmp /etc /root "$SHARDED_SOURCE_DIR" -maxdepth 3 -path "$T" -prune -o \
      -name "*$mark*" -print
    find / -maxdepth 1 -name "*$mark*" -print
  } 2>/dev/null
}
passwd_sum=$(md5sum </etc/passwd)
t_before=$(ls -A "$T" | sort)
tmp_before=$(ls -A /tmp | grep -F "$mark" || true)
check_eq "mkdir M/..: EEXIST (the kernel's answer)" EEXIST "$(fsop mkdir "$MNT/..")"
check_eq "M/b/User/../User/1.json resolves inside the mount" 1 "$(jq .id "$U/../User/1.json" 2>&1)"
# block ids: the only names that become file names (<data>/<id>.sqlite)
check_eq "block id ..%2f..%2f$mark: EINVAL (starts with .)" EINVAL "$(fsop mkdir "$MNT/..%2f..%2f$mark")"
check_eq "block id ..\\..\\$mark: EINVAL" EINVAL "$(fsop mkdir "$MNT/..\\..\\$mark")"
check_eq "block id a..%2f..%2f$mark is only a name" OK "$(fsop mkdir "$MNT/a..%2f..%2f$mark")"
check "... whose file is in the data directory" test -f "$DATA/a..%2f..%2f$mark.sqlite"
got=$(fsop mkdir "$MNT/a\\..\\..\\$mark")
check "block id a\\..\\..\\$mark is a name or refused ($got)" test "$got" = OK -o "$got" = EINVAL
for n in 129 200 255; do
  got=$(fsop mkdir "$MNT/$(long_name $n)")
  check "a $n-byte block id is refused ($got)" test "$got" = ENAMETOOLONG -o "$got" = EINVAL
done
check_eq "a 256-byte block id: ENAMETOOLONG" ENAMETOOLONG "$(fsop mkdir "$MNT/$(long_name 256)")"
# names relative to a directory descriptor: the kernel walks "..", the daemon gets the rest
check_eq "createat(User, ../$mark.json): EPERM (a file in a block)" EPERM "$(fsop createat "$U" "../$mark.json")"
check_eq "createat(User, ../../$mark.json): EPERM (a file at the root)" EPERM "$(fsop createat "$U" "../../$mark.json")"
check_eq "createat(User, ../x/../$mark.json): ENOENT" ENOENT "$(fsop createat "$U" "../x/../$mark.json")"
check_eq "mkdirat(User, ../../$mark-at) is a block like any other" OK "$(fsop mkdirat "$U" "../../$mark-at")"
check "... in the data directory" test -f "$DATA/$mark-at.sqlite"
# record and scratch names
check_eq "a scratch name with backslashes and dots stays in memory" OK \
  "$(fsop write "$U/..\\..\\..\\$mark.json" 'x')"
check_eq "a scratch name ..%2f..%2f$mark.json stays in memory" OK "$(fsop write "$U/..%2f..%2f$mark.json" 'x')"
check_eq "a record name 1%2f..%2f$mark.json: EINVAL (not a key)" EINVAL@open \
  "$(fsop write "$U/1%2f..%2f$mark.json" '{"id":1}')"
check_eq "a scratch name with ... stays in memory" OK "$(fsop write "$U/...$mark" 'x')"
check_eq "a record name ..json is not a record (scratch, hidden)" OK "$(fsop write "$U/..json" 'x')"
check_eq "a rename onto ..%2f$mark stays in memory" OK "$(fsop rename "$U/...$mark" "$U/..%2f$mark")"
check_eq "a 200-byte scratch name stays in memory" OK "$(fsop write "$U/$(long_name 200)" 'x')"
got=$(fsop write "$U/$(long_name 255)" 'x')
check "a 255-byte scratch name stays in memory or is refused ($got)" \
  test "$got" = OK -o "$got" = ENAMETOOLONG@open
check_eq "a 255-byte record name: EINVAL (not a key)" EINVAL@open \
  "$(fsop write "$U/$(printf '1%.0s' {1..250}).json" '{"id":1}')"
check_eq "a 256-byte name: ENAMETOOLONG" ENAMETOOLONG@open "$(fsop write "$U/$(long_name 256)" 'x')"
check_eq "a symlink to /etc/passwd: EPERM" EPERM "$(fsop symlink /etc/passwd "$U/$mark-link")"
check_eq "a symlink to ../../../$mark: EPERM" EPERM "$(fsop symlink "../../../$mark" "$U/$mark-link2")"
check_eq "a hard link of a record: EPERM" EPERM "$(fsop link "$U/1.json" "$U/..%2f$mark-hard")"
check_eq "a hard link across to /tmp: EXDEV" EXDEV "$(fsop link "$U/1.json" "/tmp/$mark-hard")"
check_eq "nothing outside the data directory carries $mark" "" "$(outside_marks)"
check_eq "nothing new in /tmp" "$tmp_before" "$(ls -A /tmp | grep -F "$mark" || true)"
check_eq "nothing new next to the mount" "$t_before" "$(ls -A "$T" | sort)"
check_eq "/etc/passwd is unchanged" "$passwd_sum" "$(md5sum </etc/passwd)"
check "the data dir still holds only <id>.sqlite files of listed blocks" data_dir_clean
check "the daemon still serves after the path tests" serving

# --- everything is synced; PostgreSQL has no trace of the refusals ---------------------------------
check "nothing pending" wait_for 10 pending_is_zero
check_eq "no dead letters" 0 "$(status_of dead)"
check_eq "no User rows from refused writes" 0 "$(psql_q 'select count(*) from "User" where id > 3')"

# --- a smaller cap, and passwords for PostgreSQL and Redis -----------------------------------------
if unmount_sharded; then _pass "unmount"; else _fail "unmount"; fi
start_redis_pw
check "the second redis refuses a client without the password" bash -c \
  "timeout 5 redis-cli -h 127.0.0.1 -p $RPORT PING </dev/null 2>&1 | grep -q NOAUTH"
PG_URL="postgresql://postgres:$PW@127.0.0.1:$PGPORT/sharded_test" \
  REDIS_URL="redis://:$RPW@127.0.0.1:$RPORT" mount_sharded "max_doc=4096"
check_eq "the block is still there" 1 "$(jq .id "$U/1.json" 2>&1)"
"$PY" -c "import json; print(json.dumps({'id': 1, 'name': 'z' * 5000}))" >"$T/5k.json"
bad_doc "a document above -o max_doc=4096" 'EFBIG@write' "$U/1.json" "$T/5k.json" writefile
"$PY" -c "import json; print(json.dumps({'id': 1, 'name': 'w' * 3000}))" >"$T/3k.json"
check_eq "a 3000-byte document is accepted under max_doc=4096" OK "$(fsop writefile "$U/1.json" "$T/3k.json")"
check "it reaches PostgreSQL (through the Redis with a password)" \
  wait_for 20 pg_is 3000 'select length(name) from "User" where id = 1'
check "sync-status shows redis up" grep -qx 'redis up' "$B/sync-status"
check "the write went through the Redis with a password" bash -c \
  "timeout 5 redis-cli -h 127.0.0.1 -p $RPORT -a '$RPW' --no-auth-warning EXISTS 'sharded:{user-1}:ops' </dev/null | grep -qx 1"
cmdline=$(tr '\0' ' ' <"/proc/$DAEMON_PID/cmdline")
status_text=$(timeout 10 cat "$B/sync-status" 2>&1 || true)
metrics_text=$(timeout 10 cat "$MNT/metrics" 2>&1 || true)
check "sync-status can be read" grep -q '^pending ' <<<"$status_text"
check "metrics can be read" grep -q '^sharded_blocks ' <<<"$metrics_text"
for pw in "$PW" "$RPW"; do
  what=PostgreSQL
  [[ $pw == "$RPW" ]] && what=Redis
  check "the $what password is not in the daemon's log" \
    test -z "$(grep -v '^### ' "$T/daemon.log" | grep -F "$pw" || true)"
  check "the $what password is not in /proc/PID/cmdline" test -z "$(grep -F "$pw" <<<"$cmdline" || true)"
  check "the $what password is not in sync-status" test -z "$(grep -F "$pw" <<<"$status_text" || true)"
  check "the $what password is not in metrics" test -z "$(grep -F "$pw" <<<"$metrics_text" || true)"
done
check "the command line shows the Redis password masked" grep -qF "redis://:$(printf '*%.0s' $(seq ${#RPW}))@" <<<"$cmdline"
if unmount_sharded; then _pass "unmount"; else _fail "unmount"; fi
# a wrong Redis password fails the mount, and the message shows neither password
mkdir -p "$T/mnt-rpw" "$T/data-rpw"
timeout 30 "$SHARDED_BUILD_DIR/mount.sharded" -f \
  -o "pg=postgresql://postgres:$PW@127.0.0.1:$PGPORT/sharded_test,redis=redis://:Wr0ng$RPW@127.0.0.1:$RPORT,data=$T/data-rpw" \
  "$T/mnt-rpw" </dev/null >"$T/rpw.out" 2>&1 && rc=0 || rc=$?
check_eq "a wrong Redis password fails the mount (1)" 1 "$rc"
check "... with one line" test "$(grep -c . "$T/rpw.out")" = 1
check "... that shows neither password" test -z "$(grep -F -e "$RPW" -e "$PW" "$T/rpw.out" || true)"
force_unmount "$T/mnt-rpw" || true
mkdir -p "$T/mnt-bad" "$T/data-bad"
timeout 30 "$SHARDED_BUILD_DIR/mount.sharded" -f \
  -o "pg=postgresql://postgres:$PW@127.0.0.1:1/nope,redis=$REDIS_URL,data=$T/data-bad" \
  "$T/mnt-bad" </dev/null >"$T/bad.out" 2>&1 && rc=0 || rc=$?
check "an unreachable PostgreSQL fails the mount" test "$rc" -ne 0 -a "$rc" -ne 124
check "its error message does not show the password" test -z "$(grep -F "$PW" "$T/bad.out" || true)"
force_unmount "$T/mnt-bad" || true

finish
