#!/usr/bin/env bash
# Runs the example VMM and checks that it succeeded and said, in order,
# what it did: the driver's requests, the vfio-user device's DMA through
# its mappings, the emulated device's translations and fault reports,
# the state round trip, and the unmap that cuts the device off.
set -uo pipefail
exe=$1
out=$("$exe" 2>&1)
status=$?
printf '%s\n' "$out"
if [ $status -ne 0 ]; then
  echo "check_example: the example exited with status $status"
  exit 1
fi
expected=(
  'PROBE endpoint 1 +-> OK'
  'subtype MSI, \[0x8000000, 0x80fffff\]'
  'ATTACH endpoint 1 to domain 1 +-> OK'
  'kick: 4 requests on the request queue'
  'popped and completed 4 chains from guest RAM'
  'MAP domain 2 IOVA 0x0\+8K -> 0x300000 \(R\) +-> OK'
  'MAP domain 1 over the MSI doorbell +-> RANGE'
  'DMA write of 8192 bytes of 0xab at IOVA 0x10003000 -> DMA_STATUS 0 \(done\)'
  'now holds 0xab'
  'read of IOVA 0x80 -> GPA 0x300080'
  'read "hello from guest RAM"'
  'write of IOVA 0x100 refused by the vIOMMU'
  'fault report: endpoint 2, reason MAPPING, flags 0x102, address 0x100'
  'fault report: endpoint 2, reason MAPPING, flags 0x101, address 0x5000'
  'loaded into a second device: OK'
  'the second device instance got its mappings back: 3 regions live'
  'DMA write of 256 bytes of 0x5a at IOVA 0x10004000 -> DMA_STATUS 0 \(done\)'
  'UNMAP domain 1 IOVA 0x10000000\+32K +-> OK'
  'DMA write of 4096 bytes of 0xcd at IOVA 0x10003000 -> DMA_STATUS [1-9]'
  'after the DETACH kick: [0-9]+ DMA messages sent so far, 0 regions live'
  'every step went as expected'
)
rest=$out
for pat in "${expected[@]}"; do
  line=$(printf '%s\n' "$rest" | grep -nE -m1 -- "$pat" | cut -d: -f1)
  if [ -z "$line" ]; then
    echo "check_example: missing (in order): $pat"
    exit 1
  fi
  rest=$(printf '%s\n' "$rest" | tail -n +"$((line + 1))")
done
if printf '%s\n' "$out" | grep -q FAILED; then
  echo "check_example: a step failed"
  exit 1
fi
echo "check_example: all ${#expected[@]} expected lines found in order"
