package manager

import (
	"io"
	"time"

	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
)

// The legacy (C++ SDK) line format is wire's: wire.ParseRequest parses both
// request forms and wire.LegacyReply writes the legacy replies. What is left
// here is the glue: the tables of package format, at the daemon's clock.

// legacyNow is the clock of the legacy replies' tables (uptimes, "ago"):
// the golden test (legacy_golden_test.go) fixes it.
var legacyNow = time.Now

// textReply renders a result for a line-format client.
func textReply(req wire.Request, res *wire.Result, err error) (byte, []byte) {
	return wire.LegacyReply(req.Cmd, res, err, formatTables{now: legacyNow()})
}

// formatTables renders the legacy tables with package format, as the CLI
// prints them, at now.
type formatTables struct{ now time.Time }

// List writes the ls table.
func (f formatTables) List(w io.Writer, rts []wire.Runtime) error { return format.Table(w, rts, f.now) }

// PS writes the ps table.
func (f formatTables) PS(w io.Writer, rts []wire.Runtime) error { return format.PS(w, rts, f.now) }

// Show writes show's detail views.
func (f formatTables) Show(w io.Writer, rts []wire.Runtime) error { return format.Show(w, rts, f.now) }
