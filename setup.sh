#!/bin/sh
# setup.sh - make a fresh Debian 12 machine ready: install the build and test
# dependencies (apt and pinned pip packages), then configure and build.
# Safe to run again: it installs only what is missing and rebuilds only what
# changed.  Usage: ./setup.sh && make demo    or    ./setup.sh && make check
set -eu
cd "$(dirname "$0")"

DEBS="build-essential autoconf automake pkg-config libfuse3-dev fuse3
libzstd-dev libxxhash-dev libopenblas-dev libjansson-dev zstd groff-base
python3 python3-pip python3-numpy python3-torch
libopenmpi-dev openmpi-bin clang"

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

# Python packages, pinned (tests/requirements.txt).  Debian's python3-torch
# serves Debian's /usr/bin/python3, so the whole list goes there; another
# python3 first on PATH (pyenv's, say) gets numpy and safetensors, which the
# other tests use.
REQ=tests/requirements.txt
TORCH_PY=/usr/bin/python3

# pins_missing PY [NAME...]: print the pins of $REQ (only NAMEs', if given)
# that PY lacks.
pins_missing() {
	py=$1
	shift
	"$py" - "$REQ" "$@" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
only = [n.lower() for n in sys.argv[2:]]
for line in open(sys.argv[1]):
    pin = line.split("#")[0].strip()
    name, _, want = pin.partition("==")
    if not pin or only and name.lower() not in only:
        continue
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        print(pin)
EOF
}

pip_install() {
	py=$1
	shift
	echo "setup.sh: installing Python packages for $py"
	set -- --quiet --disable-pip-version-check --root-user-action=ignore "$@"
	"$py" -m pip install "$@" 2>/dev/null ||
		"$py" -m pip install --break-system-packages "$@"
}

[ -z "$(pins_missing "$TORCH_PY")" ] || pip_install "$TORCH_PY" -r "$REQ"
prefix='import sys; print(sys.prefix)'
if [ "$(python3 -c "$prefix")" != "$("$TORCH_PY" -c "$prefix")" ]; then
	pins=$(pins_missing python3 numpy safetensors)
	[ -z "$pins" ] || pip_install python3 $pins
fi

[ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] ||
	./autogen.sh
[ -f Makefile ] || ./configure --enable-werror --with-mpi
make -j"$(nproc)"
