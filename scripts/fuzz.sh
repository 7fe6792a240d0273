#!/usr/bin/env bash
# Run every fuzz target (func FuzzX in a *_test.go file) for a fixed budget each.
#
# FUZZTIME is an execution count ("20000x", the default) or a duration ("10s").
# A count is the default because Go ≤ 1.26 can fail a duration-bounded run with
# a bare "context deadline exceeded" when the deadline races a busy worker
# (golang/go#75804, fixed in Go 1.27): a flake with no failing input, seen here
# twice in a row on a loaded 2-core machine. A count has no deadline to race.
# Every target runs even when an earlier one fails; a target that finds a
# failing input writes it to testdata/fuzz/ (go test's own report); the exit
# status is non-zero if any target failed.
set -uo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-20000x}
failed=()
# Targets are found in the sources, not with go test -list, which would run
# every package's TestMain (the examples build binaries there).
while IFS=: read -r file _ decl; do
	f=${decl#func }
	f=${f%%(*}
	pkg=$(dirname "$file")
	echo "fuzz $pkg $f ($t)"
	if ! go test -run='^$' -fuzz="^$f\$" -fuzztime="$t" "$pkg"; then
		failed+=("$pkg $f")
	fi
done < <(grep -rn --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*(' . | grep -v '^./bench/' | sort)
if ((${#failed[@]})); then
	printf 'fuzz: FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
