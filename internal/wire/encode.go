package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the JSON form of r to b, byte for byte what
// json.Marshal(r) gives (TestAppendJSONMatchesMarshal and FuzzAppendJSON
// hold it to that), without encoding/json's reflection: its first use
// builds an encoder for every type a Request reaches, which costs a CLI
// command more than the rest of its request. An add request's AddSpec and
// a set request's SetSpec are still encoded by encoding/json.
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
	if r.Set != nil {
		set, err := json.Marshal(r.Set)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"set":`...)
		b = append(b, set...)
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
	if r.Follow {
		b = append(b, `,"follow":true`...)
	}
	if !r.Since.IsZero() {
		v, err := r.Since.MarshalJSON()
		if err != nil {
			return nil, err
		}
		b = append(b, `,"since":`...)
		b = append(b, v...)
	}
	if r.Mine {
		b = append(b, `,"mine":true`...)
	}
	if r.Check {
		b = append(b, `,"check":true`...)
	}
	if r.Replace {
		b = append(b, `,"replace":true`...)
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

// AppendJSON appends the JSON form of res to b, byte for byte what
// json.Marshal(res) gives (held to that by TestResultAppendJSON and
// FuzzResultAppendJSON), without reflection: ls of 1,000 runtimes is
// mostly this encoding.
func (res *Result) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	o := obj{b: b}
	o.str("error", res.Error, true)
	o.str("class", string(res.Class), true)
	if len(res.Runtimes) > 0 {
		o.key("runtimes")
		o.b = append(o.b, '[')
		for i := range res.Runtimes {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			var err error
			if o.b, err = res.Runtimes[i].AppendJSON(o.b); err != nil {
				return nil, err
			}
		}
		o.b = append(o.b, ']')
	}
	o.str("message", res.Message, true)
	if v := res.Version; v != nil {
		o.key("version")
		o.b = append(o.b, '{')
		vo := obj{b: o.b}
		vo.str("version", v.Version, false)
		vo.str("commit", v.Commit, false)
		vo.str("date", v.Date, false)
		o.b = append(vo.b, '}')
	}
	// Events and why are rare replies: encoding/json is fast enough.
	if len(res.Events) > 0 {
		v, err := json.Marshal(res.Events)
		if err != nil {
			return nil, err
		}
		o.key("events")
		o.b = append(o.b, v...)
	}
	if res.Why != nil {
		v, err := json.Marshal(res.Why)
		if err != nil {
			return nil, err
		}
		o.key("why")
		o.b = append(o.b, v...)
	}
	return append(o.b, '}'), nil
}

// AppendJSON appends the JSON form of r to b, as json.Marshal(r) writes it.
func (r *Runtime) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	o := obj{b: b}
	o.str("name", r.Name, false)
	o.str("unit", r.Unit, false)
	o.boolean("managed", r.Managed, false)
	o.boolean("orphan", r.Orphan, true)
	o.str("status", string(r.Status), false)
	o.str("mode", string(r.Mode), true)
	o.str("desired", r.Desired, true)
	o.str("reason", r.Reason, true)
	o.str("failed", r.Failed, true)
	o.str("failed_class", string(r.FailedClass), true)
	o.boolean("unchanged", r.Unchanged, true)
	o.str("type", r.Type, true)
	o.integer("port", r.Port, true)
	o.strs("listen", r.Listen)
	o.integer("pid", r.PID, true)
	o.integer("restarts", r.Restarts, false)
	o.integer("health_restarts", r.HealthRestarts, true)
	o.integer("failures", r.Failures, true)
	o.time("next_restart", r.NextRestart)
	o.time("since", r.Since)
	o.str("last_exit", r.LastExit, true)
	o.integer("attach_pid", r.AttachPID, true)
	o.time("attached_at", r.AttachedAt)
	o.str("active_state", r.ActiveState, true)
	o.str("sub_state", r.SubState, true)
	o.str("path", r.Path, true)
	o.strs("args", r.Args)
	o.strs("env", r.Env)
	o.str("workdir", r.WorkDir, true)
	o.str("restart", string(r.Restart), true)
	o.duration("restart_sec", r.RestartSec)
	o.duration("restart_max_delay", r.RestartMaxDelay)
	o.duration("restart_reset", r.RestartReset)
	o.integer("max_restarts", r.MaxRestarts, true)
	o.duration("stop_timeout", r.StopTimeout)
	o.str("user", r.User, true)
	o.integer("owner_uid", r.OwnerUID, false)
	o.time("created", r.Created)
	o.boolean("redacted", r.Redacted, true)
	if len(r.Credentials) > 0 {
		o.key("credentials")
		o.b = append(o.b, '[')
		for i, c := range r.Credentials {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = append(o.b, `{"id":`...)
			o.b = appendString(o.b, c.ID)
			o.b = append(o.b, `,"path":`...)
			o.b = appendString(o.b, c.Path)
			o.b = append(o.b, '}')
		}
		o.b = append(o.b, ']')
	}
	o.strs("env_files", r.EnvFiles)
	o.boolean("harden", r.Harden, true)
	if l := r.Limits; !l.IsZero() {
		o.key("limits")
		o.b = append(o.b, '{')
		lo := obj{b: o.b}
		lo.str("memory_max", l.MemoryMax, true)
		lo.str("memory_high", l.MemoryHigh, true)
		lo.str("cpu_quota", l.CPUQuota, true)
		lo.str("cpu_weight", l.CPUWeight, true)
		lo.str("tasks_max", l.TasksMax, true)
		lo.str("nofile", l.NOFILE, true)
		o.b = append(lo.b, '}')
	}
	o.strs("properties", r.Properties)
	o.boolean("expect_attach", r.ExpectAttach, true)
	o.duration("attach_timeout", r.AttachTimeout)
	if r.HealthFails != nil {
		o.integer("health_fails", *r.HealthFails, false)
	}
	if u := r.Usage; u != nil {
		o.key("usage")
		o.b = append(o.b, '{')
		uo := obj{b: o.b}
		uo.float("cpu_percent", u.CPUPercent)
		uo.key("cpu_usec")
		uo.b = strconv.AppendUint(uo.b, u.CPUUsec, 10)
		uo.key("memory_bytes")
		uo.b = strconv.AppendUint(uo.b, u.MemoryBytes, 10)
		uo.integer("tasks", u.Tasks, false)
		uo.str("source", u.Source, false)
		uo.key("at")
		// As At.MarshalJSON, without its allocation (ls has one per runtime).
		uo.b = append(uo.b, '"')
		var err error
		if uo.b, err = u.At.AppendText(uo.b); err != nil && uo.err == nil {
			uo.err = err
		}
		uo.b = append(uo.b, '"')
		o.b = append(uo.b, '}')
		if uo.err != nil && o.err == nil {
			o.err = uo.err
		}
	}
	if o.err != nil {
		return nil, o.err
	}
	return append(o.b, '}'), nil
}

// obj writes the members of a JSON object with encoding/json's omitempty
// and omitzero rules; the first error (a time out of JSON's range) sticks.
type obj struct {
	b    []byte
	more bool
	err  error
}

func (o *obj) key(k string) {
	if o.more {
		o.b = append(o.b, ',')
	}
	o.more = true
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *obj) str(k, v string, omitEmpty bool) {
	if omitEmpty && v == "" {
		return
	}
	o.key(k)
	o.b = appendString(o.b, v)
}

func (o *obj) boolean(k string, v, omitEmpty bool) {
	if omitEmpty && !v {
		return
	}
	o.key(k)
	o.b = strconv.AppendBool(o.b, v)
}

func (o *obj) integer(k string, v int, omitEmpty bool) {
	if omitEmpty && v == 0 {
		return
	}
	o.key(k)
	o.b = strconv.AppendInt(o.b, int64(v), 10)
}

func (o *obj) strs(k string, v []string) {
	if len(v) == 0 {
		return
	}
	o.key(k)
	o.b = append(o.b, '[')
	for i, s := range v {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendString(o.b, s)
	}
	o.b = append(o.b, ']')
}

// float writes a float64 as encoding/json does (shortest form, 'e'
// notation below 1e-6 and from 1e21 on); NaN and ±Inf, which JSON cannot
// hold, are an error as with json.Marshal.
func (o *obj) float(k string, f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		if o.err == nil {
			o.err = fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64))
		}
		return
	}
	o.key(k)
	abs := math.Abs(f)
	fmtc := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmtc = 'e'
	}
	n := len(o.b)
	o.b = strconv.AppendFloat(o.b, f, fmtc, -1, 64)
	if fmtc == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if m := len(o.b) - n; m >= 4 && o.b[len(o.b)-4] == 'e' && o.b[len(o.b)-3] == '-' && o.b[len(o.b)-2] == '0' {
			o.b[len(o.b)-2] = o.b[len(o.b)-1]
			o.b = o.b[:len(o.b)-1]
		}
	}
}

// duration writes a Duration (omitempty: zero is left out) as its text.
func (o *obj) duration(k string, d Duration) {
	if d == 0 {
		return
	}
	o.key(k)
	o.b = appendString(o.b, time.Duration(d).String())
}

// time writes a time.Time (omitzero) with its MarshalJSON.
func (o *obj) time(k string, t time.Time) {
	if t.IsZero() {
		return
	}
	v, err := t.MarshalJSON()
	if err != nil {
		if o.err == nil {
			o.err = err
		}
		return
	}
	o.key(k)
	o.b = append(o.b, v...)
}
