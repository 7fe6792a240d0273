package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestParseLimits: each limit flag takes systemd's syntax (a subset), gives
// the typed value and its canonical text, and refuses anything else with
// class invalid, naming the flag and what it accepts.
func TestParseLimits(t *testing.T) {
	tests := []struct {
		name  string
		args  LimitArgs
		want  Limits
		canon LimitArgs
		msg   string // "" = valid
	}{
		{"none", LimitArgs{}, Limits{}, LimitArgs{}, ""},
		{"memory-max M", LimitArgs{MemoryMax: "64M"}, Limits{MemoryMax: 64 << 20}, LimitArgs{MemoryMax: "64M"}, ""},
		{"memory-max bytes", LimitArgs{MemoryMax: "1000"}, Limits{MemoryMax: 1000}, LimitArgs{MemoryMax: "1000"}, ""},
		{"memory-max canonical", LimitArgs{MemoryMax: "65536K"}, Limits{MemoryMax: 64 << 20}, LimitArgs{MemoryMax: "64M"}, ""},
		{"memory-max bytes to K", LimitArgs{MemoryMax: "2048"}, Limits{MemoryMax: 2048}, LimitArgs{MemoryMax: "2K"}, ""},
		{"memory-max T", LimitArgs{MemoryMax: "2T"}, Limits{MemoryMax: 2 << 40}, LimitArgs{MemoryMax: "2T"}, ""},
		{"memory-max G", LimitArgs{MemoryMax: "3G"}, Limits{MemoryMax: 3 << 30}, LimitArgs{MemoryMax: "3G"}, ""},
		{"memory-max infinity", LimitArgs{MemoryMax: "infinity"}, Limits{MemoryMax: Infinity}, LimitArgs{MemoryMax: "infinity"}, ""},
		{"memory-max max uint64 is infinity", LimitArgs{MemoryMax: "18446744073709551615"}, Limits{MemoryMax: Infinity}, LimitArgs{MemoryMax: "infinity"}, ""},
		{"memory-high", LimitArgs{MemoryHigh: "48M"}, Limits{MemoryHigh: 48 << 20}, LimitArgs{MemoryHigh: "48M"}, ""},
		{"cpu-quota", LimitArgs{CPUQuota: "50%"}, Limits{CPUQuota: 50}, LimitArgs{CPUQuota: "50%"}, ""},
		{"cpu-quota several CPUs", LimitArgs{CPUQuota: "250%"}, Limits{CPUQuota: 250}, LimitArgs{CPUQuota: "250%"}, ""},
		{"cpu-quota max", LimitArgs{CPUQuota: "1000000%"}, Limits{CPUQuota: MaxCPUQuota}, LimitArgs{CPUQuota: "1000000%"}, ""},
		{"cpu-weight", LimitArgs{CPUWeight: "10000"}, Limits{CPUWeight: 10000}, LimitArgs{CPUWeight: "10000"}, ""},
		{"cpu-weight min", LimitArgs{CPUWeight: "1"}, Limits{CPUWeight: 1}, LimitArgs{CPUWeight: "1"}, ""},
		{"tasks-max", LimitArgs{TasksMax: "512"}, Limits{TasksMax: 512}, LimitArgs{TasksMax: "512"}, ""},
		{"tasks-max infinity", LimitArgs{TasksMax: "infinity"}, Limits{TasksMax: Infinity}, LimitArgs{TasksMax: "infinity"}, ""},
		{"nofile", LimitArgs{NOFILE: "1024"}, Limits{NOFILE: 1024}, LimitArgs{NOFILE: "1024"}, ""},
		{"nofile leading zero", LimitArgs{NOFILE: "01024"}, Limits{NOFILE: 1024}, LimitArgs{NOFILE: "1024"}, ""},
		{"all", LimitArgs{MemoryMax: "1G", MemoryHigh: "512M", CPUQuota: "150%", CPUWeight: "50", TasksMax: "64", NOFILE: "4096"},
			Limits{MemoryMax: 1 << 30, MemoryHigh: 512 << 20, CPUQuota: 150, CPUWeight: 50, TasksMax: 64, NOFILE: 4096},
			LimitArgs{MemoryMax: "1G", MemoryHigh: "512M", CPUQuota: "150%", CPUWeight: "50", TasksMax: "64", NOFILE: "4096"}, ""},

		{"memory-max lower-case suffix", LimitArgs{MemoryMax: "64m"}, Limits{}, LimitArgs{}, `--memory-max "64m": give bytes with an optional K, M, G or T suffix (base 1024)`},
		{"memory-max MB", LimitArgs{MemoryMax: "64MB"}, Limits{}, LimitArgs{}, `--memory-max "64MB"`},
		{"memory-max fraction", LimitArgs{MemoryMax: "1.5G"}, Limits{}, LimitArgs{}, `--memory-max "1.5G"`},
		{"memory-max zero", LimitArgs{MemoryMax: "0"}, Limits{}, LimitArgs{}, `--memory-max "0"`},
		{"memory-max negative", LimitArgs{MemoryMax: "-1"}, Limits{}, LimitArgs{}, `--memory-max "-1"`},
		{"memory-max suffix only", LimitArgs{MemoryMax: "M"}, Limits{}, LimitArgs{}, `--memory-max "M"`},
		{"memory-max percent", LimitArgs{MemoryMax: "50%"}, Limits{}, LimitArgs{}, `--memory-max "50%"`},
		{"memory-max overflow", LimitArgs{MemoryMax: "16777216T"}, Limits{}, LimitArgs{}, `--memory-max "16777216T"`},
		{"memory-max too many digits", LimitArgs{MemoryMax: "99999999999999999999"}, Limits{}, LimitArgs{}, `--memory-max "99999999999999999999"`},
		{"memory-max blank", LimitArgs{MemoryMax: " 64M"}, Limits{}, LimitArgs{}, `--memory-max " 64M"`},
		{"memory-high bad", LimitArgs{MemoryHigh: "lots"}, Limits{}, LimitArgs{}, `--memory-high "lots": give bytes`},
		{"cpu-quota without %", LimitArgs{CPUQuota: "50"}, Limits{}, LimitArgs{}, `--cpu-quota "50": give a percentage of one CPU such as 50%`},
		{"cpu-quota zero", LimitArgs{CPUQuota: "0%"}, Limits{}, LimitArgs{}, `--cpu-quota "0%"`},
		{"cpu-quota fraction", LimitArgs{CPUQuota: "0.5%"}, Limits{}, LimitArgs{}, `--cpu-quota "0.5%"`},
		{"cpu-quota too large", LimitArgs{CPUQuota: "1000001%"}, Limits{}, LimitArgs{}, `--cpu-quota "1000001%"`},
		{"cpu-quota infinity", LimitArgs{CPUQuota: "infinity"}, Limits{}, LimitArgs{}, `--cpu-quota "infinity"`},
		{"cpu-weight zero", LimitArgs{CPUWeight: "0"}, Limits{}, LimitArgs{}, `--cpu-weight "0": give a whole number from 1 to 10000`},
		{"cpu-weight too large", LimitArgs{CPUWeight: "10001"}, Limits{}, LimitArgs{}, `--cpu-weight "10001"`},
		{"cpu-weight idle", LimitArgs{CPUWeight: "idle"}, Limits{}, LimitArgs{}, `--cpu-weight "idle"`},
		{"tasks-max zero", LimitArgs{TasksMax: "0"}, Limits{}, LimitArgs{}, `--tasks-max "0": give a whole number of at least 1, such as 512, or infinity`},
		{"tasks-max percent", LimitArgs{TasksMax: "10%"}, Limits{}, LimitArgs{}, `--tasks-max "10%"`},
		{"nofile soft:hard", LimitArgs{NOFILE: "1024:4096"}, Limits{}, LimitArgs{}, `--nofile "1024:4096": give a whole number`},
		{"nofile hex", LimitArgs{NOFILE: "0x400"}, Limits{}, LimitArgs{}, `--nofile "0x400"`},
		{"nofile plus", LimitArgs{NOFILE: "+5"}, Limits{}, LimitArgs{}, `--nofile "+5"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, canon, err := ParseLimits(tt.args)
			if tt.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.msg) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseLimits(%+v) = %v; want an invalid error containing %q", tt.args, err, tt.msg)
				}
				return
			}
			if err != nil || got != tt.want || canon != tt.canon {
				t.Fatalf("ParseLimits(%+v) = %+v, %+v, %v; want %+v, %+v", tt.args, got, canon, err, tt.want, tt.canon)
			}
			// The canonical text parses to the same values.
			again, _, err := ParseLimits(canon)
			if err != nil || again != got {
				t.Fatalf("ParseLimits(canonical %+v) = %+v, %v; want %+v", canon, again, err, got)
			}
		})
	}
}

// TestLimitsWithAndLive: set replaces the limits it gives and keeps the
// others; Live leaves out what a running process cannot change (nofile).
func TestLimitsWithAndLive(t *testing.T) {
	old := Limits{MemoryMax: 64 << 20, CPUQuota: 50, NOFILE: 1024}
	got := old.With(Limits{MemoryMax: 32 << 20, TasksMax: Infinity})
	want := Limits{MemoryMax: 32 << 20, CPUQuota: 50, TasksMax: Infinity, NOFILE: 1024}
	if got != want {
		t.Fatalf("With = %+v; want %+v", got, want)
	}
	if live := got.Live(); live.NOFILE != 0 || live.MemoryMax != 32<<20 || live.TasksMax != Infinity {
		t.Fatalf("Live = %+v", live)
	}
	if s := got.String(); s != "memory-max 32M, cpu-quota 50%, tasks-max infinity, nofile 1024" {
		t.Fatalf("String = %q", s)
	}
	if !(Limits{}).IsZero() || old.IsZero() || (Limits{NOFILE: 1}).Live() != (Limits{}) {
		t.Fatal("IsZero or Live is wrong")
	}
}

// TestLimitsJSON: the registry's form of Limits (numbers, infinity as
// UINT64_MAX) reads back as written; a missing "limits" is no limits.
func TestLimitsJSON(t *testing.T) {
	l := Limits{MemoryMax: Infinity, CPUQuota: 150, NOFILE: 4096}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"memory_max":18446744073709551615,"cpu_quota":150,"nofile":4096}` {
		t.Fatalf("Marshal = %s", b)
	}
	var back Limits
	if err := json.Unmarshal(b, &back); err != nil || back != l {
		t.Fatalf("Unmarshal = %+v, %v", back, err)
	}
	var spec AddSpec
	if err := json.Unmarshal([]byte(`{"name":"x","path":"/x"}`), &spec); err != nil || !spec.Limits.IsZero() {
		t.Fatalf("an add without limits: %+v, %v", spec.Limits, err)
	}
}

// TestSetSpecCheck: set needs a name and at least one limit; the limits
// follow ParseLimits.
func TestSetSpecCheck(t *testing.T) {
	for _, tt := range []struct {
		spec SetSpec
		msg  string
	}{
		{SetSpec{Name: "web", Limits: LimitArgs{MemoryMax: "65536K"}}, ""},
		{SetSpec{Name: "web"}, "nothing to change: give at least one of --memory-max"},
		{SetSpec{Name: "web-*", Limits: LimitArgs{NOFILE: "1"}}, "invalid runtime name"},
		{SetSpec{Name: "web", Limits: LimitArgs{CPUQuota: "half"}}, `--cpu-quota "half"`},
	} {
		s := tt.spec
		err := s.Check()
		if tt.msg == "" {
			if err != nil || s.Limits.MemoryMax != "64M" {
				t.Errorf("Check(%+v) = %v, limits %+v", tt.spec, err, s.Limits)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.msg) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%+v) = %v; want %q", tt.spec, err, tt.msg)
		}
	}
}
