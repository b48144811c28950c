#!/usr/bin/env bash
# Side-by-side benchmark: lifeboat vault vs restic vs rustic on the same
# generated mail-like corpus (MIME messages in mailboxes, attachments
# repeated across mailboxes). Initial backup, then an incremental after 5%
# of the items change. Prints time, throughput, peak RSS and repository size.
#
#   SIZE=2000000000 crates/vault/bench/compare.sh
#
# Needs: a release build of `lifeboat` and `vault-mailgen`
# (cargo build --release -p lifeboat -p vault), restic (Debian package) and
# rustic (cargo install rustic-rs); a tool that is missing is skipped.
set -euo pipefail
SIZE=${SIZE:-2000000000}
WORK=${WORK:-/tmp/vault-bench}
TARGET=${CARGO_TARGET_DIR:-target}
LIFEBOAT=${LIFEBOAT:-$TARGET/release/lifeboat}
MAILGEN=${MAILGEN:-$TARGET/release/vault-mailgen}
export RESTIC_PASSWORD=bench RUSTIC_PASSWORD=bench LIFEBOAT_VAULT_PASSWORD=bench

mkdir -p "$WORK"
CORPUS=$WORK/corpus
if [ ! -d "$CORPUS" ]; then
  "$MAILGEN" generate "$CORPUS" --bytes "$SIZE" --seed 1
fi
corpus_bytes() { du -sb "$CORPUS" | cut -f1; }
BYTES=$(corpus_bytes)
FILES=$(find "$CORPUS" -type f | wc -l)
cat "$(find "$CORPUS" -type f | head -1)" > /dev/null
find "$CORPUS" -type f -print0 | xargs -0 cat > /dev/null  # warm the page cache for everyone

tools=()
[ -x "$LIFEBOAT" ] && tools+=(lifeboat)
command -v restic > /dev/null && tools+=(restic)
command -v rustic > /dev/null && tools+=(rustic)

init() {
  local t=$1 repo=$WORK/repo-$1
  rm -rf "$repo"
  case $t in
    lifeboat) "$LIFEBOAT" vault init --repo "$repo" > /dev/null 2>&1 ;;
    restic) restic -r "$repo" init -q > /dev/null ;;
    rustic) rustic -r "$repo" init > /dev/null 2>&1 ;;
  esac
}
backup() {
  local t=$1 repo=$WORK/repo-$1
  case $t in
    lifeboat) "$LIFEBOAT" vault backup "$CORPUS" --repo "$repo" ;;
    restic) restic -r "$repo" backup -q "$CORPUS" ;;
    rustic) rustic -r "$repo" backup "$CORPUS" ;;
  esac
}
# Runs a backup under /usr/bin/time; echoes "seconds peak_kb".
measure() {
  local t=$1 out=$WORK/time-$1
  /usr/bin/time -f "%e %M" -o "$out" bash -c "$(declare -f backup); LIFEBOAT=$LIFEBOAT WORK=$WORK CORPUS=$CORPUS backup $t" > "$WORK/log-$t" 2>&1
  cat "$out"
}
size_of() { du -sb "$WORK/repo-$1" | cut -f1; }

declare -A T1 M1 S1 T2 M2 S2
for t in "${tools[@]}"; do
  init "$t"
  read -r T1[$t] M1[$t] < <(measure "$t")
  S1[$t]=$(size_of "$t")
done
"$MAILGEN" mutate "$CORPUS" --percent 5 --seed 2
BYTES2=$(corpus_bytes)
for t in "${tools[@]}"; do
  read -r T2[$t] M2[$t] < <(measure "$t")
  S2[$t]=$(size_of "$t")
done
# Undo nothing: the corpus now holds the mutated state (regenerate for a new run).

printf '\ncorpus: %s files, %.2f GB (after mutation %.2f GB)\n' "$FILES" "$(echo "$BYTES/1000000000" | bc -l)" "$(echo "$BYTES2/1000000000" | bc -l)"
printf '%-9s | %9s %9s %9s %10s | %9s %9s %11s\n' tool "init s" "MB/s" "peak MB" "repo MB" "incr s" "peak MB" "growth MB"
for t in "${tools[@]}"; do
  printf '%-9s | %9.1f %9.1f %9.0f %10.1f | %9.1f %9.0f %11.1f\n' "$t" "${T1[$t]}" \
    "$(echo "$BYTES/1000000/${T1[$t]}" | bc -l)" "$(echo "${M1[$t]}/1024" | bc -l)" "$(echo "${S1[$t]}/1000000" | bc -l)" \
    "${T2[$t]}" "$(echo "${M2[$t]}/1024" | bc -l)" "$(echo "(${S2[$t]}-${S1[$t]})/1000000" | bc -l)"
done
