#!/usr/bin/env bash
# Lint: gofmt, go mod tidy (no diff), go vet and staticcheck (pinned, fetched through the module
# proxy); go vet of bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=$(gofmt -l . | grep -v '^bench/' || true)
if [[ -n $fmt ]]; then echo "gofmt would change:"; echo "$fmt"; exit 1; fi
# go.mod and go.sum as go mod tidy leaves them (direct vs indirect requirements included).
if ! tidy=$(go mod tidy -diff 2>&1); then echo "go mod tidy would change go.mod/go.sum:"; echo "$tidy"; exit 1; fi
# Every skip goes through internal/testenv (Skip, Skipf, RequireRoot, RequireSystemd), so that each
# says why in one form and CI's skip list shows it.
skips=$(grep -rnE '\b(t|b|tb|e\.t)\.Skip(f|Now)?\(' --include='*_test.go' . | grep -v '^./bench/' || true)
if [[ -n $skips ]]; then echo "skip through internal/testenv (testenv.Skip/Skipf), not directly:"; echo "$skips"; exit 1; fi
go vet ./...
go vet -tags integration ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./... 
# bench/ is a module of its own (gnet, PM2 harness): vet it so it keeps building.
go -C bench vet ./...
