#!/bin/sh
# Runs the built `viommu` command as a user would.
#
#   replay_cli.sh trace VIOMMU TRACE   every request of TRACE replays to OK;
#                                      the requests are counted here with
#                                      xz and grep, independently of the
#                                      command's own parser
#   replay_cli.sh help VIOMMU          --help works on every command
#   replay_cli.sh malformed VIOMMU     a malformed line is reported with its
#                                      number, and --keep-going goes on
set -eu

mode=$1
viommu=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL: $*"
    exit 1
}

case $mode in
trace)
    trace=$3
    status=0
    "$viommu" replay --json --check-translations "$trace" >"$tmp/out.json" 2>"$tmp/err" ||
        status=$?
    [ "$status" -eq 0 ] || { cat "$tmp/err"; fail "viommu replay exited with status $status"; }
    # A PROBE shows as one fill_resv_property line per property; these
    # traces have one property per endpoint, so one line per PROBE.
    expected=$(xz -dc "$trace" |
        grep -cE '^([0-9]+@[0-9.]+:)?virtio_iommu_(attach|detach|map|unmap|fill_resv_property) ')
    requests=$(grep -c '"seq":' "$tmp/out.json")
    ok=$(grep '"seq":' "$tmp/out.json" | grep -c '"status":"OK"')
    summary=$(tail -n 1 "$tmp/out.json")
    echo "trace requests (xz | grep): $expected"
    echo "replayed requests: $requests, OK: $ok"
    echo "summary: $summary"
    [ "$expected" -gt 0 ] || fail "no request found in the trace"
    [ "$requests" -eq "$expected" ] || fail "replayed $requests requests, the trace has $expected"
    [ "$ok" -eq "$expected" ] || fail "only $ok of $expected requests are OK"
    case $summary in
    *'"all_ok":true'*) ;;
    *) fail "the summary does not say all_ok" ;;
    esac
    # Every device access (flag 1, 2 or 3) was checked against QEMU's result.
    accesses=$(xz -dc "$trace" | grep -cE 'virtio_iommu_translate .* flag=[123]$' || true)
    echo "device accesses (xz | grep): $accesses"
    case $summary in
    *'"translate_check":{"accesses":'"$accesses"',"'*'"mismatches":0,'*) ;;
    *) fail "not every device access was checked, or one differs from QEMU" ;;
    esac
    ;;
help)
    "$viommu" --help >"$tmp/help" || fail "viommu --help failed"
    grep -q '^Usage: viommu COMMAND' "$tmp/help" || fail "viommu --help prints no usage"
    grep -q 'replay' "$tmp/help" || fail "viommu --help does not list replay"
    "$viommu" replay --help >"$tmp/rhelp" || fail "viommu replay --help failed"
    for opt in --page-size-mask --endpoints --resv --input-range --domain-range --json \
        --keep-going; do
        grep -q -- "$opt" "$tmp/rhelp" || fail "viommu replay --help does not list $opt"
    done
    "$viommu" help replay >"$tmp/rhelp2" || fail "viommu help replay failed"
    cmp -s "$tmp/rhelp" "$tmp/rhelp2" || fail "viommu help replay differs from replay --help"
    status=0
    "$viommu" nosuchcommand >/dev/null 2>&1 || status=$?
    [ "$status" -eq 2 ] || fail "an unknown command exits with $status, not 2"
    status=0
    "$viommu" replay --page-size-mask 0 - </dev/null >/dev/null 2>&1 || status=$?
    [ "$status" -eq 2 ] || fail "a zero page size mask exits with $status, not 2"
    echo "help and usage errors behave"
    ;;
malformed)
    cat >"$tmp/bad.log" <<'LOG'
1@1.0:virtio_iommu_attach domain=1 endpoint=8
1@1.1:virtio_iommu_map domain=1 virt_start=0x1000 virt_end=oops phys_start=0x0 flags=1
1@1.2:virtio_iommu_map domain=1 virt_start=0x1000 virt_end=0x1fff phys_start=0x0 flags=1
LOG
    status=0
    "$viommu" replay "$tmp/bad.log" >"$tmp/out" 2>"$tmp/err" || status=$?
    [ "$status" -eq 2 ] || fail "a malformed line exits with $status, not 2"
    grep -q 'line 2: virtio_iommu_map' "$tmp/err" || { cat "$tmp/err"; fail "no line number"; }
    grep -q '(line 3)' "$tmp/out" && fail "the replay went on past the malformed line"
    status=0
    "$viommu" replay --keep-going --json - <"$tmp/bad.log" >"$tmp/out" 2>"$tmp/err" || status=$?
    [ "$status" -eq 2 ] || fail "--keep-going with a malformed line exits with $status, not 2"
    grep -q 'line 2:' "$tmp/err" || fail "--keep-going does not report the line"
    grep -q '"type":"MAP".*"status":"OK"' "$tmp/out" || fail "--keep-going did not go on"
    grep -q '"malformed_lines":1' "$tmp/out" || fail "the summary does not count the line"
    echo "malformed lines are reported with their number"
    ;;
*)
    fail "unknown mode $mode"
    ;;
esac
