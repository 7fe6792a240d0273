package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
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
		{"ls mine", Request{Cmd: CmdList, Version: "dev", Mine: true}},
		{"add check", Request{Cmd: CmdAdd, Add: &AddSpec{Name: "x", Path: "/bin/x"}, Check: true}},
		{"add replace", Request{Cmd: CmdAdd, Add: &AddSpec{Name: "x", Path: "/bin/x", Start: true}, Replace: true}},
		{"events follow since", Request{Cmd: CmdEvents, Follow: true, Since: time.Date(2026, 12, 6, 23, 0, 0, 5, time.UTC), Mine: true}},
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
			{Cmd: cmd, Names: []string{name, path}, Wait: flag, Timeout: Duration(timeout), Version: version, Path: path, Mine: flag, Check: !flag, Replace: flag},
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

// fullRuntime has every field of a Runtime set, awkward strings included.
func fullRuntime(odd string) Runtime {
	now := time.Date(2026, 12, 6, 5, 4, 3, 123456789, time.FixedZone("x", 3600))
	return Runtime{Name: odd, Unit: odd, Managed: true, Orphan: true, Status: StatusCrashLoop, Mode: ModeUnit,
		Desired: odd, Reason: odd, Failed: odd, FailedClass: ClassBusy, Type: odd, Port: -7, Listen: []string{odd, "7070"},
		PID: 42, Restarts: -1, Failures: 3, NextRestart: now, Since: now.UTC(), LastExit: odd, AttachPID: 9,
		AttachedAt: now, ActiveState: odd, SubState: odd, Path: odd, Args: []string{odd, ""}, Env: []string{"A=" + odd},
		WorkDir: odd, Restart: RestartAlways, RestartSec: Duration(time.Millisecond), RestartMaxDelay: Duration(-time.Hour),
		RestartReset: Duration(10 * time.Second), MaxRestarts: 5, StopTimeout: Duration(time.Second), User: odd,
		OwnerUID: 1000, Created: now, Redacted: true, Credentials: []Credential{{ID: odd, Path: odd}, {}},
		HealthRestarts: 2, EnvFiles: []string{odd}, Harden: true, Properties: []string{"Nice=" + odd},
		Limits:       LimitArgs{MemoryMax: odd, MemoryHigh: "1M", CPUQuota: "50%", CPUWeight: "7", TasksMax: "9", NOFILE: "10"},
		Unchanged:    true,
		ExpectAttach: true, AttachTimeout: Duration(3 * time.Second), HealthFails: new(int),
		Usage: &Usage{CPUPercent: 1.5, CPUUsec: 7, MemoryBytes: 8, Tasks: 2, Source: odd, At: now}}
}

// TestFullRuntimeIsFull: fullRuntime sets every field of Runtime, so that
// the encoding tests cover a field added later.
func TestFullRuntimeIsFull(t *testing.T) {
	v := reflect.ValueOf(fullRuntime("x"))
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("fullRuntime leaves %s zero: set it", v.Type().Field(i).Name)
		}
	}
}

// TestResultAppendJSON: the hand-written encoding of a Result is
// json.Marshal's, byte for byte: empty, every field set, zero runtimes.
func TestResultAppendJSON(t *testing.T) {
	odd := "a\"b\\c\n\x00<>&\u2028é\xff"
	tests := []struct {
		name string
		res  Result
	}{
		{"empty", Result{}},
		{"error", Result{Error: odd, Class: ClassNotFound}},
		{"version", Result{Version: &VersionInfo{Version: odd}, Message: odd}},
		{"zero runtime", Result{Runtimes: []Runtime{{}}}},
		{"full runtimes", Result{Runtimes: []Runtime{fullRuntime(odd), fullRuntime("plain"), {Name: "z"}}}},
		{"empty slices", Result{Runtimes: []Runtime{{Listen: []string{}, Args: []string{}, Credentials: []Credential{}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(&tt.res)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.res.AppendJSON(nil)
			if err != nil || string(got) != string(want) {
				t.Fatalf("AppendJSON = %s, %v\nwant          %s", got, err, want)
			}
		})
	}
	bad := Result{Runtimes: []Runtime{{Since: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	_, werr := json.Marshal(&bad)
	if _, err := bad.AppendJSON(nil); err == nil || werr == nil {
		t.Fatalf("a year past 9999: AppendJSON %v, json.Marshal %v; want both to fail", err, werr)
	}
}

// FuzzResultAppendJSON: for any strings, numbers and times, the two
// encodings agree.
func FuzzResultAppendJSON(f *testing.F) {
	f.Add("web", "a\x00<\xff", 7070, int64(1), int64(1700000000), true)
	f.Fuzz(func(t *testing.T, name, text string, n int, d, unix int64, flag bool) {
		r := fullRuntime(text)
		r.Name, r.Port, r.PID, r.Restarts, r.OwnerUID = name, n, -n, n, n
		r.RestartSec, r.StopTimeout = Duration(d), Duration(-d)
		r.Since = time.Unix(unix%253402300799, d%1e9).UTC()
		r.Managed, r.Orphan, r.Redacted = flag, !flag, flag
		res := Result{Runtimes: []Runtime{r, {Name: text}}, Message: text}
		want, werr := json.Marshal(&res)
		got, err := res.AppendJSON(nil)
		if (werr == nil) != (err == nil) || werr == nil && string(got) != string(want) {
			t.Fatalf("AppendJSON = %s, %v\nwant          %s, %v", got, err, want, werr)
		}
	})
}

// TestAppendJSONFloat holds the usage figures' float encoding to
// encoding/json's, at the edges of its two notations and for NaN.
func TestAppendJSONFloat(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 12.345678901234567, 1e-6, 9.99e-7, 1e-9, 1.5e-10, 1e20, 1e21, 123456789e20, -2.5e-8, math.NaN(), math.Inf(1)} {
		t.Run(strconv.FormatFloat(f, 'g', -1, 64), func(t *testing.T) {
			r := Runtime{Name: "x", Usage: &Usage{CPUPercent: f, Source: UsageProc, At: time.Unix(1, 0).UTC()}}
			want, werr := json.Marshal(&r)
			got, err := r.AppendJSON(nil)
			if (werr == nil) != (err == nil) || werr == nil && string(got) != string(want) {
				t.Fatalf("AppendJSON = %s, %v\nwant          %s, %v", got, err, want, werr)
			}
		})
	}
}

// BenchmarkEncodeList1000 compares the two encodings of an ls reply of
// 1,000 runtimes.
func BenchmarkEncodeList1000(b *testing.B) {
	res := Result{}
	for i := range 1000 {
		r := Runtime{Name: fmt.Sprintf("r%04d", i), Unit: "socketley-x.service", Managed: true, Status: StatusRunning, Mode: ModeUnit,
			Desired: "running", PID: 1000 + i, Since: time.Now(), Path: "/usr/bin/x", Args: []string{"-p", "1"},
			Restart: RestartOnFailure, StopTimeout: Duration(10 * time.Second), Created: time.Now(), ActiveState: "active", SubState: "running"}
		res.Runtimes = append(res.Runtimes, r)
	}
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = res.AppendJSON(buf[:0])
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(&res)
		}
	})
}

// BenchmarkDecodeList1000 is the CLI's side of ls at 1,000 runtimes: the
// reply decoded with encoding/json.
func BenchmarkDecodeList1000(b *testing.B) {
	res := Result{}
	for i := range 1000 {
		res.Runtimes = append(res.Runtimes, Runtime{Name: fmt.Sprintf("r%04d", i), Unit: "socketley-x.service", Managed: true,
			Status: StatusRunning, Mode: ModeUnit, Desired: "running", PID: 1000 + i, Since: time.Now(), Path: "/usr/bin/x",
			Args: []string{"-p", "1"}, Restart: RestartOnFailure, StopTimeout: Duration(10 * time.Second), Created: time.Now(),
			ActiveState: "active", SubState: "running"})
	}
	data, _ := res.AppendJSON(nil)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var got Result
		if err := json.Unmarshal(data, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendJSONCoversEveryField sets every field of Request, Result and
// Runtime (found by reflection, so a field added later is covered) and
// compares the two encodings: a field AppendJSON forgets fails here.
func TestAppendJSONCoversEveryField(t *testing.T) {
	req := Request{Add: &AddSpec{Name: "x"}}
	fill(t, reflect.ValueOf(&req).Elem())
	res := Result{Runtimes: make([]Runtime, 1)}
	fill(t, reflect.ValueOf(&res).Elem())
	fill(t, reflect.ValueOf(&res.Runtimes[0]).Elem())
	for name, v := range map[string]interface {
		AppendJSON([]byte) ([]byte, error)
	}{"Request": &req, "Result": &res} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.AppendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: AppendJSON = %s, %v\nwant          %s", name, got, err, want)
		}
	}
}

// fill sets every zero field of the struct v to a non-zero value.
func fill(t *testing.T, v reflect.Value) {
	t.Helper()
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.IsZero() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("s" + strconv.Itoa(i))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Uint64:
			f.SetUint(uint64(i+1) << 33)
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.125)
		case reflect.Slice:
			s := reflect.MakeSlice(f.Type(), 1, 1)
			if e := s.Index(0); e.Kind() == reflect.Struct {
				fill(t, e)
			} else {
				e.SetString("e" + strconv.Itoa(i))
			}
			f.Set(s)
		case reflect.Pointer:
			p := reflect.New(f.Type().Elem())
			switch p.Elem().Kind() {
			case reflect.Struct:
				fill(t, p.Elem())
			case reflect.Bool:
				p.Elem().SetBool(true)
			default:
				p.Elem().SetInt(int64(i))
			}
			f.Set(p)
		case reflect.Struct:
			if f.Type() == reflect.TypeFor[time.Time]() {
				f.Set(reflect.ValueOf(time.Unix(int64(i)*1000, 5).UTC()))
				continue
			}
			fill(t, f)
		default:
			t.Fatalf("field %s of %s: kind %s not handled", v.Type().Field(i).Name, v.Type(), f.Kind())
		}
	}
}
