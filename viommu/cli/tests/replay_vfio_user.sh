#!/bin/sh
# Replays a real guest trace into the reference vfio-user server with the
# device's writes re-enacted and dirty tracking turned on before request
# N, then checks the dirty log against an independent reading of the
# trace: the guest-physical pages of every device write (translate with
# flag=2, paired with QEMU's translate_out) whose line comes after request
# N's line.
#
#   replay_vfio_user.sh VIOMMU SERVER TRACE DIALECT N [REPLAY-OPTIONS...]
set -eu
viommu=$1 server=$2 trace=$3 dialect=$4 n=$5
shift 5

dir=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"$server" --socket "$dir/sock" --dialect "$dialect" 2>"$dir/server.log" &
pid=$!
i=0
while [ ! -S "$dir/sock" ]; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "server did not start"; cat "$dir/server.log"; exit 1; }
    sleep 0.05
done

"$viommu" replay --quiet --json --vfio-user "$dir/sock" --dialect "$dialect" --dma \
    --migrate-at "$n" --dirty-out "$dir/dirty" "$@" "$trace" >"$dir/summary.json"
cat "$dir/summary.json"

# Independent count: mawk has no hex arithmetic, so pages are cut as text.
xz -dc "$trace" | awk -v n="$n" '
    / virtio_iommu_(attach|detach|map|unmap|fill_resv_property) / ||
    /:virtio_iommu_(attach|detach|map|unmap|fill_resv_property) / { req++; next }
    /virtio_iommu_translate mr=/ {
        sid = $0; sub(/.* rid=/, "", sid); sub(/ .*/, "", sid)
        pending[sid] = (req > n && $0 ~ /flag=2/)
        next
    }
    /virtio_iommu_translate_out / {
        sid = $0; sub(/.*sid=/, "", sid)
        if (pending[sid]) {
            gpa = $0; sub(/.* -> 0x/, "", gpa); sub(/ .*/, "", gpa)
            page = substr(gpa, 1, length(gpa) - 3)
            sub(/^0+/, "", page)
            print (page == "" ? "0x0" : "0x" page "000")
        }
        pending[sid] = 0
    }' | sort -u >"$dir/expected"
sort -u "$dir/dirty" >"$dir/got"

grep -q '"all_ok":true' "$dir/summary.json" || { echo "FAIL: not every request succeeded"; exit 1; }
grep -q '"dma_failures":0' "$dir/summary.json" || { echo "FAIL: device accesses failed"; exit 1; }
expected=$(wc -l <"$dir/expected")
got=$(wc -l <"$dir/got")
if ! cmp -s "$dir/expected" "$dir/got"; then
    echo "FAIL: dirty log ($got pages) differs from the trace's writes after request $n ($expected pages)"
    diff "$dir/expected" "$dir/got" | head -20
    exit 1
fi
[ "$expected" -gt 0 ] || { echo "FAIL: the trace has no device write after request $n"; exit 1; }
echo "dirty log equals the trace's $expected written pages after request $n"
