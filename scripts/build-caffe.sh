#!/usr/bin/env bash
# Build real pycaffe (CPU_ONLY) for one Python interpreter and make that interpreter import it.
#
#   scripts/build-caffe.sh PYTHON
#
# Debian 12 ships no caffe, so we build Debian's bullseye source package against bookworm's
# libraries. The result is cached outside the repo, keyed by Caffe version, Python ABI and NumPy
# major version, so a second run only checks the runtime libraries, rewrites the .pth file and
# imports caffe (seconds). Environment:
#   ARCHC_CACHE_DIR   cache root (default ~/.cache/archc); the build lands in $ARCHC_CACHE_DIR/caffe/<key>
#   ARCHC_BUILD_JOBS  parallel compile jobs (default: number of CPUs)
# A GPU user skips this script and sets ARCHC_CAFFE_ROOT to the python/ directory of their own CUDA
# build of pycaffe instead (see runtime/caffe_env.py).
set -euo pipefail

CAFFE_DEB_VERSION=1.0.0+git20180821.99bd997-8
BUILD_DEPS=(build-essential dpkg-dev cmake
    libboost-filesystem-dev libboost-system-dev libboost-thread-dev libboost-python-dev
    libprotobuf-dev libprotoc-dev protobuf-compiler libgoogle-glog-dev libgflags-dev
    libhdf5-dev libopenblas-dev)
# What the built libraries link against, for machines that reuse a cached build without -dev packages.
RUNTIME_LIBS=(libboost-filesystem1.74.0 libboost-thread1.74.0 libboost-python1.74.0 libgflags2.2
    libgoogle-glog0v6 libhdf5-103-1 libhdf5-hl-100 libopenblas0-pthread libprotobuf32)

say() { printf 'build-caffe: %s\n' "$*" >&2; }
die() { printf 'build-caffe: error: %s\n' "$*" >&2; exit 1; }
source "$(dirname "$0")/apt.sh"

[[ $# -eq 1 ]] || die "usage: $0 PYTHON   (the interpreter that must import caffe, e.g. .venv/bin/python)"
PYTHON=$1
"$PYTHON" -c 'import numpy' 2>/dev/null \
    || die "'$PYTHON' is not a Python with numpy; run 'make setup' first"

# --- where the build lives -------------------------------------------------------------------
read -r PY_TAG NUMPY_MAJOR SITE_PACKAGES PY_EXE < <("$PYTHON" -c '
import sys, sysconfig, numpy
print(f"cp{sys.version_info[0]}{sys.version_info[1]}", numpy.__version__.split(".")[0],
      sysconfig.get_paths()["purelib"], sys.executable)')
CACHE_ROOT=${ARCHC_CACHE_DIR:-$HOME/.cache/archc}/caffe
KEY=$CAFFE_DEB_VERSION-$PY_TAG-numpy$NUMPY_MAJOR
DEST=$CACHE_ROOT/$KEY
PTH_FILE=$SITE_PACKAGES/archc-caffe.pth

# Installs the runtime libraries only when the cached build actually misses one.
ensure_runtime_libs() {
    local missing
    missing=$(ldd "$DEST/python/caffe/_caffe.so" | grep 'not found' || true)
    if [[ -n $missing ]]; then
        say "cached build misses shared libraries:"$'\n'"$missing"
        apt_install "${RUNTIME_LIBS[@]}"
        missing=$(ldd "$DEST/python/caffe/_caffe.so" | grep 'not found' || true)
        [[ -z $missing ]] || die "still missing after install:"$'\n'"$missing"
    fi
}

link_into_python() {
    printf '%s\n' "$DEST/python" >"$PTH_FILE"
    local found
    found=$("$PYTHON" -c 'import caffe, os; print(os.path.dirname(caffe.__file__))' 2>&1) \
        || die "'import caffe' fails with $PYTHON:"$'\n'"$found"$'\n'"(missing Python deps? run 'make setup')"
    [[ $found == "$DEST/python/caffe" ]] \
        || die "$PYTHON imports caffe from $found, not from $DEST/python/caffe; remove the other copy"
    say "ok: $PYTHON imports caffe from $found"
}

# --- the build (only on a cache miss) ------------------------------------------------------------
# The build's log lies outside its work directory, which is removed however the build ends: a
# failed build's log stays for reading, a finished one's goes into the cache with the build.
LOG=$CACHE_ROOT/$KEY.build.log

# A failed step: the end of the log, and where the whole of it is.
fail() {
    grep -m 20 -B2 -A8 'error' "$LOG" >&2 || tail -n 40 "$LOG" >&2
    die "$1 (the lines above are from the log; all of it is kept in $LOG)"
}

# Compiler output into the log, and on the terminal one line per new percentage make reports.
show_progress() {
    local line shown=""
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$LOG"
        if [[ $line =~ ^\[\ *([0-9]+)%\] && ${BASH_REMATCH[1]} != "$shown" ]]; then
            shown=${BASH_REMATCH[1]}
            say "compiling: $shown% ($((SECONDS - started)) s)"
        fi
    done
}

build_into() {
    local work=$1 stage=$2
    apt_install "${BUILD_DEPS[@]}"

    # A private apt configuration for the bullseye source package, so /etc/apt stays untouched.
    local apt_dir=$work/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$work/src"
    echo 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main' \
        >"$apt_dir/sources.list"
    local apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
                    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
                    -o APT::Sandbox::User=root)   # the private dirs are ours, not _apt's
    say "fetching Debian source package caffe=$CAFFE_DEB_VERSION"
    apt-get -qq "${apt_opts[@]}" update >>"$LOG" 2>&1 \
        || fail "apt-get update of the bullseye source index failed"
    (cd "$work/src" && apt-get -qq "${apt_opts[@]}" source "caffe=$CAFFE_DEB_VERSION" >>"$LOG" 2>&1) \
        || fail "apt-get source caffe=$CAFFE_DEB_VERSION failed"
    local src
    src=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'caffe-*' | head -n1)
    [[ -n $src ]] || die "no unpacked caffe source tree in $work/src"

    # protobuf >= 3.21 dropped the two-argument CodedInputStream::SetTotalBytesLimit.
    local io_cpp=$src/src/caffe/util/io.cpp
    grep -q 'SetTotalBytesLimit(kProtoReadBytesLimit, 536870912)' "$io_cpp" \
        || die "protobuf fix: expected SetTotalBytesLimit(kProtoReadBytesLimit, 536870912) in $io_cpp; the source changed, update this script"
    sed -i 's/SetTotalBytesLimit(kProtoReadBytesLimit, 536870912)/SetTotalBytesLimit(kProtoReadBytesLimit)/' "$io_cpp"

    local py_include py_library
    read -r py_include py_library < <("$PYTHON" -c '
import os, sysconfig
lib = os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY"))
print(sysconfig.get_paths()["include"], lib)')
    [[ -f $py_library && $py_library == *.so* ]] \
        || die "pycaffe links against libpython, but $py_library is not a shared library (build Python with --enable-shared)"

    say "configuring (CPU_ONLY, Python $PY_TAG, NumPy $NUMPY_MAJOR)"
    mkdir -p "$work/build"
    # $ORIGIN: _caffe.so finds libcaffe.so next to it wherever the cache directory ends up.
    (cd "$work/build" && cmake "$src" -DCMAKE_BUILD_TYPE=Release -DCPU_ONLY=ON -DBLAS=Open \
        -Dpython_version=3 -DUSE_LEVELDB=OFF -DUSE_LMDB=OFF -DUSE_OPENCV=OFF -DUSE_NCCL=OFF \
        -DBUILD_docs=OFF -DBUILD_matlab=OFF -DCMAKE_BUILD_RPATH='$ORIGIN' \
        -DPYTHON_EXECUTABLE="$PY_EXE" -DPYTHON_INCLUDE_DIR="$py_include" \
        -DPYTHON_LIBRARY="$py_library" >>"$LOG" 2>&1) \
        || fail "cmake failed"

    local jobs=${ARCHC_BUILD_JOBS:-$(nproc)}
    say "compiling with $jobs jobs (about 5 minutes on 2 cores; log: $LOG)"
    (cd "$work/build" && make -j"$jobs" pycaffe 2>&1) | show_progress \
        || fail "compiling caffe failed"

    # cp -L: python/caffe/_caffe.so is a symlink into the build tree.
    mkdir -p "$stage/python"
    cp -rL "$src/python/caffe" "$stage/python/caffe"
    cp -L "$work/build/lib/"libcaffe.so.* "$stage/python/caffe/"
    [[ -f $stage/python/caffe/proto/caffe_pb2.py ]] || die "build produced no caffe_pb2.py"
    find "$stage/python" -name '__pycache__' -prune -exec rm -rf {} +
    printf 'caffe_deb_version=%s\npython=%s\nnumpy_major=%s\nbuilt=%s\n' \
        "$CAFFE_DEB_VERSION" "$PY_TAG" "$NUMPY_MAJOR" "$(date -u +%FT%TZ)" >"$stage/BUILD-INFO"
}

mkdir -p "$CACHE_ROOT"
# One build per cache root at a time; a second caller waits and then takes the cache hit.
exec {lock_fd}>"$CACHE_ROOT/.lock"
flock "$lock_fd"

if [[ -f $DEST/BUILD-INFO ]]; then
    say "cache hit: $DEST"
else
    say "cache miss: building $KEY into $DEST (log: $LOG)"
    started=$SECONDS
    WORK=$(mktemp -d "$CACHE_ROOT/.build-XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
    : >"$LOG"
    build_into "$WORK" "$WORK/stage"
    mv "$LOG" "$WORK/stage/build.log"
    # Rename within one file system is atomic: an interrupted build never leaves a half cache.
    mv "$WORK/stage" "$DEST"
    say "built in $((SECONDS - started)) s"
fi
ensure_runtime_libs
link_into_python
