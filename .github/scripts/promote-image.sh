#!/usr/bin/env bash
# Promote the image staging runs to one production stack, without rebuilding it (deploy.yml, production).
#
# 1. Find the repository the stack runs its image from today (its `image` output, `repo@sha256:...`): the
#    registry the stack owns (image.build) or the one its image.digest names.
# 2. Copy SOURCE_REF (staging's `repo@sha256:...`) into it under a new, never-reused tag with `crane copy`,
#    which keeps the manifest bytes and so the digest; check the digest of the copy.
# 3. `pulumi config set --path app.image.digest <repo>@<digest>`: with image.build still in the stack file
#    this is the promote path (fastapi_deploy/config.py ImageSpec): the registry stays, nothing is built.
#
# Environment: STACK_REF (Pulumi stack, maybe org/stack), SOURCE_REF, DIGEST (sha256:<64 hex>),
# PROMOTE_TAG; GCP_ACCESS_TOKEN for Artifact Registry. Needs `pulumi` (logged in), `crane`, and `aws`
# for ECR. Writes `ref=<repo>@<digest>` to $GITHUB_OUTPUT.
set -euo pipefail

die() {
  echo "::error::$*" >&2
  exit 1
}

: "${STACK_REF:?}" "${SOURCE_REF:?}" "${DIGEST:?}" "${PROMOTE_TAG:?}"
[[ $DIGEST =~ ^sha256:[0-9a-f]{64}$ ]] || die "DIGEST '$DIGEST' is not sha256:<64 hex>"
[[ $SOURCE_REF == *"@$DIGEST" ]] || die "SOURCE_REF '$SOURCE_REF' does not end in @$DIGEST"

current=$(pulumi stack output image --stack "$STACK_REF" 2>/dev/null) ||
  die "$STACK_REF has no 'image' output: deploy it once with image.build (pulumi up) before promoting to it"
[[ $current =~ ^[^@[:space:]]+@sha256:[0-9a-f]{64}$ ]] || die "$STACK_REF output image '$current' is not repo@sha256:..."
target_repo=${current%@*}

login() {
  local host=$1
  case "$host" in
    *.dkr.ecr.*.amazonaws.com)
      local region
      region=$(cut -d. -f4 <<<"$host")
      aws ecr get-login-password --region "$region" | crane auth login "$host" -u AWS --password-stdin
      ;;
    *-docker.pkg.dev)
      [[ -n ${GCP_ACCESS_TOKEN:-} ]] || die "no Google access token for $host (google-github-actions/auth token_format: access_token)"
      printf '%s' "$GCP_ACCESS_TOKEN" | crane auth login "$host" -u oauth2accesstoken --password-stdin
      ;;
    *) die "no login known for registry $host" ;;
  esac
}

source_host=${SOURCE_REF%%/*}
target_host=${target_repo%%/*}
login "$source_host"
[[ $target_host == "$source_host" ]] || login "$target_host"

# A new tag per promotion: tags are immutable in ECR and Artifact Registry here, and an untagged image
# would be expired by the ECR lifecycle policy while production still runs it.
crane copy "$SOURCE_REF" "$target_repo:$PROMOTE_TAG"
copied=$(crane digest "$target_repo:$PROMOTE_TAG")
[[ $copied == "$DIGEST" ]] || die "the copy in $target_repo has digest $copied, staging runs $DIGEST"

ref="$target_repo@$DIGEST"
pulumi config set --path app.image.digest "$ref" --stack "$STACK_REF"
echo "ref=$ref" >>"${GITHUB_OUTPUT:-/dev/null}"
echo "Promoted \`$SOURCE_REF\` to \`$ref\` (tag $PROMOTE_TAG) for $STACK_REF." >>"${GITHUB_STEP_SUMMARY:-/dev/null}"
