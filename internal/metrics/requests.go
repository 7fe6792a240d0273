package metrics

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// Buckets are the upper bounds, in seconds, of the control request latency
// histogram: from a cached `ls` (well under a millisecond) to a `stop` that
// waits out a stop timeout or a `start --wait` (tens of seconds).
var buckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Result label values besides the error classes of wire.ErrorClass.
const (
	resultOK = "ok"
	// cmdOther stands for a command name the daemon does not know: the
	// name comes from the client, so it never becomes a label value.
	cmdOther = "other"
)

// knownCommands are the command label values; any other request is counted
// as cmdOther, unless it succeeded (a command added later).
var knownCommands = []string{wire.CmdAdd, wire.CmdUpgrade, wire.CmdSet, wire.CmdStart, wire.CmdStop,
	wire.CmdRestart, wire.CmdRemove, wire.CmdList, wire.CmdPS, wire.CmdShow, wire.CmdAttach,
	wire.CmdStats, wire.CmdVersion, wire.CmdEvents, wire.CmdWhy}

// Requests counts the control requests the daemon answered, by command and
// result, and their latency by command. The zero value is ready to use;
// safe for concurrent use.
type Requests struct {
	mu    sync.Mutex
	count map[reqKey]uint64
	lat   map[string]*latency
}

type reqKey struct{ cmd, result string }

// latency is one command's histogram.
type latency struct {
	le    [len(buckets)]uint64 // non-cumulative counts per bucket
	count uint64
	sum   float64
}

// Observe records one answered request: its command (as the client sent
// it), the class of its error ("" for success) and how long it took from
// the request line to the reply.
func (r *Requests) Observe(cmd string, class wire.ErrorClass, d time.Duration) {
	if !slices.Contains(knownCommands, cmd) && class != "" {
		cmd = cmdOther
	}
	result := resultOK
	if class != "" {
		result = string(class)
	}
	s := d.Seconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.count == nil {
		r.count, r.lat = map[reqKey]uint64{}, map[string]*latency{}
	}
	r.count[reqKey{cmd, result}]++
	l := r.lat[cmd]
	if l == nil {
		l = &latency{}
		r.lat[cmd] = l
	}
	if i, _ := slices.BinarySearch(buckets[:], s); i < len(buckets) {
		l.le[i]++
	}
	l.count++
	l.sum += s
}

// Append appends the two request families to b.
func (r *Requests) Append(b []byte) []byte {
	r.mu.Lock()
	keys := make([]reqKey, 0, len(r.count))
	for k := range r.count {
		keys = append(keys, k)
	}
	counts := make([]uint64, 0, len(keys))
	slices.SortFunc(keys, func(a, b reqKey) int { return cmp.Or(cmp.Compare(a.cmd, b.cmd), cmp.Compare(a.result, b.result)) })
	for _, k := range keys {
		counts = append(counts, r.count[k])
	}
	cmds := make([]string, 0, len(r.lat))
	for c := range r.lat {
		cmds = append(cmds, c)
	}
	slices.Sort(cmds)
	lats := make([]latency, 0, len(cmds))
	for _, c := range cmds {
		lats = append(lats, *r.lat[c])
	}
	r.mu.Unlock()
	if len(keys) == 0 {
		return b
	}

	const total = "socketley_control_requests_total"
	b = header(b, total, "Control requests answered by the daemon, by command and result (ok, or the error class: invalid, not-found, exists, denied, limit, busy, failed, unavailable, internal).", counter)
	for i, k := range keys {
		b = sample(b, total, float64(counts[i]), "command", k.cmd, "result", k.result)
	}
	const dur = "socketley_control_request_duration_seconds"
	b = header(b, dur, "Time from a control request's line to its reply, by command (a start --wait or a stop includes the wait).", histogram)
	var le []byte
	for i, c := range cmds {
		var cum uint64
		for j, bound := range buckets {
			cum += lats[i].le[j]
			le = strconv.AppendFloat(le[:0], bound, 'f', -1, 64)
			b = sample(b, dur+"_bucket", float64(cum), "command", c, "le", string(le))
		}
		b = sample(b, dur+"_bucket", float64(lats[i].count), "command", c, "le", "+Inf")
		b = sample(b, dur+"_sum", lats[i].sum, "command", c)
		b = sample(b, dur+"_count", float64(lats[i].count), "command", c)
	}
	return b
}
