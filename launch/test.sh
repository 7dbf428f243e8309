#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds the release binary
# and the tests in one release build, then runs every test (gradient checks,
# the PyTorch fixture, corpus and checkpoint files, training, MPI ranks).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/install-deps.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
swift build -c release --build-tests
swift test -c release --skip-build "$@"
