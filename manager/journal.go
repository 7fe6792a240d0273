package manager

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"golang.org/x/sys/unix"
)

// DefaultJournalSocket is journald's native protocol socket
// (systemd-journald.service(8)); Config.JournalSocket overrides it, and so
// does $SOCKETLEY_JOURNAL_SOCKET when the config leaves it empty.
const DefaultJournalSocket = "/run/systemd/journal/socket"

// Journal fields of an event (docs/events.md). journalctl SOCKETLEY_NAME=x
// and journalctl MESSAGE_ID=… select them.
const (
	fieldName     = "SOCKETLEY_NAME"
	fieldEvent    = "SOCKETLEY_EVENT"
	fieldReason   = "SOCKETLEY_REASON"
	fieldTime     = "SOCKETLEY_TIME"
	fieldExitCode = "SOCKETLEY_EXIT_CODE"
	fieldSignal   = "SOCKETLEY_EXIT_SIGNAL"
	fieldCore     = "SOCKETLEY_CORE_DUMPED"
	fieldPID      = "SOCKETLEY_PID"
	fieldRestarts = "SOCKETLEY_RESTARTS"
	fieldOwner    = "SOCKETLEY_OWNER_UID"
	// journalIdentifier is SYSLOG_IDENTIFIER= of the daemon's events.
	journalIdentifier = "socketley"
	// maxJournalValue bounds one field's value (a reason is a sentence).
	maxJournalValue = 4096
)

// journal priorities (syslog levels) of the event kinds.
const (
	prioWarning = 4
	prioNotice  = 5
	prioInfo    = 6
)

// eventPriority is the journal PRIORITY= of an event of kind k: warning
// for failures, notice for restarts, info for the operator's own actions.
func eventPriority(k wire.EventKind) int {
	switch k {
	case wire.EventUnhealthy, wire.EventOOMKilled, wire.EventCrashLoop, wire.EventStartLimitHit, wire.EventGaveUp:
		return prioWarning
	case wire.EventHealthRestart, wire.EventExited, wire.EventRestarted:
		return prioNotice
	}
	return prioInfo
}

// eventMessage is the MESSAGE= of ev: one sentence.
func eventMessage(ev wire.Event) string {
	s := "socketley: " + ev.Name + " " + string(ev.Kind)
	if d := ev.Details(); d != "" {
		s += ": " + d
	}
	return s
}

// appendJournalField appends one field in journald's native format: KEY=VALUE
// and a newline, or, when the value holds a newline, KEY, a newline, the
// value's length as a 64-bit little-endian number, the value and a newline
// (the binary-safe form).
func appendJournalField(b []byte, key, value string) []byte {
	if len(value) > maxJournalValue {
		value = value[:maxJournalValue]
	}
	if !strings.ContainsRune(value, '\n') {
		b = append(b, key...)
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, key...)
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

// journalEntry encodes ev as one native-protocol datagram.
func journalEntry(ev wire.Event) []byte {
	b := make([]byte, 0, 512)
	b = appendJournalField(b, "MESSAGE", eventMessage(ev))
	b = appendJournalField(b, "MESSAGE_ID", ev.Kind.MessageID())
	b = appendJournalField(b, "PRIORITY", strconv.Itoa(eventPriority(ev.Kind)))
	b = appendJournalField(b, "SYSLOG_IDENTIFIER", journalIdentifier)
	b = appendJournalField(b, fieldName, ev.Name)
	b = appendJournalField(b, fieldEvent, string(ev.Kind))
	b = appendJournalField(b, fieldTime, ev.Time.UTC().Format(time.RFC3339Nano))
	b = appendJournalField(b, fieldOwner, strconv.Itoa(ev.OwnerUID))
	if ev.Reason != "" {
		b = appendJournalField(b, fieldReason, ev.Reason)
	}
	if ev.ExitCode != nil {
		b = appendJournalField(b, fieldExitCode, strconv.Itoa(*ev.ExitCode))
	}
	if ev.Signal != "" {
		b = appendJournalField(b, fieldSignal, ev.Signal)
	}
	if ev.CoreDumped {
		b = appendJournalField(b, fieldCore, "1")
	}
	if ev.PID > 0 {
		b = appendJournalField(b, fieldPID, strconv.Itoa(ev.PID))
	}
	if ev.Restarts > 0 {
		b = appendJournalField(b, fieldRestarts, strconv.Itoa(ev.Restarts))
	}
	return b
}

// journalWriter sends events to journald over its native socket. A
// missing journal is not an error: it is logged once, at debug level, and
// tried again at the next event (journald may start later). Safe for
// concurrent use.
type journalWriter struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex // guards conn, warned and dropped
	conn    *net.UnixConn
	warned  bool
	dropped int // events journald had no room for
}

// write sends ev; failures are logged at debug level only.
func (j *journalWriter) write(ev wire.Event) {
	if j.path == "" {
		return
	}
	msg := journalEntry(ev)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.conn == nil {
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: j.path, Net: "unixgram"})
		if err != nil {
			if !j.warned {
				j.warned = true
				j.log.Debug("no journal: events are kept in memory only", "socket", j.path, "err", err)
			}
			return
		}
		j.conn = c
	}
	// Never wait for journald: the caller may be the daemon's loop. A full
	// socket buffer (journald busy, a crash loop flooding it) drops the
	// journal's copy of the event; the daemon's ring still has it.
	err := sendNoWait(j.conn, msg)
	if errors.Is(err, unix.EAGAIN) {
		j.dropped++
		if j.dropped == 1 || j.dropped%100 == 0 {
			j.log.Warn("journald is not keeping up: events not written to the journal (events still lists them until the daemon restarts)", "dropped", j.dropped)
		}
		return
	}
	if err != nil {
		// journald restarted (a new socket) or is gone: dial again next time.
		_ = j.conn.Close()
		j.conn = nil
		if !j.warned {
			j.warned = true
			j.log.Debug("write event to the journal", "socket", j.path, "err", err)
		}
	}
}

// sendNoWait sends msg as one datagram on c, failing with EAGAIN instead
// of waiting when the receiver's buffer is full.
func sendNoWait(c *net.UnixConn, msg []byte) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Send(int(fd), msg, unix.MSG_DONTWAIT)
		return true
	}); err != nil {
		return err
	}
	return serr
}

// close closes the connection to journald.
func (j *journalWriter) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.conn != nil {
		_ = j.conn.Close()
		j.conn = nil
	}
}

// errNoJournalctl is a daemon that cannot read the journal back.
var errNoJournalctl = errors.New("journalctl is not installed")

// readJournal reads back the events this daemon's uid wrote to the journal
// since the given time, oldest first, through journalctl. Only entries whose
// trusted _UID= is the daemon's are taken: anyone may write SOCKETLEY_
// fields to the journal.
//
// The query is narrowed in journalctl itself, so that the daemon never
// holds more than the caller may see: q.owner (>= 0) takes only the events
// of that owner's runtimes, q.names (plain names) only those runtimes'.
// At most maxJournalEvents are read, the newest; full reports that the
// journal may hold more.
func readJournal(ctx context.Context, since time.Time, q journalQuery) (evs []wire.Event, full bool, err error) {
	path, err := exec.LookPath("journalctl")
	if err != nil {
		return nil, false, errNoJournalctl
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, path, journalArgs(since, os.Getuid(), q)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, false, fmt.Errorf("journalctl: %s: %w", strings.TrimSpace(errb.String()), err)
	}
	full = bytes.Count(out.Bytes(), []byte("\n")) >= maxJournalEvents
	evs, err = parseJournal(&out, since)
	return evs, full, err
}

// journalArgs are journalctl's arguments for readJournal: the events
// written by uid since, narrowed by q. journalctl ANDs matches of
// different fields and ORs those of one field.
func journalArgs(since time.Time, uid int, q journalQuery) []string {
	args := []string{"--no-pager", "-q", "-o", "json", "--lines=" + strconv.Itoa(maxJournalEvents),
		fmt.Sprintf("--since=@%d.%06d", since.Unix(), since.Nanosecond()/1000),
		"_UID=" + strconv.Itoa(uid), "SYSLOG_IDENTIFIER=" + journalIdentifier}
	if q.owner >= 0 {
		args = append(args, fieldOwner+"="+strconv.Itoa(q.owner))
	}
	for _, n := range q.names {
		args = append(args, fieldName+"="+n)
	}
	for _, k := range wire.EventKinds() {
		args = append(args, "MESSAGE_ID="+k.MessageID())
	}
	return args
}

// maxJournalEvents bounds the events one events --since reads back from
// the journal (the newest ones are kept).
const maxJournalEvents = 20000

// journalQuery narrows readJournal: owner is the uid whose runtimes'
// events are read (-1: everyone's), names the runtimes (none: all).
type journalQuery struct {
	owner int
	names []string
}

// parseJournal decodes journalctl -o json lines into events, skipping
// entries that are not well-formed events and those before since.
func parseJournal(r *bytes.Buffer, since time.Time) ([]wire.Event, error) {
	var evs []wire.Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var f map[string]any
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			continue
		}
		if ev, ok := journalEvent(f); ok && !ev.Time.Before(since) {
			evs = append(evs, ev)
		}
	}
	return evs, sc.Err()
}

// journalEvent decodes one journal entry (journalctl -o json: strings,
// or arrays of bytes for binary values) into an event.
func journalEvent(f map[string]any) (wire.Event, bool) {
	get := func(k string) string {
		switch v := f[k].(type) {
		case string:
			return v
		case []any:
			b := make([]byte, 0, len(v))
			for _, x := range v {
				n, ok := x.(float64)
				if !ok {
					return ""
				}
				b = append(b, byte(n))
			}
			return string(b)
		}
		return ""
	}
	kind := wire.EventKind(get(fieldEvent))
	if kind.MessageID() == "" || get("MESSAGE_ID") != kind.MessageID() {
		return wire.Event{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, get(fieldTime))
	if err != nil {
		return wire.Event{}, false
	}
	ev := wire.Event{Time: t, Name: get(fieldName), Kind: kind, Reason: get(fieldReason), Signal: get(fieldSignal),
		CoreDumped: get(fieldCore) == "1"}
	if wire.CheckName(ev.Name) != nil {
		return wire.Event{}, false
	}
	if v, err := strconv.Atoi(get(fieldExitCode)); err == nil {
		ev.ExitCode = &v
	}
	ev.PID, _ = strconv.Atoi(get(fieldPID))
	ev.Restarts, _ = strconv.Atoi(get(fieldRestarts))
	owner, err := strconv.Atoi(get(fieldOwner))
	if err != nil {
		return wire.Event{}, false
	}
	ev.OwnerUID = owner
	return ev, true
}
