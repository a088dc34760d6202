#!/bin/sh
# setup.sh - make a fresh Debian 12 machine ready: install the build and test
# dependencies (apt and pinned pip packages), then configure and build.
# Safe to run again: it installs only what is missing and rebuilds only what
# changed.  Usage: ./setup.sh && make demo    or    ./setup.sh && make check
set -eu
cd "$(dirname "$0")"

DEBS="build-essential autoconf automake pkg-config libfuse3-dev fuse3
libzstd-dev libxxhash-dev libopenblas-dev libjansson-dev zstd groff-base
python3 python3-pip"

missing=
for p in $DEBS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup.sh: installing Debian packages:$missing"
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends $missing
fi

# Python packages the tests and benchmarks use, pinned (tests/requirements.txt).
if ! python3 -c 'import numpy, safetensors' 2>/dev/null; then
	echo "setup.sh: installing Python packages from tests/requirements.txt"
	python3 -m pip install --quiet --disable-pip-version-check \
		-r tests/requirements.txt ||
		python3 -m pip install --quiet --disable-pip-version-check \
			--break-system-packages -r tests/requirements.txt
fi

[ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] ||
	./autogen.sh
[ -f Makefile ] || ./configure --enable-werror
make -j"$(nproc)"
