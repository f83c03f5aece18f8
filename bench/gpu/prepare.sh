#!/usr/bin/env bash
# Stages what the GPU machine needs for bench/gpu/run.sh (see bench/README.md, "GPU bench"), then
# moves the tracked parity fixtures out of the working tree so that the tree travels in 64 MiB.
# Put them back with bench/gpu/restore.sh after the device call.
#
# Run here, as root, from anywhere in the repository, AFTER `npm run build` (this script builds
# nothing and needs no network). It writes the ignored folder .gpu/ (listed in .git/info/exclude):
#   node.xz               the node binary (`command -v node`), xz-compressed
#   node_modules.tar.xz   the production node_modules (npm prune --omit=dev, offline), stripped
#                         of what is not needed at run time (sources, docs, typings)
#   fixtures.tar.xz       the tracked test/fixtures/parity, byte for byte (GPU_FIXTURES=regen:
#                         left out, run.sh then remakes the cases with gen_fixtures.py)
#   fixtures.sha256       sha256 of every fixture file, checked on the device either way
#   reference/*.py        the shared reference (../shared/reference), for synth, peer, fixtures
#   MANIFEST              what was staged, from which node/commit
# and prints the device call: the carry list and the command, and the size that will travel.
set -euo pipefail

ROOT=$(git rev-parse --show-toplevel)
cd "$ROOT"
GPU=.gpu
BACKUP=${CMERGE_FIXTURES_BACKUP:-/tmp/cmerge-parity-fixtures-backup}
SHARED=${CMERGE_SHARED:-$ROOT/../shared}
LIMIT=$((64 * 1024 * 1024))
CARRY=(.gpu dist native/build/Release)
COMMAND='bash bench/gpu/run.sh'

die() { echo "prepare.sh: $*" >&2; exit 1; }
for tool in node npm xz tar git sha256sum; do command -v "$tool" >/dev/null || die "$tool not found"; done

# --- what must already be built -------------------------------------------------------------
for f in dist/src/cli/main.js dist/bench/gpu/bench.js dist/test/cli/merge-parity.test.js native/build/Release/cmerge_cuda.node; do
  [ -e "$f" ] || die "$f is missing: run \`npm run build\` (and \`npm ci\` once) first"
done
newer=$(find src test bench -name '*.ts' -newer dist/bench/gpu/bench.js 2>/dev/null | head -5 || true)
[ -z "$newer" ] || echo "prepare.sh: WARNING: sources newer than dist/ (run \`npm run build\`?):" $newer >&2
[ -d node_modules ] || die "node_modules is missing: run \`npm ci\` first"
[ -f "$SHARED/reference/gen_fixtures.py" ] || die "$SHARED/reference not found (set CMERGE_SHARED)"

# --- .gpu/ is ignored locally, not in .gitignore ---------------------------------------------
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
grep -qxF '/.gpu/' "$EXCLUDE" 2>/dev/null || echo '/.gpu/' >>"$EXCLUDE"
mkdir -p "$GPU/reference"

# --- node -------------------------------------------------------------------------------------
NODE_BIN=$(readlink -f "$(command -v node)")
NODE_ID="$(node -v) $NODE_BIN $(stat -c '%s %Y' "$NODE_BIN")"
if [ -f "$GPU/node.xz" ] && [ "$(cat "$GPU/node.id" 2>/dev/null)" = "$NODE_ID" ]; then
  echo "node: $GPU/node.xz is current ($(node -v))"
else
  echo "node: compressing $NODE_BIN ($(node -v))..."
  xz -T0 -6 -c "$NODE_BIN" >"$GPU/node.xz.tmp" && mv "$GPU/node.xz.tmp" "$GPU/node.xz"
  echo "$NODE_ID" >"$GPU/node.id"
fi

# --- production node_modules, pruned offline --------------------------------------------------
STAGE=$(mktemp -d /tmp/cmerge-gpu-modules.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
cp package.json package-lock.json "$STAGE/"
cp -a node_modules "$STAGE/"
(cd "$STAGE" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund >/dev/null)
NM=$STAGE/node_modules
# better-sqlite3: only the compiled addon is needed at run time (deps/ is the SQLite source)
if [ -d "$NM/better-sqlite3" ]; then
  rm -rf "$NM/better-sqlite3/deps" "$NM/better-sqlite3/src" "$NM/better-sqlite3/docs"
  find "$NM/better-sqlite3/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} + 2>/dev/null || true
  find "$NM/better-sqlite3/build/Release" -mindepth 1 ! -name 'better_sqlite3.node' -exec rm -rf {} + 2>/dev/null || true
  [ -f "$NM/better-sqlite3/build/Release/better_sqlite3.node" ] || die "better-sqlite3's addon is not built"
fi
# headers only (used when the addon is compiled, not when it runs)
rm -rf "$NM/node-addon-api"/*.h "$NM/node-addon-api/tools" "$NM/node-addon-api/doc" 2>/dev/null || true
# the digits demo's TensorFlow.js and MNIST data (~200 MB) are not used on the GPU machine
rm -rf "$NM/@tensorflow" "$NM/mnist" "$NM/core-js" 2>/dev/null || true
find "$NM" -type f \( -name '*.md' -o -name '*.markdown' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.ts' -o -name 'CHANGELOG*' -o -name '*.gyp' -o -name '*.gypi' -o -name '*.c' -o -name '*.cc' -o -name '*.h' \) -delete
find "$NM" -type d \( -name test -o -name tests -o -name __tests__ -o -name example -o -name examples -o -name '.github' \) -prune -exec rm -rf {} +
tar -C "$STAGE" -cf - node_modules | xz -T0 -6 >"$GPU/node_modules.tar.xz.tmp"
mv "$GPU/node_modules.tar.xz.tmp" "$GPU/node_modules.tar.xz"
echo "node_modules: $(du -sh "$NM" | cut -f1) pruned -> $(du -h "$GPU/node_modules.tar.xz" | cut -f1) compressed ($(ls "$NM" | wc -l) top-level entries)"

# --- the shared reference --------------------------------------------------------------------
rm -f "$GPU/reference"/*.py
cp "$SHARED"/reference/*.py "$GPU/reference/"
echo "reference: $(ls "$GPU/reference" | tr '\n' ' ')"

# --- the parity fixtures: archived here, moved out of the tree ------------------------------
if [ -d test/fixtures/parity ]; then
  [ ! -e "$BACKUP" ] || die "$BACKUP exists already and test/fixtures/parity is in the tree: run bench/gpu/restore.sh (or remove the stale backup) first"
  (cd test/fixtures && find parity -type f -print0 | sort -z | xargs -0 sha256sum) >"$GPU/fixtures.sha256.new"
  if [ "${GPU_FIXTURES:-archive}" = regen ]; then
    rm -f "$GPU/fixtures.tar.xz"
    echo "fixtures: not archived (GPU_FIXTURES=regen): run.sh remakes them with gen_fixtures.py"
  elif [ -f "$GPU/fixtures.tar.xz" ] && cmp -s "$GPU/fixtures.sha256.new" "$GPU/fixtures.sha256"; then
    echo "fixtures: $GPU/fixtures.tar.xz is current"
  else
    echo "fixtures: archiving test/fixtures/parity..."
    tar -C test/fixtures -cf - parity | xz -T0 -6 >"$GPU/fixtures.tar.xz.tmp"
    mv "$GPU/fixtures.tar.xz.tmp" "$GPU/fixtures.tar.xz"
  fi
  mv "$GPU/fixtures.sha256.new" "$GPU/fixtures.sha256"
  mkdir -p "$(dirname "$BACKUP")"
  mv test/fixtures/parity "$BACKUP"
  echo "fixtures: test/fixtures/parity moved to $BACKUP (bench/gpu/restore.sh puts it back)"
elif [ -d "$BACKUP" ]; then
  echo "fixtures: already moved to $BACKUP"
  [ -f "$GPU/fixtures.sha256" ] || die "$GPU/fixtures.sha256 is missing: run restore.sh, then this script again"
else
  die "test/fixtures/parity is neither in the tree nor in $BACKUP"
fi

git_rev=$(git rev-parse --short HEAD)
{
  echo "staged $(date -u +%FT%TZ) from $git_rev (working tree: $(git status --porcelain | wc -l) changed entries)"
  echo "node $(node -v) from $NODE_BIN"
  echo "fixtures: $([ -f "$GPU/fixtures.tar.xz" ] && echo archive || echo regen) ($(wc -l <"$GPU/fixtures.sha256") files)"
} >"$GPU/MANIFEST"

# --- what travels ------------------------------------------------------------------------------
# tracked files still present + untracked files git does not ignore, then each carried path
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -f "$f" ] && [ ! -L "$f" ] && stat -c %s "$f"; done | awk '{s += $1} END {print s + 0}')
carry_bytes=0
for p in "${CARRY[@]}"; do
  [ -e "$p" ] || die "carry path $p is missing"
  b=$(du -sb "$p" | cut -f1)
  printf '  carry %-24s %8.1f MiB\n' "$p" "$(echo "$b" | awk '{print $1 / 1048576}')"
  carry_bytes=$((carry_bytes + b))
done
total=$((tree_bytes + carry_bytes))
printf '  working tree (tracked + untracked-not-ignored) %8.1f MiB\n' "$(echo "$tree_bytes" | awk '{print $1 / 1048576}')"
printf 'travels: %.1f MiB of 64 MiB\n' "$(echo "$total" | awk '{print $1 / 1048576}')"
if [ "$total" -ge "$LIMIT" ]; then
  echo "prepare.sh: too big for the device call; putting the fixtures back" >&2
  bash "$ROOT/bench/gpu/restore.sh" >&2 || true
  exit 1
fi

carry_json=$(printf '"%s", ' "${CARRY[@]}")
cat <<EOF

Device call (one run, then give the machine back):
  kind:      nvidia-h200   (issue 16's figures are the H200's; a call naming no kind may get an H100)
  carry:     [${carry_json%, }]
  command:   $COMMAND
  timeout_s: 540      (run.sh stops its own stages after GPU_BUDGET_S=450 s)
Results come back under the call's files_at: log.txt, tests.txt, gpu-*.md, gpu-summary.json.
Afterwards: bash bench/gpu/restore.sh   (puts test/fixtures/parity back; do not commit before)
EOF
