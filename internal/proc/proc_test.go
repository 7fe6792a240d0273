package proc

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseStat: the fields after a command name with spaces and
// parentheses, and refusals of what is not a stat line.
func TestParseStat(t *testing.T) {
	// fields 5–21, then 22 (start time) = 987654, then more.
	tail := " 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 200"
	tests := []struct {
		name, in string
		want     Stat
		err      bool
	}{
		{"plain", "42 (sleep) S 7" + tail, Stat{State: 'S', PPID: 7, StartTime: 987654, UTime: 5, STime: 3, Threads: 1, RSS: 200}, false},
		{"spaces and parens", "42 (my (odd) prog) Z 1" + tail, Stat{State: 'Z', PPID: 1, StartTime: 987654, UTime: 5, STime: 3, Threads: 1, RSS: 200}, false},
		{"no rss", "42 (x) S 7" + strings.TrimSuffix(tail, " 1000 200"), Stat{State: 'S', PPID: 7, StartTime: 987654, UTime: 5, STime: 3, Threads: 1}, false},
		{"bad utime", "42 (x) S 7" + strings.Replace(tail, " 5 3 ", " x 3 ", 1), Stat{}, true},
		{"no name", "42 sleep S 7" + tail, Stat{}, true},
		{"short", "42 (x) S 7 1 2", Stat{}, true},
		{"bad state", "42 (x) SS 7" + tail, Stat{}, true},
		{"bad ppid", "42 (x) S x" + tail, Stat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.in))
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseStat = %+v, %v; want %+v, error %v", got, err, tt.want, tt.err)
			}
		})
	}
	if (Stat{State: 'Z'}).Alive() || (Stat{State: 'X'}).Alive() || !(Stat{State: 'S'}).Alive() {
		t.Fatal("Alive is wrong")
	}
}

// TestReadStatSelf: this process's own stat names its parent and is alive.
func TestReadStatSelf(t *testing.T) {
	s, err := ReadStat(os.Getpid())
	if err != nil || s.PPID != os.Getppid() || !s.Alive() || s.StartTime == 0 || s.Threads < 1 || s.RSS == 0 {
		t.Fatalf("ReadStat(self) = %+v, %v (ppid %d)", s, err, os.Getppid())
	}
	if _, err := ReadStat(-1); err == nil {
		t.Fatal("ReadStat(-1) succeeded")
	}
}

// TestPeerCred: both ends of a unix connection in this process see this
// process's credentials.
func TestPeerCred(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	called := false
	cred, err := PeerCred(s.(*net.UnixConn), func(int) { called = true })
	if err != nil || int(cred.Pid) != os.Getpid() || int(cred.Uid) != os.Getuid() || !called {
		t.Fatalf("PeerCred = %+v, %v (fd called %v)", cred, err, called)
	}
	c.Close()
	if _, err := PeerCred(c.(*net.UnixConn), nil); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("PeerCred of a closed connection: %v", err)
	}
}
