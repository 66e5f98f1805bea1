#!/usr/bin/env python3
# Checks that a shared library exports exactly its public header's API:
# every defined dynamic symbol (nm -D --defined-only) is declared in the
# header with the component's API macro, and every such declaration is
# exported.
#
#   check_exports.py CC LIBRARY HEADER BUILDING_MACRO [-I DIR ...]
#
# The header is run through the preprocessor with BUILDING_MACRO defined,
# so the API macro becomes the visibility attribute it is in the build;
# each declaration carrying that attribute names one exported symbol.
import re
import subprocess
import sys

# Defined by the linker in every shared object, not by the code.
LINKER_SYMBOLS = {"_init", "_fini", "_edata", "_end", "__bss_start"}
# Added by the sanitizer and coverage runtimes of instrumented builds.
INSTRUMENTATION_PREFIXES = ("__odr_asan", "__asan", "__ubsan", "__sancov", "__start_", "__stop_")

ATTR = '__attribute__((visibility("default")))'


def declared(cc, header, macro, incs):
    text = subprocess.run(
        [cc, "-E", "-P", "-D_GNU_SOURCE", "-D" + macro] + incs + ["-x", "c", header],
        check=True, capture_output=True, text=True).stdout
    text = re.sub(r"\s+", " ", text).replace(ATTR, " @API@ ")
    names = set()
    for decl in re.findall(r"@API@([^;]*);", text):
        decl = re.sub(r"__attribute__\s*\(\(.*?\)\)", " ", decl)
        m = re.match(r"[^(]*?([A-Za-z_]\w*)\s*\(", decl)
        if m:
            names.add(m.group(1))  # a function: the name before its parameters
        else:
            names.add(re.findall(r"[A-Za-z_]\w*", decl)[-1])  # a variable
    return names


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True,
                         text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        name = parts[2].split("@")[0]
        if name in LINKER_SYMBOLS or name.startswith(INSTRUMENTATION_PREFIXES):
            continue
        names.add(name)
    return names


def main():
    cc, lib, header, macro = sys.argv[1:5]
    incs = sys.argv[5:]
    api = declared(cc, header, macro, incs)
    exp = exported(lib)
    extra = sorted(exp - api)
    missing = sorted(api - exp)
    print(f"{lib}: {len(exp)} symbols exported, {len(api)} declared in {header}")
    for name in extra:
        print(f"  exported but not in the public header: {name}")
    for name in missing:
        print(f"  declared in the public header but not exported: {name}")
    if not api:
        print("  the header declares no API: the check would prove nothing")
        return 1
    return 1 if extra or missing else 0


if __name__ == "__main__":
    sys.exit(main())
