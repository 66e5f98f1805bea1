#!/usr/bin/env bash
# Installs the build into a temporary DESTDIR, then builds a program
# against the installed headers with nothing but pkg-config's flags,
# runs it, and checks the libraries' versioned sonames.
#
#   check_install.sh BUILD_DIR CC SOURCE [EXTRA_CFLAGS...]
set -euo pipefail
build=$1 cc=$2 src=$3
shift 3
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >/dev/null

pcdir=$(dirname "$(find "$dest" -name viommu.pc -print -quit)")
[ -f "$pcdir/viommu.pc" ] || { echo "check_install: viommu.pc was not installed"; exit 1; }
for pc in viommu viommu-shared vfio-user vfio-user-server; do
  [ -f "$pcdir/$pc.pc" ] || { echo "check_install: $pc.pc was not installed"; exit 1; }
done
# The files name the configured prefix; point the copies in DESTDIR at
# where they really are (system packages such as glib stay as they are).
for pc in viommu viommu-shared vfio-user vfio-user-server; do
  sed -i "s|^prefix=|prefix=$dest|" "$pcdir/$pc.pc"
done
export PKG_CONFIG_PATH=$pcdir
flags=$(pkg-config --cflags --libs viommu vfio-user vfio-user-server)
echo "pkg-config --cflags --libs viommu vfio-user vfio-user-server: $flags"

# Strict flags: the public headers must compile cleanly in a user's C11 build.
# shellcheck disable=SC2086
"$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Werror "$@" "$src" -o "$dest/api_user" \
  $flags
libdir=$(dirname "$(find "$dest" -name 'libviommu.so' -print -quit)")
LD_LIBRARY_PATH=$libdir "$dest/api_user"

# Versioned sonames: libX.so -> libX.so.0 -> libX.so.0.1.0, SONAME libX.so.0.
for lib in viommu viommu-shared vfio-user vfio-user-server; do
  so=$libdir/lib$lib.so
  [ -L "$so" ] || { echo "check_install: $so is not a symlink"; exit 1; }
  real=$(readlink -f "$so")
  soname=$(readelf -d "$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  case "$soname" in
    "lib$lib.so."[0-9]*) ;;
    *) echo "check_install: lib$lib has SONAME '$soname', not lib$lib.so.N"; exit 1 ;;
  esac
  [ -e "$libdir/$soname" ] || { echo "check_install: $soname is not installed"; exit 1; }
  echo "lib$lib: SONAME $soname -> $(basename "$real")"
done
echo "check_install: OK"
