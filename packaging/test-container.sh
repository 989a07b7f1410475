#!/usr/bin/env bash
# Builds the container image and starts it, where this machine runs a container engine
# that can fetch the base images; says why not otherwise (the package test runs anyway).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker >/dev/null 2>&1 || ! timeout 20 docker info >/dev/null 2>&1; then
  echo "container test skipped: no running container engine on this machine (docker info fails)"
  exit 0
fi
if ! timeout 60 docker pull -q gcr.io/distroless/cc-debian12:nonroot >/dev/null 2>&1; then
  echo "container test skipped: the base images cannot be fetched from here"
  exit 0
fi
docker build -q -f packaging/Containerfile -t roster:ci-test .
docker run --rm roster:ci-test --version
uid=$(docker run --rm --entrypoint /usr/bin/roster roster:ci-test --version >/dev/null && docker image inspect -f '{{.Config.User}}' roster:ci-test)
[ "$uid" = "nonroot:nonroot" ] || { echo "the image runs as $uid, not nonroot" >&2; exit 1; }
docker run --rm roster:ci-test demo | grep -q "HTML report"
echo "container test: built, runs as nonroot, and its demo ran"
