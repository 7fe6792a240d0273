// Package version holds the build's version, commit and date, set by the
// linker: -X github.com/socketley/socketley/internal/version.version=1.2.3
// (and .commit, .date). Unset values read "dev" and "unknown".
package version

import (
	"runtime/debug"
	"sync"

	"github.com/socketley/socketley/internal/wire"
)

// Set at build time with -ldflags -X; never assigned by code.
var (
	version = "dev"
	commit  = ""
	date    = "unknown"
)

// Version returns this build's version ("dev" unless the linker set it),
// without reading the build info.
func Version() string { return version }

// Info returns this build's version information. Without linker values the
// commit comes from the Go build info (VCS stamping), when present; it is
// read once, at the first call (it costs about 0.3 ms, which a command that
// does not print it should not pay).
func Info() wire.VersionInfo { return info() }

var info = sync.OnceValue(func() wire.VersionInfo {
	c := commit
	if c == "" {
		c = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					c = s.Value[:12]
				}
			}
		}
	}
	return wire.VersionInfo{Version: version, Commit: c, Date: date}
})
