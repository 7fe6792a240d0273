package units

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	godbus "github.com/godbus/dbus/v5"

	"github.com/socketley/socketley/internal/wire"
)

const usecT0 = uint64(1_700_000_000_123_456)

// fixture is a GetAll("") result as go-systemd returns it: variants unwrapped.
func fixture() map[string]any {
	return map[string]any{
		"Id":                     "socketley-web.service",
		"Description":            "socketley runtime web",
		"LoadState":              "loaded",
		"ActiveState":            "active",
		"SubState":               "running",
		"Result":                 "success",
		"Restart":                "on-failure",
		"MainPID":                uint32(4242),
		"NRestarts":              uint32(2),
		"ExecMainCode":           int32(0),
		"ExecMainStatus":         int32(0),
		"ActiveEnterTimestamp":   usecT0,
		"ExecMainStartTimestamp": usecT0 - 1000,
		"StateChangeTimestamp":   usecT0 + 500,
		"RestartUSecNext":        uint64(3800),
		"RestartSteps":           uint32(15),
		"ExecStart": [][]any{{"/bin/web", []string{"/bin/web", "-p", "80"}, false,
			uint64(0), uint64(0), uint64(0), uint64(0), uint32(4242), int32(0), int32(0)}},
	}
}

func TestDecodeStatus(t *testing.T) {
	st, err := decodeStatus(fixture())
	if err != nil {
		t.Fatalf("decodeStatus: %v", err)
	}
	want := Status{
		Unit: "socketley-web.service", Name: "web",
		LoadState: LoadLoaded, ActiveState: ActiveActive, SubState: SubRunning,
		Result: ResultSuccess, Restart: wire.RestartOnFailure,
		MainPID: 4242, NRestarts: 2,
		ActiveEnter:   time.UnixMicro(int64(usecT0)),
		ExecMainStart: time.UnixMicro(int64(usecT0 - 1000)),
		StateChange:   time.UnixMicro(int64(usecT0 + 500)),
		RestartNext:   3800 * time.Microsecond,
		RestartSteps:  15,
		ExecStart:     []string{"/bin/web", "-p", "80"},
	}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
}

func TestDecodeStatusOptionalMissing(t *testing.T) {
	props := map[string]any{
		"Id": "socketley-x.service", "LoadState": "loaded", "ActiveState": "inactive", "SubState": "dead",
		"ActiveEnterTimestamp": uint64(0),
	}
	st, err := decodeStatus(props)
	if err != nil {
		t.Fatalf("decodeStatus: %v", err)
	}
	if st.MainPID != 0 || st.ExecStart != nil || !st.ActiveEnter.IsZero() || st.Result != "" {
		t.Errorf("got %+v, want zero values for missing properties", st)
	}
}

func TestDecodeStatusBad(t *testing.T) {
	tests := []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"missing Id", func(m map[string]any) { delete(m, "Id") }, "Id missing"},
		{"missing ActiveState", func(m map[string]any) { delete(m, "ActiveState") }, "ActiveState missing"},
		{"nil LoadState", func(m map[string]any) { m["LoadState"] = nil }, "LoadState"},
		{"int ActiveState", func(m map[string]any) { m["ActiveState"] = 3 }, "ActiveState"},
		{"SubState bytes", func(m map[string]any) { m["SubState"] = []byte("running") }, "SubState"},
		{"MainPID string", func(m map[string]any) { m["MainPID"] = "4242" }, "MainPID"},
		{"MainPID int32", func(m map[string]any) { m["MainPID"] = int32(4242) }, "MainPID"},
		{"NRestarts uint64", func(m map[string]any) { m["NRestarts"] = uint64(1) }, "NRestarts"},
		{"ExecMainCode uint32", func(m map[string]any) { m["ExecMainCode"] = uint32(1) }, "ExecMainCode"},
		{"ExecMainStatus nil", func(m map[string]any) { m["ExecMainStatus"] = nil }, "ExecMainStatus"},
		{"timestamp int64", func(m map[string]any) { m["ActiveEnterTimestamp"] = int64(5) }, "ActiveEnterTimestamp"},
		{"Result variant", func(m map[string]any) { m["Result"] = godbus.MakeVariant("success") }, "Result"},
		{"ExecStart string", func(m map[string]any) { m["ExecStart"] = "/bin/web" }, "ExecStart"},
		{"ExecStart short struct", func(m map[string]any) { m["ExecStart"] = [][]any{{"/bin/web"}} }, "ExecStart"},
		{"ExecStart wrong argv", func(m map[string]any) { m["ExecStart"] = [][]any{{"/bin/web", "x"}} }, "ExecStart"},
		{"ExecStart wrong elem", func(m map[string]any) { m["ExecStart"] = []any{"x"} }, "ExecStart"},
		{"not socketley", func(m map[string]any) { m["Id"] = "dbus.service" }, "not a socketley unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fixture()
			tt.edit(m)
			st, err := decodeStatus(m)
			if err == nil {
				t.Fatalf("got %+v, nil; want an error", st)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestStatusFromNotFound(t *testing.T) {
	props := map[string]any{"Id": "socketley-x.service", "LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead"}
	if _, err := statusFrom("socketley-x.service", props); !errors.Is(err, ErrNoSuchUnit) {
		t.Errorf("got %v, want ErrNoSuchUnit", err)
	}
}

func TestExecArgv(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want []string
	}{
		{"slice of slices", [][]any{{"/bin/a", []string{"a", "1"}, false}}, []string{"a", "1"}},
		{"slice of any", []any{[]any{"/bin/a", []string{"/bin/a"}, false}}, []string{"/bin/a"}},
		{"empty argv", [][]any{{"/bin/a", []string{}, false}}, []string{"/bin/a"}},
		{"no command", [][]any{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := execArgv(tt.v)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("got %q, %v; want %q, nil", got, err, tt.want)
			}
		})
	}
}

func TestDerive(t *testing.T) {
	tests := []struct {
		name       string
		st         Status
		restarting bool
		result     ServiceResult
	}{
		{"running", Status{ActiveState: ActiveActive, SubState: SubRunning, Result: ResultSuccess}, false, ResultSuccess},
		{"auto-restart", Status{ActiveState: ActiveActivating, SubState: SubAutoRestart, Result: ResultSignal,
			Restart: wire.RestartOnFailure, NRestarts: 1}, true, ResultSignal},
		{"auto-restart-queued (254)", Status{ActiveState: ActiveActivating, SubState: SubAutoRestartQueued,
			Restart: wire.RestartAlways, NRestarts: 2}, true, ""},
		{"starting", Status{ActiveState: ActiveActivating, SubState: SubStart}, false, ""},
		{"failed, no restart policy", Status{ActiveState: ActiveFailed, SubState: SubFailed, Result: ResultExitCode,
			Restart: wire.RestartNo}, false, ResultExitCode},
		{"failed before any restart", Status{ActiveState: ActiveFailed, SubState: SubFailed, Result: ResultExitCode,
			Restart: wire.RestartOnFailure}, false, ResultExitCode},
		{"start limit refused a restart", Status{ActiveState: ActiveFailed, SubState: SubFailed, Result: ResultExitCode,
			Restart: wire.RestartOnFailure, NRestarts: 3}, false, ResultStartLimitHit},
		{"start limit, always", Status{ActiveState: ActiveFailed, SubState: SubFailed, Result: ResultSignal,
			Restart: wire.RestartAlways, NRestarts: 5}, false, ResultStartLimitHit},
		{"native start-limit-hit", Status{ActiveState: ActiveFailed, Result: ResultStartLimitHit, Restart: wire.RestartAlways,
			NRestarts: 5}, false, ResultStartLimitHit},
		{"on-abnormal does not restart exit-code", Status{ActiveState: ActiveFailed, Result: ResultExitCode,
			Restart: "on-abnormal", NRestarts: 2}, false, ResultExitCode},
		{"inactive", Status{ActiveState: ActiveInactive, SubState: SubDead, Result: ResultSuccess,
			Restart: wire.RestartAlways, NRestarts: 1}, false, ResultSuccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st
			derive(&st)
			if st.Restarting != tt.restarting || st.Result != tt.result {
				t.Errorf("got Restarting=%v Result=%q, want %v %q", st.Restarting, st.Result, tt.restarting, tt.result)
			}
			again := st
			derive(&again)
			if fmt.Sprint(again) != fmt.Sprint(st) {
				t.Errorf("derive is not idempotent: %+v then %+v", st, again)
			}
		})
	}
}

func TestLastExit(t *testing.T) {
	tests := []struct {
		name         string
		code, status int
		want         string
	}{
		{"never exited", 0, 0, ""},
		{"clean exit", CodeExited, 0, "exit code 0"},
		{"exit 3", CodeExited, 3, "exit code 3"},
		{"exec failed", CodeExited, 203, "exit code 203/EXEC"},
		{"bad user", CodeExited, 217, "exit code 217/USER"},
		{"kill -9", CodeKilled, 9, "signal KILL"},
		{"sigterm", CodeKilled, 15, "signal TERM"},
		{"core dump", CodeDumped, 11, "signal SEGV (core dumped)"},
		{"unknown signal", CodeKilled, 200, "signal 200"},
		{"odd code", 5, 1, "code 5 status 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Status{ExecMainCode: tt.code, ExecMainStatus: tt.status}
			if got := st.LastExit(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestJobErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  JobError
		want string
	}{
		{"exec failed", JobError{Unit: "socketley-x.service", Job: "start", Result: JobFailed,
			Status: Status{Result: ResultExitCode, ExecMainCode: CodeExited, ExecMainStatus: 203}},
			"start socketley-x.service: job failed (unit result: exit-code, exited with status 203/EXEC)"},
		{"killed", JobError{Unit: "socketley-x.service", Job: "start", Result: JobFailed,
			Status: Status{Result: ResultSignal, ExecMainCode: CodeKilled, ExecMainStatus: 9}},
			"start socketley-x.service: job failed (unit result: signal, killed by signal KILL)"},
		{"no status", JobError{Unit: "socketley-x.service", Job: "stop", Result: JobTimeout},
			"stop socketley-x.service: job timeout"},
		{"success result hidden", JobError{Unit: "socketley-x.service", Job: "start", Result: JobCanceled,
			Status: Status{Result: ResultSuccess}},
			"start socketley-x.service: job canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = &tt.err
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			var je *JobError
			if !errors.As(fmt.Errorf("wrapped: %w", err), &je) {
				t.Error("errors.As does not find the *JobError")
			}
		})
	}
}

func TestMapErr(t *testing.T) {
	plain := errors.New("plain")
	tests := []struct {
		name     string
		err      error
		sentinel error
		msg      string
	}{
		{"no such unit", godbus.Error{Name: errNameNoSuchUnit, Body: []any{"Unit socketley-x.service not loaded."}},
			ErrNoSuchUnit, "Unit socketley-x.service not loaded."},
		{"no unit for pid", godbus.Error{Name: errNameNoUnitForPID, Body: []any{"PID 1 does not belong to any loaded unit."}},
			ErrNoSuchUnit, "PID 1 does not belong to any loaded unit."},
		{"unit exists", &godbus.Error{Name: errNameUnitExists, Body: []any{"Unit socketley-x.service was already loaded or has a fragment file."}},
			ErrUnitExists, "Unit socketley-x.service was already loaded or has a fragment file."},
		{"service unknown", godbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown", Body: []any{"The name is not activatable"}},
			ErrNoBus, "The name is not activatable"},
		{"closed", fmt.Errorf("call: %w", godbus.ErrClosed), ErrNoBus, "call: dbus: connection closed by user"},
		{"other dbus error", godbus.Error{Name: "org.freedesktop.DBus.Error.InvalidArgs", Body: []any{"bad"}}, nil, "bad"},
		{"plain", plain, plain, "plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapErr(tt.err)
			if tt.sentinel != nil && !errors.Is(got, tt.sentinel) {
				t.Errorf("got %v, want errors.Is %v", got, tt.sentinel)
			}
			for _, s := range []error{ErrNoSuchUnit, ErrUnitExists, ErrNoBus} {
				if s != tt.sentinel && errors.Is(got, s) {
					t.Errorf("got %v, which also matches %v", got, s)
				}
			}
			if got.Error() != tt.msg {
				t.Errorf("message: got %q, want %q", got.Error(), tt.msg)
			}
		})
	}
	if mapErr(nil) != nil {
		t.Error("mapErr(nil) != nil")
	}
}

func TestOwnedStrings(t *testing.T) {
	// A string of a decoded message shares its buffer: the Status must not.
	buf := []byte("socketley-web.service|active|/bin/web|--port")
	str := func(i, j int) string { return unsafe.String(&buf[i], j-i) }
	props := map[string]any{
		"Id": str(0, 21), "LoadState": "loaded", "ActiveState": str(22, 28), "SubState": "running",
		"ExecStart": [][]any{{str(29, 37), []string{str(29, 37), str(38, 44)}, false}},
	}
	st, err := decodeStatus(props)
	if err != nil {
		t.Fatal(err)
	}
	inBuf := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return p >= uintptr(unsafe.Pointer(&buf[0])) && p < uintptr(unsafe.Pointer(&buf[0]))+uintptr(len(buf))
	}
	for _, s := range append([]string{st.Unit, st.Name, st.ActiveState}, st.ExecStart...) {
		if inBuf(s) {
			t.Errorf("%q shares the message buffer", s)
		}
	}
	if unsafe.StringData(st.ActiveState) != unsafe.StringData(ActiveActive) {
		t.Error("a common state value is not the constant")
	}
	if st.Unit != "socketley-web.service" || st.Name != "web" || !slices.Equal(st.ExecStart, []string{"/bin/web", "--port"}) {
		t.Errorf("got %+v", st)
	}
}

// The last_exit examples of docs/cli.md are what LastExit says.
func TestLastExitDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for _, l := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(l, "| `last_exit` |") {
			row = l
		}
	}
	if row == "" {
		t.Fatal("docs/cli.md has no last_exit row")
	}
	words := map[string]bool{}
	for _, s := range []Status{
		{ExecMainCode: CodeExited, ExecMainStatus: 3},
		{ExecMainCode: CodeExited, ExecMainStatus: 203},
		{ExecMainCode: CodeKilled, ExecMainStatus: 9},
		{ExecMainCode: CodeDumped, ExecMainStatus: 11},
	} {
		words[s.LastExit()] = true
	}
	examples := regexp.MustCompile("`([^`]*)`").FindAllStringSubmatch(row, -1)[1:] // [0] is the field name
	if len(examples) == 0 {
		t.Fatalf("no examples in %q", row)
	}
	for _, m := range examples {
		t.Run(m[1], func(t *testing.T) {
			if !words[m[1]] {
				t.Fatalf("docs/cli.md shows last_exit %q; LastExit says one of %v", m[1], slices.Sorted(maps.Keys(words)))
			}
		})
	}
}
