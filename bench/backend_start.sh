#!/bin/sh
# CPU and wall time to start one backend run, over 100 runs (perf stat), for
# the demo mailbox backend and, as the floor, /bin/true and the bench's sh
# status backend. Usage: bench/backend_start.sh [BUILD_DIR]
set -eu
build=${1:-.build/release}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
printf '[\n  {"identity": "alice", "displayName": "Alice Anders", "primarySmtpAddress": "alice@contoso.com", "prohibitSendQuotaBytes": 2147483648, "itemCount": 1284, "totalItemSizeBytes": 734003200}\n]\n' > "$data/mailboxes.json"
export GATEHOUSE_DEMO_DATA="$data" GATEHOUSE_ACTOR=alice
for cmd in "/bin/true" "$(dirname "$0")/backends/status" "$build/gatehouse-demo-mailbox get --identity alice"; do
  printf '%s\n' "$cmd"
  # shellcheck disable=SC2086
  perf stat -r 100 -e task-clock $cmd 2>&1 >/dev/null | grep -E 'task-clock|elapsed'
done
