#!/bin/sh
# checksrc.sh - ban unsafe or ambiguous C library calls in the project's C
# sources (curl's checksrc idea): strcpy, strcat, sprintf, vsprintf, gets,
# atoi, atol, atof, strtok, and rand/srand (sessiond's randomness comes
# only from getrandom).  Prints each hit as FILE:LINE and exits 1 if any.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
pattern='(^|[^_[:alnum:]])(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|atof|strtok|rand|srand)[[:space:]]*\('
hits=$(grep -nE "$pattern" "$root"/lib/*.c "$root"/lib/*.h "$root"/src/*/*.c "$root"/src/*/*.h 2>/dev/null \
       | grep -vE '^\S+:[0-9]+:\s*(/?\*|//)' || true)
if [ -n "$hits" ]; then
    echo "checksrc: banned calls found:"
    echo "$hits"
    exit 1
fi
echo "checksrc: lib/ and src/ are clean"
