#!/bin/sh
# Runs `viommu trace` and `viommu --trace` as a user would.
#
#   trace_cli.sh summarize VIOMMU TRACE   the summary of a QEMU trace equals
#                                         what xz, grep and awk count in the
#                                         file's lines, independently of the
#                                         command's parser and device model
#   trace_cli.sh roundtrip VIOMMU TRACE   QEMU -> JSON Lines -> QEMU keeps
#                                         every request line, and replaying
#                                         the result gives the same summary;
#                                         the JSON Lines compressed with xz
#                                         summarize and convert the same
#   trace_cli.sh global VIOMMU TRACE      --trace=jsonl=PATH works before any
#                                         command and records every request
set -eu

mode=$1
viommu=$2
trace=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL: $*"
    exit 1
}

# The request lines of a QEMU log, without the TID@SECONDS: prefix.
requests='virtio_iommu_(attach|detach|map|unmap|fill_resv_property) '
request_lines() {
    grep -E "^([0-9]+@[0-9.]+:)?$requests" | sed -E 's/^[0-9]+@[0-9.]+://'
}

# Expects the JSON text $2 to appear in file $1.
expect() {
    grep -qF -- "$2" "$1" || fail "expected $2 in $(cat "$1")"
    echo "ok: $2"
}

case $mode in
summarize)
    "$viommu" trace summarize --json "$trace" >"$tmp/sum.json" 2>"$tmp/err" ||
        { cat "$tmp/err"; fail "viommu trace summarize failed"; }
    "$viommu" trace summarize "$trace" >"$tmp/sum.txt" || fail "the text summary failed"
    grep -q '^IOVA reuse: ' "$tmp/sum.txt" || fail "the text summary has no IOVA reuse line"
    xz -dc "$trace" | request_lines >"$tmp/req"
    total=$(wc -l <"$tmp/req")
    [ "$total" -gt 0 ] || fail "no request in the trace"
    # Every request of these traces succeeds (replay_cli.sh checks it).
    expect "$tmp/sum.json" "\"requests\":$total,"
    expect "$tmp/sum.json" "\"statuses\":{\"OK\":$total,"
    for t in attach detach map unmap; do
        n=$(grep -c "^virtio_iommu_$t " "$tmp/req" || true)
        T=$(echo "$t" | tr a-z A-Z)
        expect "$tmp/sum.json" "\"$T\":$n"
    done
    # One fill_resv_property line per PROBE: one property per endpoint.
    n=$(grep -c '^virtio_iommu_fill_resv_property ' "$tmp/req" || true)
    expect "$tmp/sum.json" "\"PROBE\":$n"

    # The rest is simulated in awk from the request lines: sizes as
    # power-of-two buckets, starts seen per domain, live mappings per
    # domain (a domain loses its mappings with its last endpoint).
    awk '
    # Keys are the addresses as printed: awk would turn large numbers
    # into "%.6g" strings, which collide.
    function key(s) { sub(/^[a-z_]+=/, "", s); return s }
    function val(s) { return key(s) + 0 }
    function bucket(size,  b) { b = 0; while (size >= 2) { size /= 2; b++ } return b }
    $1 == "virtio_iommu_attach" {
        d = val($2); e = val($3); dom[d] = 1
        if ((e in epdom) && epdom[e] == d) next
        if (e in epdom) leave(e)
        epdom[e] = d; eps[d]++
        next
    }
    $1 == "virtio_iommu_detach" { leave(val($3)); next }
    $1 == "virtio_iommu_map" {
        d = val($2); k = key($3); s = val($3); e = val($4); dom[d] = 1
        hist[bucket(e - s + 1)]++
        maps++; dmaps[d]++
        if ((d SUBSEP k) in seen) reuse++
        seen[d, k] = 1
        live[d, k] = e; nlive[d]++
        if (nlive[d] > maxlive[d]) maxlive[d] = nlive[d]
        next
    }
    $1 == "virtio_iommu_unmap" {
        d = val($2); k = key($3); s = val($3); e = val($4)
        unmaps++; dunmaps[d]++
        covered = 0
        # The common case: one mapping from s to e; anything else scans.
        if (((d SUBSEP k) in live) && live[d, k] == e) { delete live[d, k]; covered = 1 }
        else covered = scan(d, s, e)
        nlive[d] -= covered
        if (covered == 0) none++
        if (covered > 1) several++
        if (covered > maxcov) maxcov = covered
    }
    function scan(d, s, e,   k, p, n) {
        n = 0
        for (k in live) {
            split(k, p, SUBSEP)
            if (p[1] == d && p[2] + 0 >= s && live[k] <= e) { delete live[k]; n++ }
        }
        return n
    }
    function leave(e,   d, k, p) {
        d = epdom[e]; delete epdom[e]
        if (--eps[d] > 0) return
        for (k in live) { split(k, p, SUBSEP); if (p[1] == d) delete live[k] }
        nlive[d] = 0
    }
    END {
        for (b = 0; b < 64; b++) if (b in hist) printf "hist %.0f %d\n", 2 ^ b, hist[b]
        printf "reuse %d %d\n", maps, reuse
        printf "unmaps %d %d %d %d\n", unmaps, none, several, maxcov
        for (d in dom) printf "domain %d %d %d %d %d\n", d, dmaps[d], dunmaps[d], maxlive[d], nlive[d]
    }' "$tmp/req" >"$tmp/expected"

    hist=$(awk '$1 == "hist" { printf "%s\"%s\":%s", n++ ? "," : "", $2, $3 }' "$tmp/expected")
    expect "$tmp/sum.json" "\"map_sizes\":{$hist}"
    reuse=$(awk '$1 == "reuse" { printf "\"iova_reuse\":{\"maps\":%s,\"reusing\":%s,", $2, $3 }' \
        "$tmp/expected")
    expect "$tmp/sum.json" "$reuse"
    unmaps=$(awk '$1 == "unmaps" {
        printf "\"unmaps\":{\"ok\":%s,\"covering_none\":%s,\"covering_several\":%s,\"max_covered\":%s}",
            $2, $3, $4, $5 }' "$tmp/expected")
    expect "$tmp/sum.json" "$unmaps"
    domains=$(grep '^domain ' "$tmp/expected" | sort -k2,2n | awk '{
        printf "%s{\"domain\":%s,\"maps\":%s,\"unmaps\":%s,\"max_live\":%s,\"live_at_end\":%s}",
            n++ ? "," : "", $2, $3, $4, $5, $6 }')
    expect "$tmp/sum.json" "\"domains\":[$domains]"
    # Batches are known only from queue events.
    if xz -dc "$trace" | grep -qE '^([0-9]+@[0-9.]+:)?virtio_queue_notify '; then
        grep -q '"batches":{"count":' "$tmp/sum.json" || fail "batches not reported"
    else
        expect "$tmp/sum.json" '"batches":null'
    fi
    ;;
roundtrip)
    "$viommu" trace convert "$trace" "$tmp/t.jsonl" || fail "convert to JSON Lines failed"
    "$viommu" trace convert --to qemu "$tmp/t.jsonl" "$tmp/t.log" || fail "convert to QEMU failed"
    xz -dc "$trace" | request_lines >"$tmp/a"
    request_lines <"$tmp/t.log" >"$tmp/b"
    echo "request lines: $(wc -l <"$tmp/a") in the trace, $(wc -l <"$tmp/b") after the round trip"
    cmp -s "$tmp/a" "$tmp/b" || fail "the round trip changed request lines: $(diff "$tmp/a" "$tmp/b" | head -5)"
    # Replay summaries agree but for what QEMU's log alone holds: its
    # line count and the device accesses (translate lines).
    strip() { sed -E 's/"lines":[0-9]+,//; s/"translations":[0-9]+,//'; }
    "$viommu" replay --quiet --json "$trace" | tail -n 1 | strip >"$tmp/s1"
    "$viommu" replay --quiet --json "$tmp/t.log" | tail -n 1 | strip >"$tmp/s2"
    cat "$tmp/s1"
    cmp -s "$tmp/s1" "$tmp/s2" || fail "replay summaries differ: $(cat "$tmp/s2")"
    # A converted file is already in the other format.
    if "$viommu" trace convert --to jsonl "$tmp/t.jsonl" "$tmp/x" 2>/dev/null; then
        fail "converting JSON Lines to JSON Lines succeeded"
    fi
    # xz-compressed JSON Lines read as the plain file does (a prefix of
    # the file, so compressing it stays quick).
    head -n 50000 "$tmp/t.jsonl" >"$tmp/p.jsonl"
    xz -0 -kc "$tmp/p.jsonl" >"$tmp/p.jsonl.xz"
    "$viommu" trace summarize --json "$tmp/p.jsonl" >"$tmp/p.json" || fail "summarize failed"
    "$viommu" trace summarize --json "$tmp/p.jsonl.xz" >"$tmp/x.json" ||
        fail "summarize of the xz-compressed JSON Lines failed"
    cmp -s "$tmp/p.json" "$tmp/x.json" || fail "xz summary differs: $(cat "$tmp/x.json")"
    echo "ok: the xz-compressed JSON Lines summarize as the plain file"
    "$viommu" trace convert "$tmp/p.jsonl" "$tmp/p.log" || fail "convert of the prefix failed"
    "$viommu" trace convert "$tmp/p.jsonl.xz" "$tmp/x.log" ||
        fail "convert of the xz-compressed JSON Lines failed"
    cmp -s "$tmp/p.log" "$tmp/x.log" || fail "xz conversion differs from the plain one"
    echo "ok: the xz-compressed JSON Lines convert as the plain file"
    ;;
global)
    "$viommu" --trace="jsonl=$tmp/run.jsonl" replay --quiet "$trace" >/dev/null ||
        fail "viommu --trace=jsonl=... replay failed"
    total=$(xz -dc "$trace" | request_lines | wc -l)
    done=$(grep -c '"event":"request_done"' "$tmp/run.jsonl" || true)
    echo "requests: $total in the trace, $done request_done events"
    [ "$done" -eq "$total" ] || fail "$done request_done events for $total requests"
    "$viommu" trace summarize --json "$tmp/run.jsonl" >"$tmp/sum.json" || fail "summarize failed"
    expect "$tmp/sum.json" "\"requests\":$total,"
    "$viommu" --trace=text=- --version | grep -q '^viommu ' || fail "--trace before --version"
    if "$viommu" --trace=bogus --version 2>"$tmp/err"; then
        fail "an unknown trace output was accepted"
    fi
    grep -q 'unknown trace output' "$tmp/err" || fail "no message for a bad --trace"
    ;;
vfio-user)
    # trace_cli.sh vfio-user VIOMMU TRACE SERVER: the mappings forwarded to
    # the reference server; the trace's vfio-user traffic is summarized.
    server=$4
    "$server" --socket "$tmp/sock" --dialect 2021 2>"$tmp/server.log" &
    pid=$!
    i=0
    while [ ! -S "$tmp/sock" ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && { cat "$tmp/server.log"; kill $pid; fail "server did not start"; }
        sleep 0.1
    done
    "$viommu" --trace="jsonl=$tmp/run.jsonl" replay --quiet --json --vfio-user "$tmp/sock" \
        "$trace" >"$tmp/replay.json" || { kill $pid; fail "replay with --vfio-user failed"; }
    kill $pid
    "$viommu" trace summarize --json "$tmp/run.jsonl" >"$tmp/sum.json" || fail "summarize failed"
    sends=$(grep -c '"event":"vfio_user_send"' "$tmp/run.jsonl")
    replies=$(grep -c '"event":"vfio_user_reply"' "$tmp/run.jsonl")
    waits=$(grep -c '"event":"vfio_user_wait"' "$tmp/run.jsonl")
    echo "vfio-user: $sends messages, $replies replies, $waits waits"
    [ "$sends" -gt 0 ] || fail "no vfio-user message traced"
    expect "$tmp/sum.json" "\"vfio_user\":{\"messages\":$sends,\"replies\":$replies,\"waits\":$waits,"
    ;;
*)
    fail "unknown mode $mode"
    ;;
esac
echo "PASS"
