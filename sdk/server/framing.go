package server

import (
	"bytes"
	"errors"
)

// errTooLarge is returned by splitter.feed when a message exceeds the limit.
var errTooLarge = errors.New("message too large")

// shrinkCap is the capacity above which per-connection buffers are released
// after use instead of kept for the next message.
const shrinkCap = 64 << 10

// pauseMax is the default level of queued output above which the server
// stops reading from a connection until the queue drains to half of it. A
// request/response peer that sends faster than it reads is slowed down by
// TCP instead of being closed as a slow consumer.
const pauseMax = 64 << 10

// splitter cuts a byte stream into newline-terminated messages without the
// newline. Complete lines inside one chunk are passed to emit without a
// copy; only a line split across chunks is assembled in partial, which never
// grows past max bytes.
type splitter struct {
	max     int
	partial []byte
}

// feed passes each complete message in data to emit, in order, and keeps an
// incomplete tail for the next call. emit's slice is valid only during the
// call. emit returns false to stop early (the rest of data is dropped). feed
// returns errTooLarge, and stops, when a message is longer than max.
func (s *splitter) feed(data []byte, emit func([]byte) bool) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(s.partial)+len(data) > s.max {
				s.reset()
				return errTooLarge
			}
			s.partial = append(s.partial, data...)
			return nil
		}
		line := data[:i]
		data = data[i+1:]
		assembled := len(s.partial) > 0
		if assembled {
			if len(s.partial)+len(line) > s.max {
				s.reset()
				return errTooLarge
			}
			s.partial = append(s.partial, line...)
			line = s.partial
		} else if len(line) > s.max {
			return errTooLarge
		}
		ok := emit(line)
		if assembled {
			s.partial = s.partial[:0]
			if cap(s.partial) > shrinkCap {
				s.partial = nil
			}
		}
		if !ok {
			return nil
		}
	}
	return nil
}

// rest returns the incomplete tail (the final message of a stream that
// ended without '\n') and forgets it; nil when there is none.
func (s *splitter) rest() []byte {
	if len(s.partial) == 0 {
		return nil
	}
	r := s.partial
	s.partial = nil
	return r
}

func (s *splitter) reset() { s.partial = nil }
