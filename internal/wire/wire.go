// Package wire implements the socketley control-socket protocol shared by the
// daemon, the CLI and the SDK.
//
// The compatibility floor is the line format of the C++ Socketley SDK
// (docs/protocol.md): a request is one line of words separated by spaces
// or tabs, ending in '\n' (a trailing '\r' is dropped); a reply is one byte
// holding the exit code, the payload, and one NUL byte.
//
// Our own clients send the richer form on the same socket: a line that starts
// with '{' holds one JSON [Request]; the reply frame is the same and its
// payload is JSON. Legacy clients never send a line starting with '{'.
package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Reply codes; they are also the CLI's exit codes.
const (
	// CodeOK is success.
	CodeOK byte = 0
	// CodeInvalid is bad input, not found, already exists or denied.
	CodeInvalid byte = 1
	// CodeFatal is an internal, I/O or systemd failure.
	CodeFatal byte = 2
)

// Limits applied by readers of this protocol.
const (
	// MaxLine is the longest request line accepted, newline included.
	MaxLine = 64 << 10
	// MaxTokens is the most words a legacy request line may have.
	MaxTokens = 512
	// MaxNames is the most runtime names and patterns one request may
	// carry (start, stop, restart, remove, show).
	MaxNames = 256
	// MaxPatterns is the most glob patterns among them: each is matched
	// against every registered name.
	MaxPatterns = 32
	// MaxReply is the largest reply payload a client accepts.
	MaxReply = 64 << 20
)

// ErrLineTooLong is returned by [ReadLine] when a line exceeds [MaxLine].
var ErrLineTooLong = errors.New("request line too long")

// ErrTooManyTokens is returned by [Split] when a line has more than [MaxTokens] words.
var ErrTooManyTokens = errors.New("too many words in request")

// ReadLine reads one request line from r without its "\n" or "\r\n". It
// returns io.EOF when r ends before any byte, io.ErrUnexpectedEOF when it ends
// mid-line, and ErrLineTooLong (after discarding nothing further) when the
// line is longer than MaxLine.
func ReadLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLine {
			return "", ErrLineTooLong
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			buf = bytes.TrimSuffix(buf[:len(buf)-1], []byte("\r"))
			return string(buf), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return "", io.EOF
			}
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

// Split breaks a legacy request line into words separated by runs of spaces
// or tabs. There is no quoting, as in the C++ clients.
func Split(line string) ([]string, error) {
	words := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(words) > MaxTokens {
		return nil, ErrTooManyTokens
	}
	return words, nil
}

// WriteReply writes one reply frame: code, payload, NUL. NUL bytes inside
// payload would end the frame early, so they are dropped.
func WriteReply(w io.Writer, code byte, payload []byte) error {
	frame := make([]byte, 0, len(payload)+2)
	frame = append(frame, code)
	for _, b := range payload {
		if b != 0 {
			frame = append(frame, b)
		}
	}
	frame = append(frame, 0)
	_, err := w.Write(frame)
	return err
}

// ReadReply reads one reply frame and returns its code and payload.
func ReadReply(r *bufio.Reader) (byte, []byte, error) {
	code, err := r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("read reply: connection closed before a reply: %w", io.ErrUnexpectedEOF)
		}
		return 0, nil, fmt.Errorf("read reply: %w", err)
	}
	var payload []byte
	for {
		chunk, err := r.ReadSlice(0)
		if len(payload)+len(chunk) > MaxReply {
			return 0, nil, fmt.Errorf("read reply: payload larger than %d bytes", MaxReply)
		}
		payload = append(payload, chunk...)
		switch {
		case err == nil:
			return code, payload[:len(payload)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return 0, nil, fmt.Errorf("read reply: connection closed mid-reply: %w", io.ErrUnexpectedEOF)
		default:
			return 0, nil, fmt.Errorf("read reply: %w", err)
		}
	}
}
