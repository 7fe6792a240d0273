//go:build integration

package main_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// readFIFO returns what the next writer of the named pipe path writes, up
// to its close: a program reports a start through it, so the test waits on
// that event, not on a timer.
func readFIFO(t *testing.T, path string) string {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(path) // blocks until the program opens it
		if err != nil {
			got <- []byte("open: " + err.Error())
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	select {
	case b := <-got:
		return string(b)
	case <-time.After(waitTimeout):
		// Unblock the reader: a writer that closes at once.
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatalf("no report on %s within %s", path, waitTimeout)
		return ""
	}
}

// TestCredential: add --credential token:FILE gives the program the
// contents of FILE as $CREDENTIALS_DIRECTORY/token (systemd
// LoadCredential=) at every start, a daemon restart included, while show
// and ls list the ID and path but never the contents.
func TestCredential(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "report")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	const secret, secret2 = "tok-5f3a9c1e", "tok-second-77d2"
	token := filepath.Join(e.dir, "secrets", "token")
	if err := os.Mkdir(filepath.Dir(token), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	// The program reports the credential directory and the token.
	e.script("cred.sh", `exec 3>`+fifo+`
printf '%s\n' "$CREDENTIALS_DIRECTORY" "$(cat "$CREDENTIALS_DIRECTORY/token")" >&3
exec 3>&-
exec sleep 1000`)
	// A relative PATH is resolved against the CLI's directory (e.dir).
	e.ok("add", "./cred.sh", "-s", "--credential", "token:secrets/token")
	check := func(want string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(readFIFO(t, fifo)), "\n")
		if len(lines) != 2 || lines[0] == "" || lines[1] != want {
			t.Fatalf("the program reported %q, want $CREDENTIALS_DIRECTORY and %q", lines, want)
		}
		if strings.HasPrefix(lines[0], e.dir) {
			t.Fatalf("CREDENTIALS_DIRECTORY %s is the source directory", lines[0])
		}
	}
	check(secret)

	want := []wire.Credential{{ID: "token", Path: token}}
	if got := e.show("cred").Credentials; !slices.Equal(got, want) {
		t.Fatalf("show -o json credentials %v, want %v", got, want)
	}
	text := e.ok("show", "cred")
	if !strings.Contains(text, "token from "+token) {
		t.Errorf("show does not list the credential:\n%s", text)
	}
	var rts []wire.Runtime
	lsJSON := e.ok("ls", "-o", "json")
	if err := json.Unmarshal([]byte(lsJSON), &rts); err != nil || len(rts) != 1 || !slices.Equal(rts[0].Credentials, want) {
		t.Fatalf("ls -o json: %v, %+v", err, rts)
	}
	state := stateFiles(t, e.state)
	for what, out := range map[string]string{"show": text, "show -o json": e.ok("show", "cred", "-o", "json"),
		"ls -o json": lsJSON, "ls": e.ok("ls"), "the state files": string(state)} {
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the secret:\n%s", what, out)
		}
	}

	// Kept across a daemon restart; systemd reads the file again at the
	// next start.
	e.stopDaemon(syscall.SIGTERM)
	e.startDaemon()
	if err := os.WriteFile(token, []byte(secret2), 0o600); err != nil {
		t.Fatal(err)
	}
	e.ok("restart", "cred")
	check(secret2)
	if got := e.show("cred").Credentials; !slices.Equal(got, want) {
		t.Fatalf("after a daemon restart: credentials %v, want %v", got, want)
	}
}

// TestCredentialRefused: bad --credential values are refused before
// anything is registered, with what was wrong.
func TestCredentialRefused(t *testing.T) {
	e := newEnv(t)
	e.script("ok.sh", "exec sleep 1000")
	if err := os.WriteFile(filepath.Join(e.dir, "token"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := stateFiles(t, e.state)
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"--credential", "token"}, `--credential "token" is not ID:PATH`},
		{[]string{"--credential", ":token"}, "is not ID:PATH"},
		{[]string{"--credential", "a/b:token"}, `bad ID "a/b"`},
		{[]string{"--credential", "..:token"}, `bad ID ".."`},
		{[]string{"--credential", "t:token", "--credential", "t:token"}, `ID "t" given twice`},
		{[]string{"--credential", "t:missing"}, "does not exist, is not a regular file"},
		{[]string{"--credential", "t:."}, "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, errs, code := e.run(append([]string{"add", "./ok.sh", "-s"}, tt.args...)...)
			if code != 1 || !strings.Contains(errs, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want exit 1 mentioning %q", code, errs, tt.msg)
			}
			if after := stateFiles(t, e.state); !bytes.Equal(before, after) {
				t.Fatal("state file changed")
			}
		})
	}
}
