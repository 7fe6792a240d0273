package wire

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the JSON form of r to b, byte for byte what
// json.Marshal(r) gives (TestAppendJSONMatchesMarshal and FuzzAppendJSON
// hold it to that), without encoding/json's reflection: its first use
// builds an encoder for every type a Request reaches, which costs a CLI
// command more than the rest of its request. An add request's AddSpec is
// still encoded by encoding/json.
func (r *Request) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"cmd":`...)
	b = appendString(b, r.Cmd)
	if len(r.Names) > 0 {
		b = append(b, `,"names":[`...)
		for i, n := range r.Names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, n)
		}
		b = append(b, ']')
	}
	if r.Add != nil {
		add, err := json.Marshal(r.Add)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"add":`...)
		b = append(b, add...)
	}
	if a := r.Attach; a != nil {
		b = append(b, `,"attach":{"type":`...)
		b = appendString(b, a.Type)
		b = append(b, `,"name":`...)
		b = appendString(b, a.Name)
		b = append(b, `,"port":`...)
		b = strconv.AppendInt(b, int64(a.Port), 10)
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(a.PID), 10)
		if a.Managed {
			b = append(b, `,"managed":true`...)
		}
		b = append(b, '}')
	}
	if r.Wait {
		b = append(b, `,"wait":true`...)
	}
	if r.Timeout != 0 {
		b = append(b, `,"timeout":`...)
		b = appendString(b, time.Duration(r.Timeout).String())
	}
	if r.Version != "" {
		b = append(b, `,"version":`...)
		b = appendString(b, r.Version)
	}
	if r.Path != "" {
		b = append(b, `,"path":`...)
		b = appendString(b, r.Path)
	}
	return append(b, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json writes it:
// ", \ and control characters escaped (\b \f \n \r \t by name), <, > and &
// as \u00XX, invalid UTF-8 as \ufffd, U+2028 and U+2029 as \u2028, \u2029.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
