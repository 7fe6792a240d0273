package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// ErrStreamEnded is returned by Follow when the daemon closed the stream
// (it shut down or restarted).
var ErrStreamEnded = errors.New("the socketley daemon ended the event stream")

// Follow sends an events request with Follow set, passes the reply (the
// events so far) to first, then each new event to each, until ctx ends
// (nil is returned then), the daemon ends the stream (ErrStreamEnded, or
// the *ReplyError of its last frame), or a callback fails. The connection
// stays open the whole time: the daemon writes one reply frame per event
// (docs/protocol.md). The first reply must come within DefaultTimeout.
func (c *Client) Follow(ctx context.Context, req wire.Request, first func(*wire.Result) error, each func(wire.Event) error) error {
	req.Cmd, req.Follow = wire.CmdEvents, true
	if req.Version == "" {
		req.Version = c.Version
	}
	b, err := req.AppendJSON(make([]byte, 0, 256))
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	conn, err := c.dial(dctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(DefaultTimeout))
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send request to %s: %w", c.Socket, err)
	}
	r := bufio.NewReader(conn)
	code, payload, err := wire.ReadReply(r)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("request to %s: %w", c.Socket, err)
	}
	var res wire.Result
	if err := json.Unmarshal(payload, &res); err != nil {
		if code != 0 {
			return &ReplyError{Code: int(code), Message: strings.TrimSpace(string(payload))}
		}
		return fmt.Errorf("decode reply from %s: %w", c.Socket, err)
	}
	if code != 0 {
		return &ReplyError{Code: int(code), Message: res.Error, Class: res.Class}
	}
	if err := first(&res); err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Time{})
	if ctx.Err() != nil {
		// Canceled while first ran: the cancel's deadline was just cleared.
		return nil
	}
	for {
		code, payload, err := wire.ReadReply(r)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, io.ErrUnexpectedEOF):
			return ErrStreamEnded
		case err != nil:
			return fmt.Errorf("event stream from %s: %w", c.Socket, err)
		case code != 0:
			var res wire.Result
			if json.Unmarshal(payload, &res) != nil || res.Error == "" {
				return &ReplyError{Code: int(code), Message: strings.TrimSpace(string(payload))}
			}
			return &ReplyError{Code: int(code), Message: res.Error, Class: res.Class}
		}
		var ev wire.Event
		if err := json.Unmarshal(payload, &ev); err != nil {
			return fmt.Errorf("decode event from %s: %w", c.Socket, err)
		}
		if err := each(ev); err != nil {
			return err
		}
	}
}
