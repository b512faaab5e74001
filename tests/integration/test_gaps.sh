#!/usr/bin/env bash
# Gaps in "nothing acknowledged is lost" (issue 11, items 4, 5, 7 and 11):
# - a block id that is not UTF-8 (or holds a control character) is refused at mkdir with
#   EINVAL, and such a block file found at start is not opened; a block whose writes PostgreSQL
#   refuses as a whole (a data exception on its bookkeeping row, SQLSTATE 22021 as a non-UTF-8
#   id gets) is held back and reported while other blocks keep syncing, and recovers;
# - sharded dlq retry, then rmdir at once, of blocks the daemon holds parked: the retried
#   writes reach PostgreSQL (several blocks);
# - one write() above max_doc fails whole with EFBIG (no short count), and so does close();
# - the applied counter is exact, across a PostgreSQL restart in the middle of the sync;
# - one cap on all record write buffers: beyond it write() fails with ENOSPC, and the space
#   comes back at close;
# - a full disk (a small tmpfs as the data directory): a failed mkdir leaves no file and no
#   block after a remount; a write fails with ENOSPC, not EIO.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHARDED=$SHARDED_BUILD_DIR/sharded
[[ -x $SHARDED ]] || die "no $SHARDED: build first"
PY=/usr/bin/python3
IO=$SHARDED_SOURCE_DIR/tests/integration/gaps_io.py
BUFFERS=$((4 << 20))   # write_buffers of the mount: eight unfinished documents of 512 KiB
RUNS=3                 # dlq retry + rmdir, one parked block each

tool() { timeout 60 "$SHARDED" --data "$DATA" --redis "$REDIS_URL" "$@"; }
io() { timeout 60 "$PY" "$IO" "$@" 2>&1 || true; }
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
status_of() { timeout 10 awk -v k="$2" '$1 == k {sub(/^[^ ]+ /, ""); print}' "$MNT/$1/sync-status" 2>/dev/null || true; }
status_is() { [[ $(status_of "$1" "$2") == "$3" ]]; }
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }
mark_log() { LOG_MARK=$(stat -c %s "$T/daemon.log" 2>/dev/null || echo 0); }
log_since() { tail -c +"$((LOG_MARK + 1))" "$T/daemon.log" 2>/dev/null || true; }
logged() { log_since | grep -q -- "$1"; }
LOG_MARK=0

SMALL=""
small_cleanup() {
  local rc=$?
  set +e   # under set -e, the (exit $rc) below would end the trap before cleanup
  if [[ -n $SMALL ]] && mountpoint -q "$SMALL"; then
    [[ -n $MNT ]] && force_unmount "$MNT"
    umount -l "$SMALL" 2>/dev/null || true
  fi
  (exit $rc)
  cleanup
}

setup_tmp
trap small_cleanup EXIT
start_postgres
load_sample_schema
start_redis
mount_sharded "write_buffers=$BUFFERS"

require "mkdir u1" mkdir "$MNT/u1"
check "a write to u1" put "$MNT/u1/User/1.json" '{"id":1,"email":"ada@example.com","name":"first"}'
check "it reaches postgresql" wait_for 20 pg_is first 'select name from "User" where id = 1'

# --- 4: block ids ------------------------------------------------------------------------------
mark_log
check_eq "mkdir of a block id that is not UTF-8 fails with EINVAL" EINVAL "$(io mkdir "$(hex "$MNT/0bad"$'\xff')")"
check_eq "mkdir of an overlong UTF-8 form fails with EINVAL" EINVAL "$(io mkdir "$(hex "$MNT/0bad"$'\xc0\xaf')")"
check_eq "mkdir of a UTF-8 surrogate fails with EINVAL" EINVAL "$(io mkdir "$(hex "$MNT/0bad"$'\xed\xa0\x80')")"
check_eq "mkdir of a C1 control character (U+0085) fails with EINVAL" EINVAL \
  "$(io mkdir "$(hex "$MNT/0bad"$'\xc2\x85')")"
check_eq "mkdir of valid UTF-8 works" ok "$(io mkdir "$(hex "$MNT/caf"$'\xc3\xa9')")"
check "the refusal is logged with its reason" logged "not valid UTF-8"
check_eq "no file of a refused block" "" "$(ls -A "$DATA" | grep '^0bad' || true)"
check "a write to u1 after the refusals" put "$MNT/u1/User/1.json" '{"id":1,"email":"ada@example.com","name":"second"}'
check "it reaches postgresql" wait_for 20 pg_is second 'select name from "User" where id = 1'

# A block whose bookkeeping row PostgreSQL refuses with a data exception, as it refuses an id
# that is not UTF-8: held back and reported, not "postgres down" for every block.
psql_q "create function poison() returns trigger language plpgsql as \$\$
          begin
            if new.block like '0poison%' then
              raise exception 'invalid byte sequence for encoding \"UTF8\": 0xff' using errcode = '22021';
            end if;
            return new;
          end \$\$;
        create trigger poison before insert or update on sharded_applied
          for each row execute function poison()" >/dev/null
require "mkdir 0poison (sorted before every other block)" mkdir "$MNT/0poison"
mark_log
check "a write to 0poison" put "$MNT/0poison/User/2.json" '{"id":2,"email":"alan@example.com","name":"poisoned"}'
check "0poison reports the refusal in its sync-status" wait_for 20 bash -c \
  "grep -q '^refused .*invalid byte sequence' '$MNT/0poison/sync-status'"
check "a write to u1 while 0poison is refused" put "$MNT/u1/User/3.json" '{"id":3,"email":"grace@example.com","name":"unblocked"}'
check "it reaches postgresql" wait_for 20 pg_is unblocked 'select name from "User" where id = 3'
check_eq "postgres is up in 0poison's sync-status" up "$(status_of 0poison postgres)"
check_eq "postgres is up in u1's sync-status" up "$(status_of u1 postgres)"
check_eq "u1 has no refusal" - "$(status_of u1 refused)"
check_eq "0poison's write stays pending" 1 "$(status_of 0poison pending)"
check "the log says the block is held back" logged "block '0poison': postgresql refuses its writes"
check_eq "the metrics say postgres is up" 1 "$(timeout 10 awk '$1 == "sharded_postgres_up" {print $2}' "$MNT/metrics")"
check_eq "the refusal is logged once" 1 "$(log_since | grep -c "block '0poison': postgresql refuses" || true)"
psql_q "drop trigger poison on sharded_applied" >/dev/null
check "once PostgreSQL takes it, 0poison's write is applied" \
  wait_for 30 pg_is poisoned 'select name from "User" where id = 2'
check "and its refusal is cleared" wait_for 10 status_is 0poison refused -

# --- 7: one write() above max_doc --------------------------------------------------------------
check_eq "one write() of 1,048,630 bytes fails whole with EFBIG, and so does close()" \
  "write=EFBIG close=EFBIG" "$(io write "$MNT/u1/User/77.json" 1048630)"
check_eq "write() calls at page-aligned offsets: the one crossing the cap fails whole, and close()" \
  "write=409600,409600,EFBIG close=EFBIG" "$(io write "$MNT/u1/User/78.json" 1228800 3)"
# At an offset that is not page-aligned the kernel sends the bytes up to the next page boundary
# as a request of their own: that head is counted as written (a short count below one page),
# the rest fails. close() fails all the same and nothing is stored.
res=$(io write "$MNT/u1/User/76.json" 1200000 2)
check "an unaligned write() crossing the cap: at most a head below one page, then close() fails" \
  grep -Eqx 'write=600000,([0-9]{1,4}|EFBIG) close=EFBIG' <<<"$res"
check_eq "a document of 1,000,000 bytes in one write() is stored" \
  "write=1000000 close=ok" "$(io write "$MNT/u1/User/79.json" 1000000)"
check "nothing of the refused documents is stored" bash -c \
  "! test -e '$MNT/u1/User/76.json' && ! test -e '$MNT/u1/User/77.json' && ! test -e '$MNT/u1/User/78.json'"

# --- 11: one cap on all record write buffers ---------------------------------------------------
res=$(io hold "$MNT/u1/User/9" 10 $((512 << 10)))
check_eq "eight unfinished 512 KiB documents fill write_buffers; the ninth and tenth get ENOSPC" \
  "ok,ok,ok,ok,ok,ok,ok,ok,ENOSPC,ENOSPC" "$(sed -n 's/^writes=\([^ ]*\).*/\1/p' <<<"$res")"
check_eq "close() of a handle refused for space fails with ENOSPC" ENOSPC \
  "$(sed -n 's/.*closes=.*,\([^,]*\)$/\1/p' <<<"$res")"
check_eq "after close the space is back: the same again" "$res" "$(io hold "$MNT/u1/User/9" 10 $((512 << 10)))"

# --- 5: dlq retry, then rmdir at once, of parked blocks ----------------------------------------
for i in $(seq 1 $RUNS); do
  require "mkdir r$i" mkdir "$MNT/r$i"
  check "an order of a user that does not exist yet, in r$i" \
    put "$MNT/r$i/Order/$((700 + i)).json" "{\"id\":$((700 + i)),\"userId\":$((5000 + i)),\"total\":$i}"
done
for i in $(seq 1 $RUNS); do
  check "r$i's order becomes a dead letter" wait_for 20 status_is "r$i" dead 1
done
require "unmount" unmount_sharded
psql_q "insert into \"User\" (id, email) select 5000 + g, 'late' || g || '@example.com' from generate_series(1, $RUNS) g" >/dev/null
mount_sharded "write_buffers=$BUFFERS"   # every block parked, remembering "pending 0"
for i in $(seq 1 $RUNS); do
  check "dlq retry r$i, then rmdir r$i at once" bash -c \
    "timeout 60 '$SHARDED' --data '$DATA' --redis '$REDIS_URL' dlq retry r$i >/dev/null && rmdir '$MNT/r$i'"
done
for i in $(seq 1 $RUNS); do
  check "r$i's retried order reaches postgresql" \
    wait_for 30 pg_is "$i.00" "select total from \"Order\" where id = $((700 + i))"
  check "r$i's file goes once it is applied" wait_for 20 bash -c "! test -e '$DATA/r$i.sqlite'"
done

# --- 11: the applied counter -------------------------------------------------------------------
require "mkdir c1" mkdir "$MNT/c1"
before=$(status_of c1 applied)
for i in $(seq 1 9); do put "$MNT/c1/User/$((600 + i)).json" "{\"id\":$((600 + i)),\"email\":\"c$i@example.com\"}"; done
check "nine writes applied" wait_for 20 status_is c1 pending 0
check_eq "applied counts the nine" $((before + 9)) "$(status_of c1 applied)"
stop_postgres immediate
for i in $(seq 1 9); do put "$MNT/c1/User/$((600 + i)).json" "{\"id\":$((600 + i)),\"email\":\"d$i@example.com\"}"; done
_pg_start
check "nine more applied after a PostgreSQL restart" wait_for 30 status_is c1 pending 0
check_eq "applied counts eighteen" $((before + 18)) "$(status_of c1 applied)"
# A batch that PostgreSQL committed but whose answer never came back (a crash or a cut
# connection right after COMMIT), made by hand: while the daemon is down, PostgreSQL gets the
# pending writes and the block's sharded_applied row. They count once found applied.
stop_postgres
for i in 1 2 3; do put "$MNT/c1/User/$((600 + i)).json" "{\"id\":$((600 + i)),\"email\":\"e$i@example.com\"}"; done
check "three writes pending while PostgreSQL is down" wait_for 10 status_is c1 pending 3
require "unmount" unmount_sharded
_pg_start
top=$(timeout 10 sqlite3 "$DATA/c1.sqlite" 'select max(seq) from outbox')
psql_q "update \"User\" set email = 'e' || (id - 600) || '@example.com' where id between 601 and 603;
        update sharded_applied set seq = $top where block = 'c1'" >/dev/null
mount_sharded "write_buffers=$BUFFERS"
check "the three are found applied" wait_for 20 status_is c1 pending 0
check_eq "applied counts them: twenty-one" $((before + 21)) "$(status_of c1 applied)"

# --- a block file with an id that is not UTF-8, found at start ---------------------------------
require "unmount" unmount_sharded
cp "$DATA/u1.sqlite" "$DATA/"$'9bad\xff'".sqlite"
mark_log
mount_sharded "write_buffers=$BUFFERS"
check "the mount comes up and says it refused the file" wait_for 10 logged "refused, not opened"
check "u1 is still there" test -d "$MNT/u1"
check "the refused file is not a block" bash -c "! ls '$MNT' | grep -q '^9bad'"
check "the refused file is left as it was" test -f "$DATA/"$'9bad\xff'".sqlite"
require "unmount" unmount_sharded

# --- 11: a full disk ---------------------------------------------------------------------------
SMALL=$T/small
mkdir -p "$SMALL" "$T/mnt2"
require "a 4 MiB tmpfs as the data directory" mount -t tmpfs -o size=4m tmpfs "$SMALL"
MNT=$T/mnt2 DATA=$SMALL
mount_sharded
require "mkdir f1" mkdir "$MNT/f1"
check "a write to f1" put "$MNT/f1/User/1.json" '{"id":1,"email":"ada@example.com","name":"full"}'
dd if=/dev/zero of="$SMALL/filler" bs=64k 2>/dev/null || true
check_eq "mkdir of a block on a full disk fails with ENOSPC" ENOSPC "$(io mkdir "$(hex "$MNT/f2")")"
check_eq "and leaves no file" "" "$(ls -A "$SMALL" | grep '^f2' || true)"
check_eq "a write on a full disk fails with ENOSPC (at close)" "write=300000 close=ENOSPC" \
  "$(io write "$MNT/f1/User/99.json" 300000)"
rm -f "$SMALL/filler"
require "unmount" unmount_sharded
mount_sharded
check "after a remount there is no block f2" bash -c "! test -e '$MNT/f2'"
check "f1 is there" test -d "$MNT/f1"
require "unmount" unmount_sharded
umount "$SMALL" && SMALL=""

finish
