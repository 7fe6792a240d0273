package manager

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/socketley/socketley/internal/format"
	"github.com/socketley/socketley/internal/wire"
)

// parseLegacy turns a line-format request (the C++ SDK's) into a Request.
// Unknown commands and flags are errors, never silently ignored.
func parseLegacy(line string) (wire.Request, error) {
	words, err := wire.Split(line)
	if err != nil {
		return wire.Request{}, errorf(ErrInvalid, "%v (at most %d)", err, wire.MaxTokens)
	}
	if len(words) == 0 {
		return wire.Request{}, errorf(ErrInvalid, "empty request")
	}
	cmd, args := words[0], words[1:]
	switch cmd {
	case wire.CmdList, wire.CmdPS, wire.CmdStats, wire.CmdVersion:
		if len(args) > 0 {
			return wire.Request{}, errorf(ErrInvalid, "%s takes no arguments, got %q", cmd, strings.Join(args, " "))
		}
		return wire.Request{Cmd: cmd}, nil
	case wire.CmdStart, wire.CmdStop, wire.CmdRestart, wire.CmdRemove, wire.CmdShow:
		req := wire.Request{Cmd: cmd}
		for _, a := range args {
			switch {
			case a == "--wait" && (cmd == wire.CmdStart || cmd == wire.CmdRestart):
				req.Wait = true
			case strings.HasPrefix(a, "-"):
				return wire.Request{}, errorf(ErrInvalid, "%s: unknown flag %q", cmd, a)
			default:
				req.Names = append(req.Names, a)
			}
		}
		if len(req.Names) == 0 {
			return wire.Request{}, errorf(ErrInvalid, "usage: %s NAME|PATTERN...", cmd)
		}
		return req, nil
	case wire.CmdAttach:
		return parseLegacyAttach(args)
	case wire.CmdAdd:
		return parseLegacyAdd(args)
	}
	return wire.Request{}, errorf(ErrInvalid, "unknown command %q (commands: add, start, stop, restart, remove, ls, ps, show, attach, stats, version)", cmd)
}

const attachUsage = "usage: attach TYPE NAME PORT --pid PID [--managed]"

func parseLegacyAttach(args []string) (wire.Request, error) {
	var pos []string
	spec := &wire.AttachSpec{}
	pidSet := false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--managed":
			spec.Managed = true
		case "--pid":
			if i+1 >= len(args) {
				return wire.Request{}, errorf(ErrInvalid, "attach: --pid needs a value; %s", attachUsage)
			}
			i++
			p, err := strconv.Atoi(args[i])
			if err != nil {
				return wire.Request{}, errorf(ErrInvalid, "attach: bad pid %q", args[i])
			}
			spec.PID, pidSet = p, true
		default:
			if strings.HasPrefix(a, "-") {
				return wire.Request{}, errorf(ErrInvalid, "attach: unknown flag %q; %s", a, attachUsage)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) != 3 {
		return wire.Request{}, errorf(ErrInvalid, "attach: want TYPE NAME PORT, got %d words; %s", len(pos), attachUsage)
	}
	if !pidSet {
		return wire.Request{}, errorf(ErrInvalid, "attach: --pid is required; %s", attachUsage)
	}
	port, err := strconv.Atoi(pos[2])
	if err != nil {
		return wire.Request{}, errorf(ErrInvalid, "attach: port %q is not a number (1-65535)", pos[2])
	}
	spec.Type, spec.Name, spec.Port = pos[0], pos[1], port
	return wire.Request{Cmd: wire.CmdAttach, Attach: spec}, nil
}

const addUsage = "usage: add /ABS/PATH [--name N] [-s|--start] [--env K=V]... [--workdir DIR] [--restart on-failure|always|no] [--restart-sec DUR] [--attach] [-- ARGS...]"

func parseLegacyAdd(args []string) (wire.Request, error) {
	spec := &wire.AddSpec{}
	req := wire.Request{Cmd: wire.CmdAdd, Add: spec}
	val := func(i *int, flag string) (string, error) {
		if *i+1 >= len(args) {
			return "", errorf(ErrInvalid, "add: %s needs a value; %s", flag, addUsage)
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
			spec.Restart, err = val(&i, a)
		case "--restart-sec":
			if v, err = val(&i, a); err == nil {
				var d time.Duration
				if d, err = time.ParseDuration(v); err != nil {
					err = errorf(ErrInvalid, "add: --restart-sec %q: %v", v, err)
				}
				spec.RestartSec = wire.Duration(d)
			}
		default:
			if strings.HasPrefix(a, "-") {
				return wire.Request{}, errorf(ErrInvalid, "add: unknown flag %q; %s", a, addUsage)
			}
			if spec.Path != "" {
				return wire.Request{}, errorf(ErrInvalid, "add: unexpected argument %q (put program arguments after --); %s", a, addUsage)
			}
			spec.Path = a
		}
		if err != nil {
			return wire.Request{}, err
		}
	}
	if spec.Path == "" {
		return wire.Request{}, errorf(ErrInvalid, "add: missing PATH; %s", addUsage)
	}
	return req, nil
}

// legacyNow is the clock of the legacy replies' tables (uptimes, "ago"):
// the golden test (legacy_golden_test.go) fixes it.
var legacyNow = time.Now

// textReply renders a result for a line-format client.
func textReply(req wire.Request, res *wire.Result, err error) (byte, []byte) {
	if err != nil {
		return replyCode(err), []byte(err.Error() + "\n")
	}
	var b bytes.Buffer
	now := legacyNow()
	switch req.Cmd {
	case wire.CmdList:
		_ = format.Table(&b, res.Runtimes, now)
	case wire.CmdPS:
		_ = format.PS(&b, res.Runtimes, now)
	case wire.CmdShow:
		_ = format.Show(&b, res.Runtimes, now)
	case wire.CmdVersion:
		fmt.Fprintf(&b, "socketley %s (commit %s, built %s)\n", res.Version.Version, res.Version.Commit, res.Version.Date)
	default:
		b.WriteString(res.Message)
		if res.Message != "" && !strings.HasSuffix(res.Message, "\n") {
			b.WriteByte('\n')
		}
	}
	return wire.CodeOK, b.Bytes()
}
