#!/usr/bin/env bash
# Files that behave like files (issue 5): everyday tools on a real mount. Every tool's result is
# checked in the file and, after the sync, in PostgreSQL. Scratch files, partial and odd writes,
# concurrent writers and readers, stat, and the operations that get EPERM/EXDEV.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3

# put FILE BODY: write BODY plus "\n"; tee reports errors from write() and close().
put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
jq_true() { timeout 10 jq -e "$2" "$1" >/dev/null; }
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }
status_of() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }
pending_is_zero() { [[ $(status_of pending) == 0 ]]; }
content() { timeout 10 cat "$1" 2>/dev/null || echo "<absent>"; }
name_of() { timeout 10 jq -r .name "$1" 2>&1; }
pg_name() { psql_q "select coalesce(name, '<null>') from \"User\" where id = $1"; }
# synced_name ID NAME: the file and PostgreSQL both say NAME (polls until the sync is done).
synced_name() {
  [[ $(timeout 10 jq -r .name "$B/User/$1.json" 2>/dev/null) == "$2" ]] && [[ $(pg_name "$1") == "$2" ]]
}
# one_line FILE: the record is one JSON object on one line ending in "\n".
one_line() {
  [[ $(content "$1" | wc -l) == 1 ]] && [[ $(tail -c 1 "$1" | od -An -c | tr -d ' ') == '\n' ]] &&
    jq -e 'type == "object"' "$1" >/dev/null
}
# size_truth FILE: stat's size equals the bytes cat returns.
size_truth() {
  local s n
  s=$(stat -c %s "$1") n=$(timeout 10 cat "$1" | wc -c)
  [[ $s == "$n" ]] || { echo "stat says $s, cat returns $n"; return 1; }
}
only_records_in() {   # only_records_in DIR: every name in DIR (also hidden) is <key>.json
  local extra
  extra=$(ls -A "$1" | grep -v '^[0-9]*\.json$' || true)
  [[ -z $extra ]] || { echo "leftover files: $extra"; return 1; }
}
serving() { jq_true "$B/User/1.json" '.id == 1'; }

# fsop OP ARGS...: one system call from python; prints OK or the errno name (ERR@step for writes).
cat_fsop() {
  cat >"$T/fsop.py" <<'EOF'
import errno, os, sys
op, a = sys.argv[1], sys.argv[2:]
def name(e): return errno.errorcode.get(e.errno, str(e.errno))
step = op
try:
    if op == "write":          # write FILE BODY: open O_TRUNC, one write(), close()
        step = "open"
        fd = os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        step = "write"
        try:
            os.write(fd, os.fsencode(a[1]))
        except OSError:
            try: os.close(fd)
            except OSError: pass
            raise
        step = "close"
        os.close(fd)
    elif op == "rename": os.rename(a[0], a[1])
    elif op == "link": os.link(a[0], a[1])
    elif op == "symlink": os.symlink(a[0], a[1])
    elif op == "chmod": os.chmod(a[0], int(a[1], 8))
    elif op == "chown": os.chown(a[0], int(a[1]), int(a[2]))
    elif op == "mkfifo": os.mkfifo(a[0])
    elif op == "mknod": os.mknod(a[0], 0o644 | __import__("stat").S_IFREG)
    elif op == "mkdir": os.mkdir(a[0])
    elif op == "truncate": os.truncate(a[0], int(a[1]))
    elif op == "create": os.close(os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    else: sys.exit("unknown op " + op)
    print("OK")
except OSError as e:
    print(name(e) + ("@" + step if op == "write" else ""))
EOF
}
fsop() { timeout 20 "$PY" "$T/fsop.py" "$@"; }

# refused_op NAME EXPECTED OP ARGS...: fsop prints EXPECTED, and the daemon still serves reads.
refused_op() {
  local name=$1 want=$2 got
  shift 2
  got=$(fsop "$@" 2>&1)
  check_eq "$name: $want" "$want" "$got"
  check "the daemon still serves after: $name" serving
}

setup_tmp
start_postgres
load_sample_schema
# Every DELETE on "User" is recorded (outside the public schema, so it is no model): no tool
# below may delete a row in PostgreSQL, even those that unlink and re-create a record.
"$PGBIN/psql" -qX -v ON_ERROR_STOP=1 </dev/null >/dev/null <<'SQL' || die "audit trigger"
CREATE SCHEMA audit;
CREATE TABLE audit.deletes (id bigint, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION audit.on_delete() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO audit.deletes (id) VALUES (OLD.id); RETURN OLD; END$$;
CREATE TRIGGER user_deletes AFTER DELETE ON "User" FOR EACH ROW EXECUTE FUNCTION audit.on_delete();
SQL
start_redis
cat_fsop
mount_sharded
B=$MNT/user-1
U=$B/User

require "mkdir a block" mkdir "$B"
for i in 1 2 3; do content "$U/$i.json" >/dev/null; done
check "User 1..3 are readable" jq_true "$U/3.json" '.id == 3'

# --- sed -i ------------------------------------------------------------------------------------
check "sed -i edits a record in place" timeout 20 sed -i 's/Ada Lovelace/Ada Sed/' "$U/1.json"
check "sed -i: the file and PostgreSQL show the change" wait_for 10 synced_name 1 "Ada Sed"
check "sed -i: the record is still one line" one_line "$U/1.json"
check "sed -i leaves no temporary file behind" only_records_in "$U"

# --- jq > t && mv t f ----------------------------------------------------------------------------
jq_same_dir() { timeout 10 jq '.name = "Jq Same"' "$U/1.json" >"$U/t" && timeout 10 mv "$U/t" "$U/1.json"; }
check "jq '.name=...' f > t && mv t f (t in the model dir)" jq_same_dir
check "jq same dir: file and PostgreSQL" wait_for 10 synced_name 1 "Jq Same"
check "jq same dir: the pretty-printed document is stored as one line" one_line "$U/1.json"
check "jq same dir: t is gone" test ! -e "$U/t"

jq_cross() { timeout 10 jq '.name = "Jq Cross"' "$U/1.json" >"$T/t.json" && timeout 10 mv "$T/t.json" "$U/1.json"; }
check "jq ... > \$T/t.json && mv \$T/t.json f (cross-device mv)" jq_cross
check "jq cross-device: file and PostgreSQL" wait_for 10 synced_name 1 "Jq Cross"
check "jq cross-device: the row was never deleted (email kept)" \
  pg_is ada@example.com 'select email from "User" where id = 1'
check "jq cross-device: the source is gone" test ! -e "$T/t.json"

# mv out of the mount and straight back: unlink, then re-create within the grace
check "everything synced before the round trip" wait_for 10 pending_is_zero
check "mv a record out of the mount and back" \
  bash -c "mv '$U/1.json' '$T/rt.json' && mv '$T/rt.json' '$U/1.json'"
check "the round trip: file and PostgreSQL" wait_for 10 synced_name 1 "Jq Cross"
sleep 2
check_eq "the round trip never deleted the row in PostgreSQL" 0 "$(psql_q 'select count(*) from audit.deletes')"
check_eq "the row is still there" 1 "$(psql_q 'select count(*) from "User" where id = 1')"

# mv within the mount across directories: EXDEV from rename, so mv copies and unlinks.
check "a scratch file in User" put "$U/move.tmp" "scratch"
check_eq "rename(2) of a file to another model directory is EXDEV" EXDEV \
  "$(fsop rename "$U/move.tmp" "$B/Order/move.tmp")"
check "mv of a scratch file to another model directory works (copy + unlink)" \
  timeout 10 mv "$U/move.tmp" "$B/Order/move.tmp"
check_eq "the moved scratch file has its content" scratch "$(content "$B/Order/move.tmp")"
check "the source is gone" test ! -e "$U/move.tmp"
check "rm the moved scratch file" rm "$B/Order/move.tmp"

# --- cp --------------------------------------------------------------------------------------------
jq -c '.name = "Cp Existing"' "$U/2.json" >"$T/u2.json"
check "cp onto an existing record" timeout 10 cp "$T/u2.json" "$U/2.json"
check "cp existing: file and PostgreSQL" wait_for 10 synced_name 2 "Cp Existing"
echo '{"id":2001,"email":"cp@example.com","name":"Cp New"}' >"$T/u2001.json"
check "cp to a new record" timeout 10 cp "$T/u2001.json" "$U/2001.json"
check "cp new: file and PostgreSQL" wait_for 10 synced_name 2001 "Cp New"
check "cp new: email in PostgreSQL" pg_is cp@example.com 'select email from "User" where id = 2001'

# --- cp -r out and back in -------------------------------------------------------------------------
check "everything synced before cp -r" wait_for 10 pending_is_zero
check "cp -r User out to \$T" timeout 20 cp -r "$U" "$T/out"
check_eq "cp -r copied every record" "1.json 2.json 2001.json 3.json" \
  "$(ls "$T/out" | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "the copy of 2001.json has the record's bytes" "$(content "$U/2001.json")" "$(cat "$T/out/2001.json")"
jq -c '.name = "Cp R"' "$T/out/3.json" >"$T/out/3.json.new" && mv "$T/out/3.json.new" "$T/out/3.json"
mv "$T/out" "$T/User"
check "cp -r \$T/User back into the block" timeout 20 cp -r "$T/User" "$B/"
check "cp -r in: the edited file reached the record and PostgreSQL" wait_for 10 synced_name 3 "Cp R"
check "cp -r in: the unedited records are unchanged" wait_for 10 synced_name 2001 "Cp New"
check "cp -r in: no stray directory" test ! -e "$U/User"

# --- rsync ---------------------------------------------------------------------------------------
mkdir -p "$T/rs"
jq -c '.name = "Rsync"' "$U/2.json" >"$T/rs/2.json"
echo '{"id":2002,"email":"rsync@example.com","name":"Rsync New"}' >"$T/rs/2002.json"
check "rsync -r --checksum into the block" timeout 30 rsync -r --checksum "$T/rs/" "$U/"
check "rsync: the changed record in the file and PostgreSQL" wait_for 10 synced_name 2 "Rsync"
check "rsync: the new record in the file and PostgreSQL" wait_for 10 synced_name 2002 "Rsync New"
check "rsync leaves no hidden temporary file" only_records_in "$U"
check "rsync again with nothing to do" timeout 30 rsync -r --checksum "$T/rs/" "$U/"

# --- tar out, find, grep ---------------------------------------------------------------------------
check "everything synced before tar" wait_for 10 pending_is_zero
check "tar out of a block" timeout 30 tar -C "$B" -cf "$T/b.tar" User Order
check_eq "tar -t lists the records" \
  "User/ User/1.json User/2.json User/2001.json User/2002.json User/3.json" \
  "$(tar -tf "$T/b.tar" | grep '^User' | sort | tr '\n' ' ' | sed 's/ $//')"
mkdir -p "$T/untar" && tar -C "$T/untar" -xf "$T/b.tar"
check_eq "the archived record has the record's bytes" "$(content "$U/2002.json")" "$(cat "$T/untar/User/2002.json")"
check "find M/b -name '*.json' -exec jq -e .id {} +" \
  timeout 30 find "$B" -name '*.json' -exec jq -e .id {} +
check_eq "find lists every record" 5 "$(find "$U" -name '*.json' | wc -l)"
check_eq "grep -rl finds the record by content" "$U/2002.json" \
  "$(timeout 20 grep -rl rsync@example.com "$B")"
check "grep -r exits 1 when nothing matches" \
  test "$(timeout 20 grep -r no-such-text-anywhere "$B" >/dev/null; echo $?)" = 1

# --- python -----------------------------------------------------------------------------------
py_direct() {
  "$PY" - "$1" <<'EOF'
import json, sys
f = sys.argv[1]
with open(f) as i: d = json.load(i)
d["name"] = "Py Direct"
with open(f, "w") as o: json.dump(d, o)
EOF
}
py_replace() {
  "$PY" - "$1" <<'EOF'
import json, os, sys, tempfile
f = sys.argv[1]
with open(f) as i: d = json.load(i)
d["name"] = "Py Replace"
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(f))
with os.fdopen(fd, "w") as o:
    json.dump(d, o, indent=2)
    o.write("\n")
os.replace(tmp, f)
EOF
}
check "python json.dump straight into the record" py_direct "$U/1.json"
check "json.dump: file and PostgreSQL" wait_for 10 synced_name 1 "Py Direct"
check "python mkstemp(dir=...) + os.replace" py_replace "$U/1.json"
check "mkstemp + os.replace: file and PostgreSQL" wait_for 10 synced_name 1 "Py Replace"
check "mkstemp + os.replace: the record keeps mode 0644" test "$(stat -c %a "$U/1.json")" = 644
check "mkstemp + os.replace: no temporary file left" only_records_in "$U"

# --- vim -------------------------------------------------------------------------------------------
check "vim -es -u NONE edits a record in place" \
  timeout 20 vim -es -u NONE -c '%s/Rsync/Vim/' -c 'wq' "$U/2.json"
check "vim: file and PostgreSQL" wait_for 10 synced_name 2 "Vim"
check "vim: one line" one_line "$U/2.json"
check "vim leaves no swap or backup file" only_records_in "$U"

# --- scratch files -----------------------------------------------------------------------------------
check "everything synced before the scratch files" wait_for 10 pending_is_zero
pg_before=$(psql_q 'select count(*) from "User"')
check "create and write a scratch file" put "$U/notes.txt" "hello scratch"
check_eq "read the scratch file back" "hello scratch" "$(content "$U/notes.txt")"
check "ls lists the scratch file" grep -qx notes.txt <<<"$(ls "$U")"
check "a hidden scratch file" put "$U/.1.json.swp" "swap"
check_eq "read the hidden scratch file back" swap "$(content "$U/.1.json.swp")"
check "ls -a lists the hidden scratch file" grep -qx .1.json.swp <<<"$(ls -A "$U")"
check "append to a scratch file" bash -c "echo more >>'$U/notes.txt'"
check_eq "the scratch file has both lines" $'hello scratch\nmore' "$(content "$U/notes.txt")"
check "stat size of a scratch file" test "$(stat -c %s "$U/notes.txt")" = 19
check "rename scratch -> scratch" timeout 10 mv "$U/notes.txt" "$U/notes.bak"
check "the old scratch name is gone" test ! -e "$U/notes.txt"
check_eq "the new scratch name has the content" $'hello scratch\nmore' "$(content "$U/notes.bak")"
check "chmod a scratch file" chmod 600 "$U/notes.bak"
check_eq "the scratch file's mode changed" 600 "$(stat -c %a "$U/notes.bak")"
check "a scratch file named like a record but not a key (x.json.tmp)" put "$U/1.json.tmp" "tmp"
check "delete a scratch file" rm "$U/1.json.tmp"
check "the deleted scratch file is gone" test ! -e "$U/1.json.tmp"

# Long scratch names: up to 255 bytes a file works in full; a longer name is ENAMETOOLONG and
# leaves nothing behind (the create used to make the file before refusing the name).
long_name() { printf "%${1}s" "" | tr ' ' x; }   # long_name N: a scratch name of N bytes
listed() { ls -A "$U" | grep -qxF -- "$1"; }
not_listed() { ! listed "$1"; }
for n in 250 255; do
  name=$(long_name "$n")
  check_eq "a $n-byte scratch name: create (O_EXCL)" OK "$(fsop create "$U/$name")"
  check "a $n-byte scratch name: write" put "$U/$name" "long $n"
  check_eq "a $n-byte scratch name: read back" "long $n" "$(content "$U/$name")"
  check "a $n-byte scratch name: ls lists it" listed "$name"
  check "a $n-byte scratch name: unlink" rm "$U/$name"
  check "a $n-byte scratch name: gone after the unlink" not_listed "$name"
done
name=$(long_name 256)
check_eq "a 256-byte scratch name: create (O_EXCL) is ENAMETOOLONG" ENAMETOOLONG \
  "$(fsop create "$U/$name")"
check_eq "a 256-byte scratch name: open(O_CREAT|O_TRUNC) is ENAMETOOLONG" ENAMETOOLONG@open \
  "$(fsop write "$U/$name" x)"
check "a refused 256-byte scratch name is not listed" not_listed "$name"
check "a scratch file to rename onto a 256-byte name" put "$U/long.tmp" "stays"
check_eq "rename onto a 256-byte scratch name is ENAMETOOLONG" ENAMETOOLONG \
  "$(fsop rename "$U/long.tmp" "$U/$name")"
check_eq "the refused rename keeps the source" stays "$(content "$U/long.tmp")"
check "the refused rename's target is not listed" not_listed "$name"
check "rm the rename source" rm "$U/long.tmp"
check "no name over 255 bytes is listed" test -z "$(ls -A "$U" | awk 'length($0) > 255')"
check_eq "abc.json cannot be created in a bigint-keyed model: EINVAL" EINVAL \
  "$(fsop create "$U/abc.json")"
sleep 1
check_eq "scratch files are never synced (nothing pending)" 0 "$(status_of pending)"
check_eq "scratch files never reach PostgreSQL" "$pg_before" "$(psql_q 'select count(*) from "User"')"
check_eq "scratch files are not in the block's SQLite file" 0 \
  "$(sqlite3 "$DATA/user-1.sqlite" "select count(*) from records where pk not glob '[0-9]*'" 2>&1)"

# rename of a valid scratch file onto a new record name creates the record
check "a valid document in a scratch file" \
  put "$U/new.tmp" '{"id":3001,"email":"renamed@example.com","name":"Renamed"}'
check "mv scratch onto a new record name" timeout 10 mv "$U/new.tmp" "$U/3001.json"
check "the renamed record: file and PostgreSQL" wait_for 10 synced_name 3001 "Renamed"
check "the scratch name is gone after the rename" test ! -e "$U/new.tmp"
check "mv scratch onto an existing record" \
  bash -c "echo '{\"id\":3001,\"name\":\"Renamed Again\"}' >'$U/upd.tmp' && mv '$U/upd.tmp' '$U/3001.json'"
check "the update by rename: file and PostgreSQL (email kept)" wait_for 10 synced_name 3001 "Renamed Again"
check "update by rename kept the other keys" jq_true "$U/3001.json" '.email == "renamed@example.com"'

# a refused rename keeps the scratch file and the record
check "everything synced before the refused renames" wait_for 10 pending_is_zero
bad='{"id":1,"nickname":"not a column"}'
check "an invalid document in a scratch file" put "$U/bad.tmp" "$bad"
u1=$(content "$U/1.json")
check_eq "rename of an invalid scratch file onto a record: EBADMSG" EBADMSG \
  "$(fsop rename "$U/bad.tmp" "$U/1.json")"
check "mv of an invalid scratch file fails with 'Bad message'" \
  grep -q 'Bad message' <<<"$(timeout 10 mv "$U/bad.tmp" "$U/1.json" 2>&1)"
check_eq "the scratch file is still there, unchanged" "$bad" "$(content "$U/bad.tmp")"
check_eq "the record is unchanged" "$u1" "$(content "$U/1.json")"
check_eq "rename of an invalid scratch file onto a new record name: EBADMSG" EBADMSG \
  "$(fsop rename "$U/bad.tmp" "$U/3002.json")"
check "the new record does not exist" test ! -e "$U/3002.json"
check "the daemon still serves after the refused renames" serving
sleep 1
check_eq "PostgreSQL: 1 unchanged, 3002 absent" "Py Replace|0" \
  "$(psql_q 'select (select name from "User" where id = 1), (select count(*) from "User" where id = 3002)')"

# --- several write() calls for one document ---------------------------------------------------------
py_chunks() {
  "$PY" - "$1" <<'EOF'
import sys
doc = '{"id":3,"email":"grace@example.com","name":"Chunked Python"}\n'
with open(sys.argv[1], "w") as o:
    for i in range(0, len(doc), 7):
        o.write(doc[i:i + 7]); o.flush()
EOF
}
check "python writes one document in 7-byte chunks with flush" py_chunks "$U/3.json"
check "chunks: file and PostgreSQL" wait_for 10 synced_name 3 "Chunked Python"
two_printfs() { { printf '{"id":3,'; printf '"name":"Two Printfs"}\n'; } >"$U/3.json"; }
check "{ printf ...; printf ...; } > f" two_printfs
check "two printfs: file and PostgreSQL" wait_for 10 synced_name 3 "Two Printfs"

# O_APPEND of a second object is refused at close; appending whitespace is fine
u3=$(content "$U/3.json")
check_fails "tee -a of a second object onto a record is refused" \
  bash -c "echo '{\"name\":\"x\"}' | tee -a '$U/3.json' >/dev/null"
check_eq "the record is unchanged after the refused append" "$u3" "$(content "$U/3.json")"
check "the daemon still serves after the refused append" serving

# --- truncate -----------------------------------------------------------------------------------------
check "everything synced before truncate" wait_for 10 pending_is_zero
u1=$(content "$U/1.json")
out=$(timeout 10 truncate -s 10 "$U/1.json" 2>&1) && rc=0 || rc=$?
check "truncate -s 10 of a record is refused" test "$rc" -ne 0
check "truncate -s 10 says Invalid argument" grep -q 'Invalid argument' <<<"$out"
check_eq "the record is unchanged after truncate -s 10" "$u1" "$(content "$U/1.json")"
check "stat size == cat | wc -c right after the refused truncate" size_truth "$U/1.json"
check_fails "truncate -s 0 of a record is refused" timeout 10 truncate -s 0 "$U/1.json"
check_eq "the record is unchanged after truncate -s 0" "$u1" "$(content "$U/1.json")"
check "stat size is still true after truncate -s 0" size_truth "$U/1.json"
check_eq "truncate(2) by path to 5 bytes: EINVAL" EINVAL "$(fsop truncate "$U/1.json" 5)"
check_eq "the record is unchanged after truncate(2)" "$u1" "$(content "$U/1.json")"
check "the daemon still serves after the truncates" serving
check "O_TRUNC open and close with no write (python)" "$PY" -c "open('$U/1.json', 'w').close()"
check "': > f' (O_TRUNC, no write)" bash -c ": >'$U/1.json'"
check_eq "the record is unchanged after O_TRUNC without a write" "$u1" "$(content "$U/1.json")"
py_ftruncate() {
  "$PY" - "$1" <<'EOF'
import sys
with open(sys.argv[1], "r+") as f:
    f.write('{"id":1,"name":"Ftrunc"}\n')
    f.truncate()
EOF
}
check "r+ write of a shorter document then ftruncate" py_ftruncate "$U/1.json"
check "ftruncate: file and PostgreSQL" wait_for 10 synced_name 1 "Ftrunc"
check "stat size is true after ftruncate" size_truth "$U/1.json"
py_pad() {   # overwrite the record in place with a shorter doc padded with spaces, no truncate
  "$PY" - "$1" <<'EOF'
import os, sys
f = sys.argv[1]
n = os.path.getsize(f)
doc = '{"id":1,"name":"Padded"}'
with open(f, "r+") as o:
    o.write(doc + " " * (n - len(doc) - 1) + "\n")
EOF
}
check "overwrite in place with a shorter document padded with spaces" py_pad "$U/1.json"
check "padded: file and PostgreSQL" wait_for 10 synced_name 1 "Padded"
check "padded: stored as one line" one_line "$U/1.json"

# --- writing at an offset ------------------------------------------------------------------------------
check "everything synced before dd" wait_for 10 pending_is_zero
off=$(grep -bo '"Padded"' "$U/1.json" | cut -d: -f1)
check "the offset of the name was found" test -n "$off"
dd_at() { printf '%s' "$2" | timeout 10 dd of="$U/1.json" bs=1 seek="$1" conv=notrunc status=none; }
check "dd conv=notrunc at an offset producing a valid document" dd_at "$((off + 1))" Wadded
check "dd: file and PostgreSQL" wait_for 10 synced_name 1 "Wadded"
check "dd: stat size is true" size_truth "$U/1.json"
u1=$(content "$U/1.json")
check_fails "dd conv=notrunc producing an invalid document is refused" dd_at 0 'xx'
check_eq "the record is unchanged after the refused dd" "$u1" "$(content "$U/1.json")"
check "the daemon still serves after the refused dd" serving

# --- two writers ----------------------------------------------------------------------------------------
two_writers() {
  "$PY" - "$1" <<'EOF'
import json, sys
f = sys.argv[1]
a = open(f, "w"); b = open(f, "w")
a.write('{"id":2,"name":"Writer A has a much longer name than writer B does"}\n'); a.flush()
b.write('{"id":2,"name":"B"}\n'); b.flush()
a.close(); b.close()
EOF
}
check "two programs write the same record (close A, then B)" two_writers "$U/2.json"
check_eq "the last close wins" B "$(name_of "$U/2.json")"
check "the record is not a mix (one valid line)" one_line "$U/2.json"
check "two writers: PostgreSQL has B" wait_for 10 synced_name 2 B

# --- a reader during a write ---------------------------------------------------------------------------
check "everything synced before the reader test" wait_for 10 pending_is_zero
# The writer is its own program, paced by files; the readers are cat and stat from the shell.
slow_writer() {   # slow_writer FILE DOC: O_TRUNC open, half the doc, pause, the rest, pause, close
  "$PY" - "$1" "$2" "$T/rw" <<'EOF'
import os, sys, time
f, doc, d = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
def mark(n): open(os.path.join(d, "w%d" % n), "w").close()
def wait(n):
    while not os.path.exists(os.path.join(d, "go%d" % n)): time.sleep(0.02)
w = os.open(f, os.O_WRONLY | os.O_TRUNC)
mark(0); wait(0)
os.write(w, doc[:10]); mark(1); wait(1)
os.write(w, doc[10:]); mark(2); wait(2)
os.close(w); mark(3)
EOF
}
reader_during_write() {
  local f=$U/2.json old new r size
  old=$(content "$f")
  new='{"id":2,"name":"New During Read"}'
  rm -rf "$T/rw" && mkdir "$T/rw"
  slow_writer "$f" "$new" &
  local wpid=$!
  track_pid "$wpid"
  wait_for 10 test -e "$T/rw/w0"
  r=$(content "$f") size=$(stat -c %s "$f")
  check_eq "while a writer holds an O_TRUNC open, cat shows the old document" "$old" "$r"
  check_eq "while a writer holds an O_TRUNC open, stat shows the old size" "$(printf '%s\n' "$old" | wc -c)" "$size"
  touch "$T/rw/go0"
  wait_for 10 test -e "$T/rw/w1"
  r=$(content "$f") size=$(stat -c %s "$f")
  check_eq "after the writer's first 10 bytes, cat shows the old document" "$old" "$r"
  check_eq "after the writer's first 10 bytes, stat shows the old size" "$(printf '%s\n' "$old" | wc -c)" "$size"
  touch "$T/rw/go1"
  wait_for 10 test -e "$T/rw/w2"
  r=$(content "$f")
  if [[ $r == "$old" ]] || jq -e '.name == "New During Read"' <<<"$r" >/dev/null 2>&1; then
    _pass "with the whole document written but not closed, cat shows the old or the new record"
  else
    _fail "with the whole document written but not closed, cat shows the old or the new record" "actual: $r"
  fi
  touch "$T/rw/go2"
  wait_for 10 test -e "$T/rw/w3"
  wait "$wpid" 2>/dev/null || true
  check_eq "after the writer's close, cat shows the new record" "New During Read" "$(name_of "$f")"
  check "after the writer's close, stat size is true" size_truth "$f"
}
reader_during_write
snapshot_at_open() {
  "$PY" - "$1" <<'EOF'
import os, sys
f = sys.argv[1]
old = open(f).read()
early = open(f)                       # a reader opened before the write
with open(f, "w") as o:
    o.write('{"id":2,"name":"After Snapshot"}\n')
snap = early.read()
assert snap == old, "a reader opened before the write read %r, not the old %r" % (snap, old)
EOF
}
check "a reader opened before a write reads the document as it was at its open" snapshot_at_open "$U/2.json"
check_eq "the write after the snapshot took effect" "After Snapshot" "$(name_of "$U/2.json")"
concurrent_rw() {
  "$PY" - "$1" <<'EOF'
import json, sys, threading
f = sys.argv[1]
docs = ['{"id":2,"name":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}\n', '{"id":2,"name":"B"}\n']
names = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "B", "After Snapshot"}
stop = False
bad = []
def writer():
    for i in range(60):
        with open(f, "w") as o:
            o.write(docs[i % 2])
def reader():
    while not stop:
        t = open(f).read()
        try:
            d = json.loads(t)
            if d.get("name") not in names or t.count("\n") != 1: bad.append(t)
        except ValueError:
            bad.append(t)
w = threading.Thread(target=writer); r = threading.Thread(target=reader)
r.start(); w.start(); w.join(); stop = True; r.join()
if bad: sys.exit("mixed reads: %r" % bad[:3])
print("ok")
EOF
}
check "60 writes racing a reader: every read is one whole document" concurrent_rw "$U/2.json"
check "after the race: file and PostgreSQL agree on the last write" wait_for 10 synced_name 2 B

# --- stat, df ---------------------------------------------------------------------------------------------
for f in 1 2 3 2001 3001; do
  check "stat size == cat | wc -c: User/$f.json" size_truth "$U/$f.json"
done
check "stat size is true for Order/10.json (read-through)" size_truth "$B/Order/10.json"
check_eq "records are 0644" 644 "$(stat -c %a "$U/1.json")"
check_eq "model directories are 0755" 755 "$(stat -c %a "$U")"
check_eq "block directories are 0755" 755 "$(stat -c %a "$B")"
check_eq "records belong to the daemon's user" "$(stat -c %u "/proc/$DAEMON_PID")" "$(stat -c %u "$U/1.json")"
check_eq "records belong to the daemon's group" "$(stat -c %g "/proc/$DAEMON_PID")" "$(stat -c %g "$U/1.json")"
check "records are regular files" test -f "$U/1.json"
check "everything synced before the mtime test" wait_for 10 pending_is_zero
sleep 1.2
m1=$(stat -c %Y "$U/3.json")
sleep 1.2
content "$U/3.json" >/dev/null
check_eq "mtime does not change after a read" "$m1" "$(stat -c %Y "$U/3.json")"
check "write User/3.json" put "$U/3.json" '{"id":3,"name":"Mtime"}'
check "mtime moves forward after a write" test "$(stat -c %Y "$U/3.json")" -gt "$m1"
check "mtime is about now" test "$(($(date +%s) - $(stat -c %Y "$U/3.json")))" -le 5
check "df works on the mount" timeout 10 df "$MNT"
check "df -i works on the mount" timeout 10 df -i "$MNT"
check "stat -f works on the mount" timeout 10 stat -f "$MNT"
check "statvfs on a model directory" "$PY" -c "import os; s = os.statvfs('$U'); assert s.f_bsize > 0"

# --- operations that get EPERM or EXDEV --------------------------------------------------------------
check "everything synced before the EPERM tests" wait_for 10 pending_is_zero
u1=$(content "$U/1.json")
u2=$(content "$U/2.json")
refused_op "rename record -> record" EPERM rename "$U/1.json" "$U/2.json"
check "mv record -> record says 'Operation not permitted'" \
  grep -q 'Operation not permitted' <<<"$(timeout 10 mv "$U/1.json" "$U/2.json" 2>&1)"
refused_op "rename record -> new record name" EPERM rename "$U/1.json" "$U/4001.json"
refused_op "rename record -> scratch name" EPERM rename "$U/1.json" "$U/1.json.bak"
refused_op "rename record -> another model directory" EXDEV rename "$U/1.json" "$B/Order/1.json"
refused_op "link (ln) of a record" EPERM link "$U/1.json" "$U/4002.json"
check_fails "ln fails" timeout 10 ln "$U/1.json" "$U/4003.json"
refused_op "link of a record to a scratch name" EPERM link "$U/1.json" "$U/hard"
refused_op "symlink (ln -s) to a record name" EPERM symlink 1.json "$U/4004.json"
refused_op "symlink to a scratch name" EPERM symlink 1.json "$U/soft"
check_fails "ln -s fails" timeout 10 ln -s 1.json "$U/soft2"
refused_op "chmod 600 of a record" EPERM chmod "$U/1.json" 600
check_fails "chmod 600 fails" timeout 10 chmod 600 "$U/1.json"
check "chmod 644 of a record (no change) succeeds" timeout 10 chmod 644 "$U/1.json"
check "chown to the same owner succeeds" timeout 10 chown "$(stat -c %u:%g "$U/1.json")" "$U/1.json"
refused_op "chown of a record to another owner" EPERM chown "$U/1.json" 12345 12345
refused_op "mkfifo in a model directory" EPERM mkfifo "$U/fifo"
check_fails "mknod p fails" timeout 10 mknod "$U/fifo2" p
refused_op "mknod of a regular file named like a record" EPERM mknod "$U/4005.json"
check_eq "1.json unchanged by all of that" "$u1" "$(content "$U/1.json")"
check_eq "2.json unchanged by all of that" "$u2" "$(content "$U/2.json")"
check_eq "1.json is still 0644" 644 "$(stat -c %a "$U/1.json")"
for f in 4001 4002 4003 4004 4005; do
  check "no record $f.json was created" test ! -e "$U/$f.json"
done
check "no stray names were created" test -z "$(ls -A "$U" | grep -xE 'hard|soft|soft2|fifo|fifo2|1\.json\.bak' || true)"
sleep 1
check_eq "nothing pending after the refused operations" 0 "$(status_of pending)"
check_eq "PostgreSQL has no 4001..4005" 0 "$(psql_q 'select count(*) from "User" where id between 4001 and 4005')"

check_eq "no tool deleted a row in PostgreSQL" 0 "$(psql_q 'select count(*) from audit.deletes')"

# --- scratch files are gone after a remount ------------------------------------------------------------
check "the scratch files are still there before the unmount" test -f "$U/notes.bak" -a -f "$U/bad.tmp"
check "everything synced before the unmount" wait_for 10 pending_is_zero
if unmount_sharded; then _pass "unmount"; else _fail "unmount"; fi
mount_sharded
check "notes.bak is gone after the remount" test ! -e "$U/notes.bak"
check "bad.tmp is gone after the remount" test ! -e "$U/bad.tmp"
check ".1.json.swp is gone after the remount" test ! -e "$U/.1.json.swp"
check "only records remain in User" only_records_in "$U"
check "the records survived the remount" synced_name 3001 "Renamed Again"
if unmount_sharded; then _pass "final unmount"; else _fail "final unmount"; fi

finish
