package wire

import (
	"math"
	"strconv"
	"strings"
)

// Infinity is the value of a limit given as "infinity": no limit. It is
// systemd's own encoding of "infinity" on D-Bus (UINT64_MAX) for MemoryMax=,
// MemoryHigh=, TasksMax= and LimitNOFILE=.
const Infinity uint64 = math.MaxUint64

// Bounds of the limit flags.
const (
	// MinCPUWeight and MaxCPUWeight bound --cpu-weight (systemd's CPUWeight=).
	MinCPUWeight = 1
	MaxCPUWeight = 10000
	// DefaultCPUWeight is the weight of a unit without CPUWeight=.
	DefaultCPUWeight = 100
	// MaxCPUQuota bounds --cpu-quota, in percent of one CPU (10,000 CPUs).
	MaxCPUQuota = 1_000_000
)

// Limits are the resource limits of a managed runtime, as systemd takes
// them (systemd.resource-control(5), systemd.exec(5)). Zero is "not set"
// (systemd's default); Infinity is "infinity" where systemd accepts it.
// The registry keeps them in this form; LimitArgs is their text form.
type Limits struct {
	// MemoryMax and MemoryHigh are bytes (MemoryMax=, MemoryHigh=).
	MemoryMax  uint64 `json:"memory_max,omitempty"`
	MemoryHigh uint64 `json:"memory_high,omitempty"`
	// CPUQuota is in percent of one CPU (CPUQuota=; 200 = two CPUs).
	CPUQuota uint64 `json:"cpu_quota,omitempty"`
	// CPUWeight is CPUWeight=, MinCPUWeight–MaxCPUWeight.
	CPUWeight uint64 `json:"cpu_weight,omitempty"`
	// TasksMax is TasksMax=: processes and threads of the unit.
	TasksMax uint64 `json:"tasks_max,omitempty"`
	// NOFILE is LimitNOFILE=, soft and hard: open files per process.
	NOFILE uint64 `json:"nofile,omitempty"`
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// With returns l with every limit that o sets replaced by o's.
func (l Limits) With(o Limits) Limits {
	pick := func(a, b uint64) uint64 {
		if b != 0 {
			return b
		}
		return a
	}
	return Limits{
		MemoryMax: pick(l.MemoryMax, o.MemoryMax), MemoryHigh: pick(l.MemoryHigh, o.MemoryHigh),
		CPUQuota: pick(l.CPUQuota, o.CPUQuota), CPUWeight: pick(l.CPUWeight, o.CPUWeight),
		TasksMax: pick(l.TasksMax, o.TasksMax), NOFILE: pick(l.NOFILE, o.NOFILE),
	}
}

// Live returns the limits of l that systemd changes on a running unit
// (its cgroup's: memory, CPU, tasks); NOFILE, a process's rlimit, is set
// only when a process starts.
func (l Limits) Live() Limits {
	l.NOFILE = 0
	return l
}

// Args returns l in systemd's syntax (64M, infinity, 50%), as LimitArgs.
func (l Limits) Args() LimitArgs {
	return LimitArgs{
		MemoryMax: FormatBytes(l.MemoryMax), MemoryHigh: FormatBytes(l.MemoryHigh),
		CPUQuota: formatPercent(l.CPUQuota), CPUWeight: formatCount(l.CPUWeight),
		TasksMax: formatCount(l.TasksMax), NOFILE: formatCount(l.NOFILE),
	}
}

// String words the limits that are set, in flag order and systemd's
// syntax: "memory-max 64M, cpu-quota 50%"; "" when none is.
func (l Limits) String() string { return l.Args().String() }

// LimitArgs are the limit flags of add and set in systemd's syntax, as
// given ("" = not given); in a reply (Runtime.Limits) they are the limits
// in effect for the next start, written back by Limits.Args. ParseLimits
// holds the rules.
type LimitArgs struct {
	MemoryMax  string `json:"memory_max,omitempty"`
	MemoryHigh string `json:"memory_high,omitempty"`
	CPUQuota   string `json:"cpu_quota,omitempty"`
	CPUWeight  string `json:"cpu_weight,omitempty"`
	TasksMax   string `json:"tasks_max,omitempty"`
	NOFILE     string `json:"nofile,omitempty"`
}

// IsZero reports whether no limit is given.
func (a LimitArgs) IsZero() bool { return a == LimitArgs{} }

// String words the limits given, in flag order: "memory-max 64M,
// cpu-quota 50%"; "" when none is.
func (a LimitArgs) String() string {
	var parts []string
	for _, f := range a.fields() {
		if *f.v != "" {
			parts = append(parts, f.flag[2:]+" "+*f.v)
		}
	}
	return strings.Join(parts, ", ")
}

// The syntax each limit flag accepts, as the errors say it.
const (
	bytesRule   = "give bytes with an optional K, M, G or T suffix (base 1024), such as 512M or 2G, or infinity"
	percentRule = "give a percentage of one CPU such as 50% (200% is two CPUs), from 1% to 1000000%"
	weightRule  = "give a whole number from 1 to 10000 (the default weight is 100)"
	countRule   = "give a whole number of at least 1, such as 512, or infinity"
)

type limitField struct {
	flag  string
	v     *string
	parse func(string) (uint64, bool)
	rule  string
	out   func(*Limits) *uint64
}

func (a *LimitArgs) fields() []limitField {
	return []limitField{
		{"--memory-max", &a.MemoryMax, parseBytes, bytesRule, func(l *Limits) *uint64 { return &l.MemoryMax }},
		{"--memory-high", &a.MemoryHigh, parseBytes, bytesRule, func(l *Limits) *uint64 { return &l.MemoryHigh }},
		{"--cpu-quota", &a.CPUQuota, parsePercent, percentRule, func(l *Limits) *uint64 { return &l.CPUQuota }},
		{"--cpu-weight", &a.CPUWeight, parseWeight, weightRule, func(l *Limits) *uint64 { return &l.CPUWeight }},
		{"--tasks-max", &a.TasksMax, parseCount, countRule, func(l *Limits) *uint64 { return &l.TasksMax }},
		{"--nofile", &a.NOFILE, parseCount, countRule, func(l *Limits) *uint64 { return &l.NOFILE }},
	}
}

// ParseLimits checks the limit flags in a and returns them as Limits, and
// a in canonical form (what Limits.Args gives: "65536K" becomes "64M").
// The syntax is systemd's, a subset of it:
//   - --memory-max, --memory-high: bytes, with an optional K, M, G or T
//     suffix (base 1024), or infinity;
//   - --cpu-quota: N% of one CPU, 1–1000000 (more than 100% for several CPUs);
//   - --cpu-weight: 1–10000;
//   - --tasks-max, --nofile: a whole number ≥ 1, or infinity.
//
// Errors are of class invalid, name the flag and say what it accepts.
func ParseLimits(a LimitArgs) (Limits, LimitArgs, error) {
	var l Limits
	for _, f := range a.fields() {
		if *f.v == "" {
			continue
		}
		v, ok := f.parse(*f.v)
		if !ok {
			return Limits{}, LimitArgs{}, Errorf(ErrInvalid, "%s %q: %s", f.flag, *f.v, f.rule)
		}
		*f.out(&l) = v
	}
	return l, l.Args(), nil
}

// parseBytes parses N[K|M|G|T] or infinity; 0 and overflows are refused.
func parseBytes(s string) (uint64, bool) {
	if s == "infinity" {
		return Infinity, true
	}
	if s == "" {
		return 0, false
	}
	shift := 0
	if i := strings.IndexByte("KMGT", s[len(s)-1]); i >= 0 {
		shift, s = 10*(i+1), s[:len(s)-1]
	}
	n, ok := parseDigits(s)
	if !ok || n == 0 || n > Infinity>>shift {
		return 0, false
	}
	return n << shift, true
}

// parsePercent parses N% with N from 1 to MaxCPUQuota.
func parsePercent(s string) (uint64, bool) {
	n, ok := parseDigits(strings.TrimSuffix(s, "%"))
	return n, ok && strings.HasSuffix(s, "%") && n >= 1 && n <= MaxCPUQuota
}

// parseWeight parses a CPU weight, MinCPUWeight–MaxCPUWeight.
func parseWeight(s string) (uint64, bool) {
	n, ok := parseDigits(s)
	return n, ok && n >= MinCPUWeight && n <= MaxCPUWeight
}

// parseCount parses a whole number ≥ 1, or infinity.
func parseCount(s string) (uint64, bool) {
	if s == "infinity" {
		return Infinity, true
	}
	n, ok := parseDigits(s)
	return n, ok && n >= 1
}

// parseDigits parses a decimal number of ASCII digits only (no sign, no
// blanks, no 0x).
func parseDigits(s string) (uint64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// FormatBytes writes a byte count in systemd's syntax: with the largest of
// the suffixes K, M, G, T that divides it exactly (67108864 is "64M"),
// "infinity" for Infinity, "" for 0 (not set).
func FormatBytes(n uint64) string {
	switch n {
	case 0:
		return ""
	case Infinity:
		return "infinity"
	}
	suffix := ""
	for _, s := range []string{"K", "M", "G", "T"} {
		if n%1024 != 0 {
			break
		}
		n, suffix = n/1024, s
	}
	return strconv.FormatUint(n, 10) + suffix
}

func formatPercent(n uint64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10) + "%"
}

func formatCount(n uint64) string {
	switch n {
	case 0:
		return ""
	case Infinity:
		return "infinity"
	}
	return strconv.FormatUint(n, 10)
}
