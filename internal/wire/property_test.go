package wire

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCheckProperty(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want "" = refused
		msg      string // part of the error
	}{
		{"Nice=5", "Nice=5", ""},
		{"Nice=-20", "Nice=-20", ""},
		{"Nice=20", "", "Nice=\"20\": a whole number from -20 to 19"},
		{"Nice=+5", "", "a whole number"},
		{"IOWeight=0", "", "from 1 to 10000"},
		{"IOWeight=-1", "", "from 1 to 10000"},
		{"OOMScoreAdjust=-1000", "OOMScoreAdjust=-1000", ""},
		{"PrivateTmp=true", "PrivateTmp=yes", ""},
		{"PrivateTmp=OFF", "PrivateTmp=no", ""},
		{"PrivateTmp=maybe", "", "yes or no"},
		{"ProtectHome=read-only", "ProtectHome=read-only", ""},
		{"ProtectSystem=everything", "", "one of no, yes, full, strict"},
		{"TimeoutStartSec=90", "TimeoutStartSec=90s", ""},
		{"TimeoutStartSec=1min 30s", "TimeoutStartSec=90s", ""},
		{"TimeoutStartSec=1h30min", "TimeoutStartSec=5400s", ""},
		{"RuntimeMaxSec=500ms", "RuntimeMaxSec=500ms", ""},
		{"RuntimeMaxSec=infinity", "RuntimeMaxSec=infinity", ""},
		{"TimeoutStartSec=1.5s", "", "a time span"},
		{"TimeoutStartSec=10 parsecs", "", "a time span"},
		{"UMask=27", "UMask=0027", ""},
		{"UMask=0778", "", "octal"},
		{"UMask=01777", "", "octal"},
		{"KillSignal=int", "KillSignal=SIGINT", ""},
		{"KillSignal=SIGFOO", "", "a signal name"},
		{"LimitCORE=0", "LimitCORE=0", ""},
		{"LimitCORE=1048576", "LimitCORE=1M", ""},
		{"MemorySwapMax=infinity", "MemorySwapMax=infinity", ""},
		{"MemorySwapMax=1MB", "", "bytes"},
		{"Description=the api", "Description=the api", ""},
		{"Description=a\nb", "", "one line"},
		{"Description=\x1b[2Jcleared", "", "without control characters"},
		{"Description=caf\xe9", "", "UTF-8"},
		{"Description=café ☕", "Description=café ☕", ""},
		{"Nice", "", "give KEY=VALUE"},
		{"=5", "", "give KEY=VALUE"},
		{"Nice=", "", "a whole number"},
		{"nice=5", "", "not a setting socketley passes on; allowed: Description, IOWeight"},
		{"ExecStartPre=/bin/sh", "", "not a setting socketley passes on"},
		{"AmbientCapabilities=CAP_NET_ADMIN", "", "not a setting socketley passes on"},
		{"User=root", "", "User: use --run-as"},
		{"MemoryMax=1G", "", "MemoryMax: use --memory-max"},
		{"Environment=A=1", "", "Environment: use --env"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := CheckProperty(tt.in)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("CheckProperty(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				// canonical values check again to themselves
				if again, err := CheckProperty(got); err != nil || again != got {
					t.Fatalf("canonical %q checks to %q, %v", got, again, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("CheckProperty(%q) = %q, %v; want invalid %q", tt.in, got, err, tt.msg)
			}
		})
	}
}

func TestCheckPropertiesAndMerge(t *testing.T) {
	got, err := CheckProperties([]string{"UMask=77", "Nice=1", "Nice=2"})
	if want := []string{"Nice=2", "UMask=0077"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("CheckProperties = %q, %v; want %q (sorted, last value wins)", got, err, want)
	}
	var many []string
	for range MaxProperties + 1 {
		many = append(many, "Nice=1")
	}
	if _, err := CheckProperties(many); err != nil {
		t.Fatalf("one key many times: %v", err)
	}
	merged := MergeProperties([]string{"Nice=2", "UMask=0077"}, []string{"Nice=", "IOWeight=5"})
	if want := []string{"IOWeight=5", "UMask=0077"}; !slices.Equal(merged, want) {
		t.Fatalf("MergeProperties = %q, want %q", merged, want)
	}
	if MergeProperties([]string{"Nice=1"}, []string{"Nice="}) != nil {
		t.Fatal("removing the last setting leaves none (nil)")
	}
}

func TestSetSpecProperties(t *testing.T) {
	s := SetSpec{Name: "web", Properties: []string{"Nice=", "IOWeight=7", "UMask=7"}}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"IOWeight=7", "Nice=", "UMask=0007"}; !slices.Equal(s.Properties, want) {
		t.Fatalf("checked %q, want %q", s.Properties, want)
	}
	for _, tt := range []struct {
		in   []string
		want string
	}{
		{[]string{"Nice=", "Nice=5"}, "Nice=5"},
		{[]string{"Nice=5", "Nice="}, "Nice="},
		{[]string{"Nice=5", "Nice=7"}, "Nice=7"},
	} {
		s := SetSpec{Name: "web", Properties: tt.in}
		if err := s.Check(); err != nil || !slices.Equal(s.Properties, []string{tt.want}) {
			t.Errorf("set -p %q: %q (%v), want the last, %q", tt.in, s.Properties, err, tt.want)
		}
	}
	for _, bad := range []string{"Bogus=", "User=", "Nice=x"} {
		s := SetSpec{Name: "web", Properties: []string{bad}}
		if err := s.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("set -p %s: %v, want invalid", bad, err)
		}
	}
	if err := (&SetSpec{Name: "web"}).Check(); err == nil || !strings.Contains(err.Error(), "-p KEY=VALUE") {
		t.Fatalf("nothing to change: %v", err)
	}
}

func TestTimespan(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true}, {"90", 90 * time.Second, true}, {"2w", 14 * 24 * time.Hour, true},
		{"1 h 2 min", time.Hour + 2*time.Minute, true}, {"250us", 250 * time.Microsecond, true},
		{"infinity", TimespanInfinity, true}, {"", 0, false}, {"s", 0, false}, {"-1s", 0, false},
		{"99999999999999w", 0, false}, {"5 fortnights", 0, false},
	} {
		d, ok := ParseTimespan(tt.in)
		if ok != tt.ok || ok && d != tt.want {
			t.Errorf("ParseTimespan(%q) = %v, %v; want %v, %v", tt.in, d, ok, tt.want, tt.ok)
		}
		if ok {
			if back, _ := ParseTimespan(FormatTimespan(d)); back != d {
				t.Errorf("FormatTimespan(%v) = %q reads back as %v", d, FormatTimespan(d), back)
			}
		}
	}
}
