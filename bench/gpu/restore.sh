#!/usr/bin/env bash
# Puts the parity fixtures that bench/gpu/prepare.sh moved out back into test/fixtures/parity.
# Idempotent: nothing to do when they are already in place. Never overwrites: when both the tree
# and the backup hold fixtures, it stops unless the two are identical (then the backup goes).
set -euo pipefail

ROOT=$(git rev-parse --show-toplevel)
cd "$ROOT"
BACKUP=${CMERGE_FIXTURES_BACKUP:-/tmp/cmerge-parity-fixtures-backup}
DEST=test/fixtures/parity

if [ -d "$BACKUP" ]; then
  if [ -e "$DEST" ]; then
    if diff -rq "$BACKUP" "$DEST" >/dev/null 2>&1; then
      rm -rf "$BACKUP"
      echo "restore.sh: $DEST was already in place (identical to $BACKUP); backup removed"
    else
      echo "restore.sh: refusing: both $DEST and $BACKUP exist and differ; compare them and remove one by hand" >&2
      exit 1
    fi
  else
    mkdir -p "$(dirname "$DEST")"
    mv "$BACKUP" "$DEST"
    echo "restore.sh: $DEST restored from $BACKUP"
  fi
elif [ -d "$DEST" ]; then
  echo "restore.sh: nothing to restore ($DEST is in place, no $BACKUP)"
else
  echo "restore.sh: $DEST is missing and there is no $BACKUP: \`git checkout -- $DEST\` brings the tracked files back" >&2
  exit 1
fi

changes=$(git status --porcelain -- "$DEST")
if [ -n "$changes" ]; then
  echo "restore.sh: WARNING: git status shows changes under $DEST:" >&2
  echo "$changes" | head -20 >&2
  exit 1
fi
echo "restore.sh: git status: $DEST unchanged"
