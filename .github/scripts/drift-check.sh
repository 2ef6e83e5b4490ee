#!/usr/bin/env bash
# One stack's drift check (drift.yml): compare every resource in the clouds with the stack's state.
#
#   pulumi refresh --preview-only --expect-no-changes --diff
#
# --preview-only: the state is not changed and the program does not run; --expect-no-changes: a non-zero
# exit when the refresh would change anything. The verdict goes to the job summary:
#   no drift (exit 0) | DRIFT (the refresh would change resources; exit 1) | could not check (exit 2).
# Environment: STACK (name shown), STACK_REF (Pulumi stack, maybe org/stack). Needs `pulumi`, logged in.
set -uo pipefail

: "${STACK:?}" "${STACK_REF:?}"
summary=${GITHUB_STEP_SUMMARY:-/dev/null}
out=$(mktemp)

pulumi refresh --preview-only --expect-no-changes --diff --non-interactive --suppress-progress \
  --color never --stack "$STACK_REF" >"$out" 2>&1
status=$?
cat "$out"

# The refresh summary counts changes as "N to update", "N to delete" (and create/replace).
if [ "$status" -eq 0 ]; then
  verdict="no drift"
  code=0
elif grep -Eq '[0-9]+ to (update|delete|create|replace)' "$out"; then
  verdict="DRIFT"
  code=1
else
  verdict="could not check"
  code=2
fi

{
  echo "### Drift: \`$STACK\`: $verdict"
  if [ "$code" -ne 0 ]; then
    echo '```'
    tail -n 200 "$out"
    echo '```'
  fi
} >>"$summary"
[ "$code" -eq 0 ] || echo "::error title=$STACK::$verdict (pulumi refresh --preview-only exited $status)"
exit "$code"
