#!/bin/sh
# debian/copyright (machine-readable), from the source's LICENSE: the
# license is stated once, there.  Its short name is the SPDX identifier
# that the sources' headers carry (SPDX-License-Identifier:), its holders
# LICENSE's "Copyright" lines.  Run from the source's top directory by
# debian/rules.
set -eu

id=$(grep -rhom1 'SPDX-License-Identifier: *[A-Za-z0-9.+-]*' \
         config ngx_ingest_module 2>/dev/null \
     | head -1 | sed 's/.*: *//')
holders=$(grep -i '^ *copyright\b' LICENSE 2>/dev/null \
          | sed -e 's/^ *copyright *\((c)\|©\)\? *//I' -e '2,$s/^/ /' \
          || true)

cat <<_EOF_
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ngx_ingest

Files: *
Copyright: ${holders:-the ngx_ingest authors}
_EOF_

if [ -f LICENSE ]; then
    echo "License: ${id:-see-below}"
    # the text, as a continuation: blank lines become " ."
    sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' LICENSE
else
    echo "License: not-stated"
    echo " The source has no LICENSE file: its terms are not stated yet."
fi
