#!/bin/sh
# Copyright (C) ngx_ingest developers
# SPDX-License-Identifier: BSD-2-Clause
#
# The flush layer's unit tests (harness_flush.c): a module that nginx
# loads and runs in a single process; it prints TAP and exits.
set -u

here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

mkdir -p "$dir/logs"
printf 'load_module %s;\nevents {}\n' \
    "$here/harness/ngx_ingest_flush_harness.so" > "$dir/nginx.conf"

"${TEST_NGINX_BINARY:-/usr/sbin/nginx}" -p "$dir/" -c "$dir/nginx.conf" \
    -e "$dir/logs/error.log" \
    -g "daemon off; master_process off; pid $dir/logs/nginx.pid;"
rc=$?

if [ "$rc" -ne 0 ]; then
    sed 's/^/# /' "$dir/logs/error.log"
fi

exit "$rc"
