#!/usr/bin/env python3
"""Mapping traffic to a vfio-user device: this project's coalescing plan
against the QEMU-style plan (one message per power-of-two chunk, each
waited), replayed through `viommu replay --vfio-user` into the reference
server over a real socket, side by side in one run.

Workloads:
  strict-kicks  the real guest trace whose batches are the driver's kicks;
  lazy          a synthetic trace shaped like a lazy (non-strict) driver:
                one MAP per kick, UNMAPs piling up to 256 and riding along
                with the next MAP;
  isolated      the real trace's device accesses through mapped fds
                against isolated mode (every access a DMA_READ/DMA_WRITE
                message checked by the device model).

Prints one JSON object per line: {"bench", "value", "unit", "baseline",
"ratio"}, ratio = baseline / value (above 1: this project sends fewer
messages, waits less, or takes less time).

usage: bench_replay.py VIOMMU SERVER KICKS_TRACE [--requests N]
"""
import json
import os
import subprocess
import sys
import tempfile
import time


def lazy_trace(path, maps, pile=256):
    """A kicks-format trace: attach, then one MAP per kick; every mapping is
    unmapped later, the UNMAPs queued until `pile` are pending and then sent
    with the next MAP in one kick."""
    vq = 0x7f0000001000
    lines = []
    t = 1.0

    def emit(s):
        nonlocal t
        t += 0.000001
        lines.append("1@%.6f:%s" % (t, s))

    def kick(reqs):
        emit("virtio_queue_notify vdev 0x5600000000 n 0 vq 0x%x" % vq)
        for r in reqs:
            emit("virtqueue_pop vq 0x%x elem 0x7f00000020 in_num 1 out_num 1" % vq)
            emit(r)
        emit("virtqueue_flush vq 0x%x count %d" % (vq, len(reqs)))

    kick(["virtio_iommu_attach domain=1 endpoint=24"])
    pending = []
    top = 0xfffff000
    for i in range(maps):
        # The IOVA allocator hands out addresses top-down and reuses freed ones.
        iova = top - (i % 4096) * 0x1000
        phys = 0x100000 + (i * 0x1000) % (0x3ff00000)
        reqs = []
        if len(pending) >= pile:
            reqs += ["virtio_iommu_unmap domain=1 virt_start=0x%x virt_end=0x%x" % (v, v + 0xfff)
                     for v in pending]
            pending = []
        reqs.append("virtio_iommu_map domain=1 virt_start=0x%x virt_end=0x%x phys_start=0x%x flags=3"
                    % (iova, iova + 0xfff, phys))
        kick(reqs)
        pending.append(iova)
    kick(["virtio_iommu_unmap domain=1 virt_start=0x%x virt_end=0x%x" % (v, v + 0xfff)
          for v in pending])
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def start_server(server, sock, dialect):
    p = subprocess.Popen([server, "--socket", sock, "--dialect", dialect],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(sock):
            return p
        time.sleep(0.025)
    p.kill()
    raise RuntimeError("vfio-user-server did not start")


def replay(viommu, sock, trace, dialect, plan, extra=()):
    cmd = [viommu, "replay", "--quiet", "--json", "--vfio-user", sock, "--dialect", dialect,
           "--plan", plan, *extra, trace]
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), res.returncode, res.stderr))
    out = res.stdout
    elapsed = time.monotonic() - t0
    summary = vfio = None
    for line in out.splitlines():
        obj = json.loads(line)
        summary = obj.get("summary", summary)
        vfio = obj.get("vfio_user", vfio)
    return summary, vfio, elapsed


def emit(name, value, unit, baseline=None, higher_is_better=False):
    rec = {"bench": name, "value": round(value, 4), "unit": unit}
    if baseline is not None:
        rec["baseline"] = round(baseline, 4)
        if value:
            rec["ratio"] = round(value / baseline if higher_is_better else baseline / value, 3)
    print(json.dumps(rec), flush=True)


def compare(viommu, server, trace, dialect, name):
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "sock")
        srv = start_server(server, sock, dialect)
        try:
            # Alternate the plans and keep each one's best time.
            best = {}
            for _ in range(2):
                for plan in ("coalesce", "qemu"):
                    s, v, el = replay(viommu, sock, trace, dialect, plan)
                    if not s.get("all_ok"):
                        raise RuntimeError("%s: replay did not succeed" % name)
                    if plan not in best or el < best[plan][2]:
                        best[plan] = (s, v, el)
        finally:
            srv.terminate()
            srv.wait()
    (s, ours, t_ours), (_, qemu, t_qemu) = best["coalesce"], best["qemu"]
    req = s["requests"]
    emit("%s.%s.messages_per_request" % (name, dialect), ours["messages"] / req,
         "messages/request", qemu["messages"] / req)
    emit("%s.%s.waits_per_request" % (name, dialect), ours["waits"] / req, "waits/request",
         qemu["waits"] / req)
    emit("%s.%s.waits_per_batch" % (name, dialect), ours["waits"] / max(ours["batches"], 1),
         "waits/batch")
    emit("%s.%s.bytes_per_request" % (name, dialect), ours["bytes"] / req, "bytes/request",
         qemu["bytes"] / req)
    emit("%s.%s.replay_throughput" % (name, dialect), req / t_ours, "requests/s", req / t_qemu,
         higher_is_better=True)


def isolation_cost(viommu, server, strict):
    """The price of isolated mode: the real trace's device accesses
    re-enacted through mapped fds, then through DMA_READ / DMA_WRITE
    messages checked by the device model's translation."""
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "sock")
        srv = start_server(server, sock, "2021")
        try:
            _, fd, t_fd = replay(viommu, sock, strict, "2021", "coalesce", ("--dma",))
            _, iso, t_iso = replay(viommu, sock, strict, "2021", "coalesce", ("--dma", "--isolated"))
        finally:
            srv.terminate()
            srv.wait()
    accesses = fd["dma_writes"] + fd["dma_reads"]
    emit("isolated.device_access_time", t_iso / accesses * 1e6, "us/access",
         t_fd / accesses * 1e6)
    if iso["dma_failures"] or fd["dma_failures"]:
        raise RuntimeError("device accesses failed")


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    viommu, server, kicks = args[:3]
    strict = os.path.join(os.path.dirname(kicks), "strict.trace.log.xz")
    maps = 20000
    if "--requests" in args:
        maps = int(args[args.index("--requests") + 1])
    compare(viommu, server, kicks, "2021", "strict-kicks")
    with tempfile.TemporaryDirectory() as d:
        lazy = os.path.join(d, "lazy.trace.log")
        lazy_trace(lazy, maps)
        for dialect in ("2021", "0.9.1"):
            compare(viommu, server, lazy, dialect, "lazy")
    if os.path.exists(strict):
        isolation_cost(viommu, server, strict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
