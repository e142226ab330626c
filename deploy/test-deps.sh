#!/usr/bin/env bash
# test-deps.sh installs what the tests need beyond Go and the services: Debian's chromium for
# the web UI's browser test (web/browser_test.go), and gcc with the C library's headers for
# `go test -race` (make test's TESTFLAGS): the race detector needs cgo, and Go turns cgo off
# where it finds no C compiler — a fresh Debian has none — and then stops with "-race requires
# cgo". It is idempotent and returns at once when everything is installed; `apt-get update`
# runs only when something is missing.
#
# Set PAPERPIPE_SKIP_TEST_DEPS=1 to skip it (the browser test then fails unless chromium is
# installed some other way: it never skips itself; and -race needs a C compiler).
set -euo pipefail

if [[ "${PAPERPIPE_SKIP_TEST_DEPS:-}" == 1 ]]; then
	exit 0
fi

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# Fonts make the screenshots legible.
[[ -d /usr/share/fonts/truetype/dejavu ]] || missing+=(fonts-dejavu-core)
# The C compiler Go looks for when CC is unset (with CC set, it is the user's).
[[ -n "${CC:-}" ]] || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[[ -e /usr/include/stdlib.h ]] || missing+=(libc6-dev)

if ((${#missing[@]} == 0)); then
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: missing ${missing[*]}, and apt-get is not available: install them by hand" >&2
	exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "test-deps: missing ${missing[*]}; run this script as root to install them" >&2
		exit 1
	fi
	sudo=(sudo)
fi
echo "test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "test-deps: chromium did not install" >&2; exit 1; }
[[ -n "${CC:-}" ]] || command -v gcc >/dev/null 2>&1 || { echo "test-deps: gcc did not install" >&2; exit 1; }
echo "test-deps: installed ${missing[*]}" >&2
