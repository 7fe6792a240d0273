package wire

import (
	"encoding/json"
	"testing"
	"time"
)

// TestAppendJSONMatchesMarshal: the hand-written encoding of a Request is
// json.Marshal's, byte for byte, for every field and awkward strings.
func TestAppendJSONMatchesMarshal(t *testing.T) {
	odd := "a\"b\\c\n\r\t\b\f\x00\x1f<>&\u2028\u2029é\xff\xc3(😀"
	fails := 2
	tests := []struct {
		name string
		req  Request
	}{
		{"empty", Request{}},
		{"ls", Request{Cmd: CmdList, Version: "dev"}},
		{"names", Request{Cmd: CmdStart, Names: []string{"web", "api-*", odd}, Wait: true, Timeout: Duration(1500 * time.Millisecond)}},
		{"empty names", Request{Cmd: CmdStop, Names: []string{}}},
		{"negative timeout", Request{Cmd: CmdRestart, Timeout: Duration(-time.Second)}},
		{"attach", Request{Cmd: CmdAttach, Attach: &AttachSpec{Type: "server", Name: odd, Port: 7070, PID: -1, Managed: true}}},
		{"attach zero", Request{Cmd: CmdAttach, Attach: &AttachSpec{}}},
		{"upgrade", Request{Cmd: CmdUpgrade, Names: []string{"x"}, Path: "/usr/bin/" + odd}},
		{"add", Request{Cmd: CmdAdd, Add: &AddSpec{Name: "x", Path: "/bin/x", Args: []string{odd}, Env: []string{"A=" + odd},
			Restart: RestartAlways, HealthFails: &fails, Listen: []string{"7070"}, Credentials: []Credential{{ID: "k", Path: "/k"}},
			StopTimeout: Duration(time.Second)}, Wait: true}},
		{"everything odd", Request{Cmd: odd, Version: odd, Path: odd}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(&tt.req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.req.AppendJSON(nil)
			if err != nil || string(got) != string(want) {
				t.Fatalf("AppendJSON = %s, %v\nwant          %s", got, err, want)
			}
		})
	}
}

// FuzzAppendJSON: for any strings and numbers, AppendJSON and json.Marshal
// agree.
func FuzzAppendJSON(f *testing.F) {
	f.Add("start", "web\n<&>", "dev\xff", "/p\u2028", "server", 7070, 42, true, int64(time.Second))
	f.Add("", "", "", "", "", 0, 0, false, int64(0))
	f.Fuzz(func(t *testing.T, cmd, name, version, path, typ string, port, pid int, flag bool, timeout int64) {
		for _, req := range []Request{
			{Cmd: cmd, Names: []string{name, path}, Wait: flag, Timeout: Duration(timeout), Version: version, Path: path},
			{Cmd: cmd, Attach: &AttachSpec{Type: typ, Name: name, Port: port, PID: pid, Managed: flag}},
		} {
			want, err := json.Marshal(&req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := req.AppendJSON(nil)
			if err != nil || string(got) != string(want) {
				t.Fatalf("AppendJSON = %s, %v\nwant          %s", got, err, want)
			}
		}
	})
}

// BenchmarkEncodeRequest compares the two encodings of an ls request (the
// first json.Marshal of a process also builds its encoders, which this
// steady-state benchmark does not show).
func BenchmarkEncodeRequest(b *testing.B) {
	req := Request{Cmd: CmdList, Version: "1.2.3"}
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = req.AppendJSON(buf[:0])
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(&req)
		}
	})
}
