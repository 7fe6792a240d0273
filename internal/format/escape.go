package format

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Escape makes s safe to print on a terminal: every character that is not
// printable is written as an escape in Go syntax, so that text from the
// daemon or from another user's runtime (names, args, env, messages) cannot
// move the cursor, retitle the window, clear the screen or hide text. It
// escapes the C0 controls (\x1b, \a, \n, \t, ...), DEL, the C1 controls
// (\u009b, the one-byte CSI, and the rest), invalid UTF-8 (\xff) and the
// other runes strconv.IsPrint rejects (format characters such as the bidi
// override \u202e). Printable Unicode and the space are kept as they are, and
// so is the backslash: the output is for people, not for parsing.
func Escape[S ~string](s S) string { return escape(string(s), false) }

// EscapeLines is Escape for text of several lines (messages, errors): the
// newline is kept, every other control character is escaped.
func EscapeLines(s string) string { return escape(s, true) }

// escape implements Escape and, with lines, EscapeLines.
func escape(s string, lines bool) string {
	if clean(s, lines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[i])&0xf, 16))
		case r == '\n' && lines, r == ' ', r != '\\' && strconv.IsPrint(r):
			b.WriteString(s[i : i+size])
		case r == '\\':
			b.WriteByte('\\')
		default:
			// QuoteRune escapes as Go does: \a \b \f \n \r \t \v, \xNN
			// below 0x80, \uNNNN or \UNNNNNNNN above.
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// clean reports whether s is printable ASCII (and newlines, with lines):
// nothing to escape, the common case.
func clean(s string, lines bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < ' ' || c > '~') && !(lines && c == '\n') {
			return false
		}
	}
	return true
}
