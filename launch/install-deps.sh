#!/usr/bin/env bash
# Installs the Debian packages SwiftGPT needs, when they are missing:
# OpenBLAS, Open MPI (library and mpirun), HDF5 (library and h5dump), pkg-config.
# Swift itself (6.0 or newer) must already be on PATH.
#
#   launch/install-deps.sh           what building and testing need
#   launch/install-deps.sh --slurm   also Slurm and munge, for the Slurm test cluster
#                                    (launch/slurmcluster.sh); their daemons are not started
#   launch/install-deps.sh --blis    also BLIS (libblis-dev), the other CBLAS a build can use:
#                                    SWIFTGPT_BLAS=blis swift build -c release --build-path .build-blis
set -euo pipefail

packages=(libopenblas-dev libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools pkg-config iproute2)
case ${1:-} in
    "") ;;
    --slurm) packages+=(slurmctld slurmd slurm-client munge) ;;
    --blis) packages+=(libblis-dev) ;;
    *) echo "error: unknown option '$1'; use: launch/install-deps.sh [--slurm | --blis]" >&2; exit 1 ;;
esac
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    # RUNLEVEL=1: Debian's maintainer scripts install the daemons without starting them.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "error: swift is not on PATH; install Swift 6 from swift.org" >&2; exit 1; }
for pc in openblas ompi-c hdf5; do
    pkg-config --exists "$pc" || { echo "error: pkg-config cannot find $pc after installing the packages" >&2; exit 1; }
done
if [[ ${1:-} == --blis ]]; then  # Debian ships no blis.pc: check the header and library themselves
    echo '#include <blis.h>' | cc -fsyntax-only -x c - 2>/dev/null \
        || { echo "error: blis.h is not on the compiler's path after installing libblis-dev" >&2; exit 1; }
fi
echo "dependencies: ok ($(swift --version 2>&1 | head -1))"
