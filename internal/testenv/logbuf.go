package testenv

import (
	"bytes"
	"sync"
)

// LogBuffer collects a log (a daemon's, a program's stderr) safely for
// concurrent writes, and lets a test wait for the next write instead of
// polling: Next returns the text so far and a channel closed by the next
// Write.
type LogBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed by the next Write; nil until someone waits
}

// Write appends p and wakes the waiters of Next.
func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Next returns the text so far and a channel closed by the next Write.
func (s *LogBuffer) Next() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.b.String(), s.changed
}
