package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// cppLines are request lines as the C++ SDK's headers build them
// (attach.h: daemon_attach, its atexit detach; control.h: ctl::start, stop,
// remove, ls, ps, show, stats, and the commands it has that this daemon
// does not serve), and as docs/protocol.md lists them. They seed the
// fuzzers.
var cppLines = []string{
	"attach server myservice 8080 --pid 4242",
	"attach server myservice 8080 --pid 4242 --managed",
	"attach cache c1 6379 --pid 9",
	"attach proxy p 1 --pid 1",
	"attach client cl 65535 --pid 2147483647 --managed",
	"remove myservice",
	"start myapp", "stop myapp", "remove myapp", "show myapp", "ls", "ps", "stats", "version",
	"stats myapp",                    // ctl::stats(name): refused (stats takes no arguments)
	"create server myapp -p 9000 -s", // ctl::create: the C++ daemon's, not served
	"send myapp hello", "reload myapp", "action c1 get key",
	"add /usr/bin/web --name web -s --env A=b --workdir /srv --restart always --restart-sec 2s --attach --wait -- --port 7070 -v",
	"start web-* api --wait", "restart a --wait",
	"attach\tcache  c1\t6379 --pid 9", " ls ", "\t", "",
}

func TestParseLegacy(t *testing.T) {
	tests := []struct {
		line string
		want Request
		err  string // a part of the error; "" for none
	}{
		// Byte sequences the C++ SDK sends (attach.h / control.h).
		{"attach server echo 7070 --pid 1234 --managed", Request{Cmd: "attach", Attach: &AttachSpec{Type: "server", Name: "echo", Port: 7070, PID: 1234, Managed: true}}, ""},
		{"attach\tcache  c1\t6379 --pid 9", Request{Cmd: "attach", Attach: &AttachSpec{Type: "cache", Name: "c1", Port: 6379, PID: 9}}, ""},
		{"attach --pid 9 server x 1", Request{Cmd: "attach", Attach: &AttachSpec{Type: "server", Name: "x", Port: 1, PID: 9}}, ""},
		{"remove echo", Request{Cmd: "remove", Names: []string{"echo"}}, ""},
		{"ls", Request{Cmd: "ls"}, ""},
		{"ps", Request{Cmd: "ps"}, ""},
		{"stats", Request{Cmd: "stats"}, ""},
		{"version", Request{Cmd: "version"}, ""},
		{"show a b*", Request{Cmd: "show", Names: []string{"a", "b*"}}, ""},
		{"stop web-* api", Request{Cmd: "stop", Names: []string{"web-*", "api"}}, ""},
		{"start a --wait", Request{Cmd: "start", Names: []string{"a"}, Wait: true}, ""},
		{"restart --wait a", Request{Cmd: "restart", Names: []string{"a"}, Wait: true}, ""},
		{"add /bin/x --name y -s --env A=1 -- -p 1", Request{Cmd: "add", Add: &AddSpec{Name: "y", Path: "/bin/x", Start: true, Env: []string{"A=1"}, Args: []string{"-p", "1"}}}, ""},
		{"add /bin/x --start --attach --wait --workdir /w --restart no --restart-sec 1m --env A=1 --env B=2 --",
			Request{Cmd: "add", Wait: true, Add: &AddSpec{Path: "/bin/x", Start: true, ExpectAttach: true, WorkDir: "/w", Restart: "no",
				RestartSec: Duration(time.Minute), Env: []string{"A=1", "B=2"}}}, ""},
		{"add --name -- /bin/x", Request{Cmd: "add", Add: &AddSpec{Name: "--", Path: "/bin/x"}}, ""}, // a value is any word
		{"", Request{}, "empty request"},
		{" \t ", Request{}, "empty request"},
		{"stop" + strings.Repeat(" x", MaxTokens), Request{}, "too many words in request (at most 512)"},
		{"attach server echo 7070", Request{}, "--pid is required"},
		{"attach server echo 7070 --pid", Request{}, "--pid needs a value"},
		{"attach server echo 7070 --pid x", Request{}, `bad pid "x"`},
		{"attach server echo port --pid 1", Request{}, `port "port" is not a number`},
		{"attach server echo 1 --pid 1 --bogus", Request{}, `unknown flag "--bogus"`},
		{"attach server 1 --pid 1", Request{}, "want TYPE NAME PORT, got 2 words"},
		{"stop", Request{}, "usage: stop NAME|PATTERN..."},
		{"stop -x a", Request{}, `stop: unknown flag "-x"`},
		{"stop a --wait", Request{}, `stop: unknown flag "--wait"`},
		{"ls extra", Request{}, `ls takes no arguments, got "extra"`},
		{"stats myapp", Request{}, `stats takes no arguments, got "myapp"`},
		{"frobnicate", Request{}, `unknown command "frobnicate"`},
		{"upgrade a", Request{}, `unknown command "upgrade"`}, // JSON form only
		{"add", Request{}, "add: missing PATH"},
		{"add /bin/x extra", Request{}, `unexpected argument "extra"`},
		{"add /bin/x --name", Request{}, "--name needs a value"},
		{"add /bin/x --bogus", Request{}, `unknown flag "--bogus"`},
		{"add /bin/x --restart-sec soon", Request{}, `--restart-sec "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := ParseLegacy(tt.line)
			if tt.err != "" {
				if !errors.Is(err, ErrInvalid) || ClassOf(err) != ClassInvalid || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %+v, %v; want an invalid-class error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		line string
		form Form
		want Request
		err  string
	}{
		{"legacy", "ps", FormLegacy, Request{Cmd: "ps"}, ""},
		{"json", `{"cmd":"ls"}`, FormJSON, Request{Cmd: "ls"}, ""},
		{"json after blanks", " \t{\"cmd\":\"stop\",\"names\":[\"a b\"]}", FormJSON, Request{Cmd: "stop", Names: []string{"a b"}}, ""},
		{"json add", `{"cmd":"add","add":{"name":"web","path":"/usr/bin/web","args":["--port","7070"],"env":["A=b c"],"start":true},"wait":true,"timeout":"10s"}`,
			FormJSON, Request{Cmd: "add", Wait: true, Timeout: Duration(10 * time.Second),
				Add: &AddSpec{Name: "web", Path: "/usr/bin/web", Args: []string{"--port", "7070"}, Env: []string{"A=b c"}, Start: true}}, ""},
		{"json unknown field", `{"cmd":"ls","bogus":1}`, FormJSON, Request{}, `malformed JSON request: json: unknown field "bogus"`},
		{"json broken", `{"cmd":`, FormJSON, Request{}, "malformed JSON request: unexpected EOF"},
		{"json trailing", `{"cmd":"ls"} {}`, FormJSON, Request{}, "trailing data after the JSON request"},
		{"json bad timeout", `{"cmd":"ls","timeout":"soon"}`, FormJSON, Request{}, "malformed JSON request"},
		{"not json", `ls {`, FormLegacy, Request{}, `ls takes no arguments, got "{"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, form, err := ParseRequest(tt.line)
			if form != tt.form {
				t.Fatalf("form %d, want %d", form, tt.form)
			}
			if tt.err != "" {
				if ClassOf(err) != ClassInvalid || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %+v, %v; want an invalid-class error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// stubTables writes which table it was asked for and the names.
type stubTables struct{}

func (stubTables) List(w io.Writer, rts []Runtime) error { return stub(w, "ls", rts) }
func (stubTables) PS(w io.Writer, rts []Runtime) error   { return stub(w, "ps", rts) }
func (stubTables) Show(w io.Writer, rts []Runtime) error { return stub(w, "show", rts) }

func stub(w io.Writer, table string, rts []Runtime) error {
	_, err := io.WriteString(w, table+":"+strconv.Itoa(len(rts))+"\n")
	return err
}

// TestLegacyReply covers the reply rules; the bytes of every real reply
// are pinned by manager's TestLegacyGolden.
func TestLegacyReply(t *testing.T) {
	rts := []Runtime{{Name: "a"}, {Name: "b"}}
	tests := []struct {
		name string
		cmd  string
		res  *Result
		err  error
		code byte
		want string
	}{
		{"ls", CmdList, &Result{Runtimes: rts, Message: "ignored"}, nil, CodeOK, "ls:2\n"},
		{"ps", CmdPS, &Result{Runtimes: rts}, nil, CodeOK, "ps:2\n"},
		{"show", CmdShow, &Result{Runtimes: rts[:1]}, nil, CodeOK, "show:1\n"},
		{"version", CmdVersion, &Result{Version: &VersionInfo{Version: "v1", Commit: "c", Date: "d"}, Message: "user"}, nil, CodeOK,
			"socketley v1 (commit c, built d)\n"},
		{"version without one", CmdVersion, &Result{}, nil, CodeOK, "socketley  (commit , built )\n"},
		{"message", CmdStart, &Result{Message: "started a", Runtimes: rts}, nil, CodeOK, "started a\n"},
		{"message with its newline", CmdStats, &Result{Message: "runtimes: 0\n"}, nil, CodeOK, "runtimes: 0\n"},
		{"no message", CmdStop, &Result{}, nil, CodeOK, ""},
		{"no result", CmdRemove, nil, nil, CodeOK, ""},
		{"invalid", CmdStart, &Result{Message: "started b"}, invalidf("start a: bad"), CodeInvalid, "start a: bad\n"},
		{"not found", CmdShow, nil, Errorf(ErrNotFound, `unknown runtime "x"`), CodeInvalid, "unknown runtime \"x\"\n"},
		{"unavailable", CmdStop, nil, Errorf(ErrUnavailable, "no bus"), CodeFatal, "no bus\n"},
		{"internal", CmdAdd, nil, errors.New("disk full"), CodeFatal, "disk full\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, payload := LegacyReply(tt.cmd, tt.res, tt.err, stubTables{})
			if code != tt.code || string(payload) != tt.want {
				t.Fatalf("got %d %q, want %d %q", code, payload, tt.code, tt.want)
			}
		})
	}
}

// legacyLine is the canonical legacy line of a request ParseLegacy
// returned: the inverse of the parser, for the round trip of
// FuzzParseLegacy.
func legacyLine(req Request) string {
	w := []string{req.Cmd}
	switch req.Cmd {
	case CmdAttach:
		a := req.Attach
		w = append(w, a.Type, a.Name, strconv.Itoa(a.Port), "--pid", strconv.Itoa(a.PID))
		if a.Managed {
			w = append(w, "--managed")
		}
	case CmdAdd:
		s := req.Add
		w = append(w, s.Path)
		for _, f := range []struct{ flag, v string }{{"--name", s.Name}, {"--workdir", s.WorkDir}, {"--restart", string(s.Restart)}} {
			if f.v != "" {
				w = append(w, f.flag, f.v)
			}
		}
		if s.RestartSec != 0 {
			w = append(w, "--restart-sec", time.Duration(s.RestartSec).String())
		}
		for _, e := range s.Env {
			w = append(w, "--env", e)
		}
		for _, f := range []struct {
			flag string
			on   bool
		}{{"-s", s.Start}, {"--attach", s.ExpectAttach}, {"--wait", req.Wait}} {
			if f.on {
				w = append(w, f.flag)
			}
		}
		if len(s.Args) > 0 {
			w = append(append(w, "--"), s.Args...)
		}
	default:
		w = append(w, req.Names...)
		if req.Wait {
			w = append(w, "--wait")
		}
	}
	return strings.Join(w, " ")
}

// checkError fails unless err is a bad-input error: class invalid, code 1,
// with a message.
func checkError(t *testing.T, line string, err error) {
	t.Helper()
	if ClassOf(err) != ClassInvalid || !errors.Is(err, ErrInvalid) || ClassOf(err).Code() != CodeInvalid || err.Error() == "" {
		t.Fatalf("%q: error %v (%T) has class %q, want %q", line, err, err, ClassOf(err), ClassInvalid)
	}
}

// checkJSON checks that req is a valid JSON-form request: its encoding
// parses back and encodes to the same bytes. (Strings that are not UTF-8,
// which the legacy form passes on as they are, become U+FFFD in the first
// encoding: for a line that is not UTF-8 the second round must hold.)
func checkJSON(t *testing.T, line string, req Request) {
	t.Helper()
	b := encode(t, line, req)
	back, form, err := ParseRequest(string(b))
	if err != nil || form != FormJSON {
		t.Fatalf("%q: the JSON form %s of %+v does not parse: form %d, %v", line, b, req, form, err)
	}
	again := encode(t, line, back)
	if !utf8.ValidString(line) && !bytes.Equal(again, b) {
		checkJSON(t, string(again), back)
		return
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("%q: JSON round trip %s -> %s", line, b, again)
	}
}

func encode(t *testing.T, line string, req Request) []byte {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("%q: encode %+v: %v", line, req, err)
	}
	return b
}

// FuzzParseLegacy: the legacy parser never panics; every error is a
// bad-input error (class invalid, code 1); a parsed request is one of the
// commands with what that command needs, is a valid JSON-form request too,
// and its canonical line (legacyLine) parses to the same request.
func FuzzParseLegacy(f *testing.F) {
	for _, s := range cppLines {
		f.Add(s)
	}
	for _, s := range []string{"add /x -- a b", "add /x --env", "add /x --restart-sec -1s --name --", "stop a*", "attach a b +7 --pid -0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		req, err := ParseLegacy(line)
		if err != nil {
			checkError(t, line, err)
			return
		}
		switch req.Cmd {
		case CmdAttach:
			if req.Attach == nil || req.Add != nil || req.Names != nil {
				t.Fatalf("%q: attach parsed as %+v", line, req)
			}
		case CmdAdd:
			if req.Add == nil || req.Add.Path == "" || req.Attach != nil || req.Names != nil {
				t.Fatalf("%q: add parsed as %+v", line, req)
			}
		case CmdStart, CmdStop, CmdRestart, CmdRemove, CmdShow:
			if len(req.Names) == 0 || req.Add != nil || req.Attach != nil {
				t.Fatalf("%q: %s parsed as %+v", line, req.Cmd, req)
			}
		case CmdList, CmdPS, CmdStats, CmdVersion:
			if !reflect.DeepEqual(req, Request{Cmd: req.Cmd}) {
				t.Fatalf("%q: %s parsed as %+v", line, req.Cmd, req)
			}
		default:
			t.Fatalf("%q: parsed as command %q", line, req.Cmd)
		}
		if _, form, _ := ParseRequest(line); form != FormLegacy {
			t.Fatalf("%q: a legacy request is taken for JSON", line)
		}
		checkJSON(t, line, req)
		canon := legacyLine(req)
		back, err := ParseLegacy(canon)
		if err != nil || !reflect.DeepEqual(back, req) {
			t.Fatalf("%q -> %+v; its line %q -> %+v, %v", line, req, canon, back, err)
		}
	})
}

// FuzzParseRequest: the request parser never panics on either form; every
// error is a bad-input error; a line starting with '{' (after blanks) is
// parsed as JSON, and a JSON request parsed from it encodes to a request
// that parses to the same encoding.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"ls"}`, `{"cmd":"ps"}`, `{"cmd":"stats"}`, `{"cmd":"version","version":"v0.9.0"}`,
		`{"cmd":"add","add":{"name":"web","path":"/usr/bin/web","args":["--port","7070"],"env":["A=b c"],"start":true},"wait":true,"timeout":"10s"}`,
		`{"cmd":"add","add":{"name":"w","path":"/w","restart":"always","restart_sec":"2s","restart_max_delay":"1m","restart_reset":"10s","max_restarts":3,"run_as":"nobody","expect_attach":true,"attach_timeout":"5s","health_fails":0,"stop_timeout":"20s","listen":["7070","[::1]:80"],"credentials":[{"id":"tls","path":"/k"}],"workdir":"/srv"}}`,
		`{"cmd":"start","names":["web-*","api"],"wait":true,"timeout":"1m30s"}`,
		`{"cmd":"upgrade","names":["web"],"path":"/usr/bin/web2","timeout":"30s"}`,
		`{"cmd":"attach","attach":{"type":"server","name":"echo","port":7070,"pid":1234,"managed":true}}`,
		`{"cmd":"ls","bogus":1}`, `{"cmd":"ls"} {}`, ` {"cmd":"ls"}`, `{`, `{"timeout":7}`, `{"CMD":"ls"}`, `{"names":["\u00e9\ud800"]}`,
	} {
		f.Add(s)
	}
	for _, s := range cppLines {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		req, form, err := ParseRequest(line)
		if isJSON := strings.HasPrefix(strings.TrimLeft(line, " \t"), "{"); isJSON != (form == FormJSON) {
			t.Fatalf("%q: form %d", line, form)
		}
		if err != nil {
			checkError(t, line, err)
			return
		}
		checkJSON(t, line, req)
	})
}
