package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// This file holds both request forms and the legacy replies: the line
// format of the C++ Socketley SDK (attach.h, control.h; see
// docs/protocol.md), which must stay byte for byte what those binaries
// read, and the JSON form of our own clients. The golden test in
// manager/legacy_golden_test.go pins every legacy reply.

// Form is the form of a request line, and so of its reply.
type Form uint8

const (
	// FormLegacy is the C++ SDK's line of words; the reply is text.
	FormLegacy Form = iota
	// FormJSON is one JSON Request; the reply is a JSON Result.
	FormJSON
)

// ParseRequest turns one request line (without its newline) into a
// Request. A line whose first byte after spaces and tabs is '{' is the JSON
// form (ParseJSON), any other the legacy form (ParseLegacy); form says which,
// also on error, so that the reply is written in the client's form. Every
// error is of class invalid (errors.Is(err, ErrInvalid)).
func ParseRequest(line string) (req Request, form Form, err error) {
	if strings.HasPrefix(strings.TrimLeft(line, " \t"), "{") {
		req, err = ParseJSON(line)
		return req, FormJSON, err
	}
	req, err = ParseLegacy(line)
	return req, FormLegacy, err
}

// ParseJSON decodes a JSON-form request line: exactly one JSON object,
// unknown fields refused. Every error is of class invalid.
func ParseJSON(line string) (Request, error) {
	var req Request
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, invalidf("malformed JSON request: %v", err)
	}
	if dec.More() {
		return Request{}, invalidf("trailing data after the JSON request")
	}
	return req, nil
}

// ParseLegacy turns a legacy (C++ SDK) request line into a Request:
//
//	attach TYPE NAME PORT --pid PID [--managed]
//	start|restart NAME|PATTERN... [--wait]
//	stop|remove|show NAME|PATTERN...
//	ls | ps | stats | version
//	add /ABS/PATH [--name N] [-s|--start] [--env K=V]... [--workdir DIR]
//	    [--restart POLICY] [--restart-sec DUR] [--attach] [--wait] [-- ARGS...]
//
// Words are separated by runs of spaces and tabs (Split); there is no
// quoting. Unknown commands and flags are errors, never ignored. Only the
// syntax is checked here: names, paths, types and port ranges are the
// daemon's to check. Every error is of class invalid.
func ParseLegacy(line string) (Request, error) {
	words, err := Split(line)
	if err != nil {
		return Request{}, invalidf("%v (at most %d)", err, MaxTokens)
	}
	if len(words) == 0 {
		return Request{}, invalidf("empty request")
	}
	cmd, args := words[0], words[1:]
	switch cmd {
	case CmdList, CmdPS, CmdStats, CmdVersion:
		if len(args) > 0 {
			return Request{}, invalidf("%s takes no arguments, got %q", cmd, strings.Join(args, " "))
		}
		return Request{Cmd: cmd}, nil
	case CmdStart, CmdStop, CmdRestart, CmdRemove, CmdShow:
		req := Request{Cmd: cmd}
		for _, a := range args {
			switch {
			case a == "--wait" && (cmd == CmdStart || cmd == CmdRestart):
				req.Wait = true
			case strings.HasPrefix(a, "-"):
				return Request{}, invalidf("%s: unknown flag %q", cmd, a)
			default:
				req.Names = append(req.Names, a)
			}
		}
		if len(req.Names) == 0 {
			return Request{}, invalidf("usage: %s NAME|PATTERN...", cmd)
		}
		return req, nil
	case CmdAttach:
		return parseLegacyAttach(args)
	case CmdAdd:
		return parseLegacyAdd(args)
	}
	return Request{}, invalidf("unknown command %q (commands: add, start, stop, restart, remove, ls, ps, show, attach, stats, version)", cmd)
}

const attachUsage = "usage: attach TYPE NAME PORT --pid PID [--managed]"

// parseLegacyAttach parses the words after "attach".
func parseLegacyAttach(args []string) (Request, error) {
	var pos []string
	spec := &AttachSpec{}
	pidSet := false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--managed":
			spec.Managed = true
		case "--pid":
			if i+1 >= len(args) {
				return Request{}, invalidf("attach: --pid needs a value; %s", attachUsage)
			}
			i++
			p, err := strconv.Atoi(args[i])
			if err != nil {
				return Request{}, invalidf("attach: bad pid %q", args[i])
			}
			spec.PID, pidSet = p, true
		default:
			if strings.HasPrefix(a, "-") {
				return Request{}, invalidf("attach: unknown flag %q; %s", a, attachUsage)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) != 3 {
		return Request{}, invalidf("attach: want TYPE NAME PORT, got %d words; %s", len(pos), attachUsage)
	}
	if !pidSet {
		return Request{}, invalidf("attach: --pid is required; %s", attachUsage)
	}
	port, err := strconv.Atoi(pos[2])
	if err != nil {
		return Request{}, invalidf("attach: port %q is not a number (1-65535)", pos[2])
	}
	spec.Type, spec.Name, spec.Port = pos[0], pos[1], port
	return Request{Cmd: CmdAttach, Attach: spec}, nil
}

const addUsage = "usage: add /ABS/PATH [--name N] [-s|--start] [--env K=V]... [--workdir DIR] [--restart on-failure|always|no] [--restart-sec DUR] [--attach] [--wait] [-- ARGS...]"

// parseLegacyAdd parses the words after "add".
func parseLegacyAdd(args []string) (Request, error) {
	spec := &AddSpec{}
	req := Request{Cmd: CmdAdd, Add: spec}
	val := func(i *int, flag string) (string, error) {
		if *i+1 >= len(args) {
			return "", invalidf("add: %s needs a value; %s", flag, addUsage)
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var err error
		var v string
		switch a {
		case "--":
			spec.Args = append(spec.Args, args[i+1:]...)
			i = len(args)
		case "-s", "--start":
			spec.Start = true
		case "--attach":
			spec.ExpectAttach = true
		case "--wait":
			req.Wait = true
		case "--name":
			spec.Name, err = val(&i, a)
		case "--env":
			v, err = val(&i, a)
			spec.Env = append(spec.Env, v)
		case "--workdir":
			spec.WorkDir, err = val(&i, a)
		case "--restart":
			v, err = val(&i, a)
			spec.Restart = RestartPolicy(v)
		case "--restart-sec":
			if v, err = val(&i, a); err == nil {
				var d time.Duration
				if d, err = time.ParseDuration(v); err != nil {
					err = invalidf("add: --restart-sec %q: %v", v, err)
				}
				spec.RestartSec = Duration(d)
			}
		default:
			if strings.HasPrefix(a, "-") {
				return Request{}, invalidf("add: unknown flag %q; %s", a, addUsage)
			}
			if spec.Path != "" {
				return Request{}, invalidf("add: unexpected argument %q (put program arguments after --); %s", a, addUsage)
			}
			spec.Path = a
		}
		if err != nil {
			return Request{}, err
		}
	}
	if spec.Path == "" {
		return Request{}, invalidf("add: missing PATH; %s", addUsage)
	}
	return req, nil
}

// LegacyTables renders the runtimes of the ls, ps and show replies (the
// daemon passes package format's Table, PS and Show at its clock; wire
// cannot import format, which depends on it).
type LegacyTables interface {
	// List writes the ls table.
	List(w io.Writer, rts []Runtime) error
	// PS writes the ps table.
	PS(w io.Writer, rts []Runtime) error
	// Show writes the detail view of each runtime.
	Show(w io.Writer, rts []Runtime) error
}

// LegacyReply returns the reply code and payload of a legacy request with
// command cmd that got res and err: on error, the class's code and the
// message on one line; for ls, ps and show, the tables; for version, one
// line; for every other command the result's message, ending in a newline
// (empty when there is none). WriteReply frames it.
func LegacyReply(cmd string, res *Result, err error, tables LegacyTables) (byte, []byte) {
	if err != nil {
		return ClassOf(err).Code(), []byte(err.Error() + "\n")
	}
	if res == nil {
		res = &Result{}
	}
	var b bytes.Buffer
	switch cmd {
	case CmdList:
		_ = tables.List(&b, res.Runtimes)
	case CmdPS:
		_ = tables.PS(&b, res.Runtimes)
	case CmdShow:
		_ = tables.Show(&b, res.Runtimes)
	case CmdVersion:
		var v VersionInfo
		if res.Version != nil {
			v = *res.Version
		}
		fmt.Fprintf(&b, "socketley %s (commit %s, built %s)\n", v.Version, v.Commit, v.Date)
	default:
		b.WriteString(res.Message)
		if res.Message != "" && !strings.HasSuffix(res.Message, "\n") {
			b.WriteByte('\n')
		}
	}
	return CodeOK, b.Bytes()
}
