package server

import (
	"bytes"
	"errors"
	"testing"
)

// splitAll feeds data to a splitter in chunks of the given sizes (cycled)
// and returns the messages, the error and the remaining tail.
func splitAll(data []byte, max int, sizes []int) ([][]byte, []byte, error) {
	s := splitter{max: max}
	var out [][]byte
	emit := func(m []byte) bool {
		out = append(out, append([]byte(nil), m...))
		return true
	}
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(sizes) > 0 && sizes[i%len(sizes)] > 0 && sizes[i%len(sizes)] < n {
			n = sizes[i%len(sizes)]
		}
		if err := s.feed(data[:n], emit); err != nil {
			return out, nil, err
		}
		data = data[n:]
	}
	return out, s.rest(), nil
}

func TestSplitter(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		sizes   []int
		want    []string
		rest    string
		wantErr bool
	}{
		{name: "one line", in: "abc\n", max: 10, want: []string{"abc"}},
		{name: "two lines one chunk", in: "a\nbc\n", max: 10, want: []string{"a", "bc"}},
		{name: "split across chunks", in: "hello\nworld\n", max: 10, sizes: []int{3}, want: []string{"hello", "world"}},
		{name: "byte by byte", in: "ab\n\ncd\n", max: 10, sizes: []int{1}, want: []string{"ab", "", "cd"}},
		{name: "empty lines", in: "\n\n", max: 1, want: []string{"", ""}},
		{name: "carriage return kept", in: "a\r\n", max: 10, want: []string{"a\r"}},
		{name: "tail without newline", in: "a\nbcd", max: 10, want: []string{"a"}, rest: "bcd"},
		{name: "exactly max", in: "abcd\n", max: 4, sizes: []int{2}, want: []string{"abcd"}},
		{name: "over max in one chunk", in: "abcde\n", max: 4, wantErr: true},
		{name: "over max across chunks", in: "abcde\n", max: 4, sizes: []int{2}, wantErr: true},
		{name: "over max without newline", in: "abcdefgh", max: 4, sizes: []int{3}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest, err := splitAll([]byte(tt.in), tt.max, tt.sizes)
			if tt.wantErr {
				if !errors.Is(err, errTooLarge) {
					t.Fatalf("got error %v, want errTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Fatalf("message %d: got %q, want %q", i, got[i], tt.want[i])
				}
			}
			if string(rest) != tt.rest {
				t.Errorf("rest: got %q, want %q", rest, tt.rest)
			}
		})
	}
}

func TestSplitterStop(t *testing.T) {
	s := splitter{max: 100}
	n := 0
	err := s.feed([]byte("a\nb\nc\n"), func([]byte) bool { n++; return n < 2 })
	if err != nil || n != 2 {
		t.Fatalf("got %d messages, %v; want 2, nil", n, err)
	}
}

// FuzzFraming checks the splitter against bytes.Split on any input, chunked
// in any way: same messages, same tail, and errTooLarge exactly when a
// message exceeds the limit.
func FuzzFraming(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), uint8(3), uint8(7), uint16(64))
	f.Add([]byte("\n\n\n"), uint8(1), uint8(1), uint16(1))
	f.Add([]byte("no newline at all"), uint8(5), uint8(2), uint16(8))
	f.Add([]byte("a\r\nbb\r\nccc"), uint8(2), uint8(9), uint16(3))
	f.Add(bytes.Repeat([]byte("x"), 300), uint8(17), uint8(255), uint16(299))
	f.Fuzz(func(t *testing.T, data []byte, c1, c2 uint8, max uint16) {
		limit := int(max%512) + 1
		got, rest, err := splitAll(data, limit, []int{int(c1) + 1, int(c2) + 1})

		parts := bytes.Split(data, []byte("\n"))
		wantMsgs, wantRest := parts[:len(parts)-1], parts[len(parts)-1]
		tooLarge := len(wantRest) > limit
		for _, m := range wantMsgs {
			if len(m) > limit {
				tooLarge = true
			}
		}
		if tooLarge {
			if !errors.Is(err, errTooLarge) {
				t.Fatalf("limit %d: got err %v, want errTooLarge", limit, err)
			}
			// Messages before the oversize one must still be right.
			for i, m := range got {
				if !bytes.Equal(m, wantMsgs[i]) {
					t.Fatalf("message %d: got %q, want %q", i, m, wantMsgs[i])
				}
			}
			return
		}
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		if len(got) != len(wantMsgs) {
			t.Fatalf("got %d messages, want %d", len(got), len(wantMsgs))
		}
		for i := range got {
			if !bytes.Equal(got[i], wantMsgs[i]) {
				t.Fatalf("message %d: got %q, want %q", i, got[i], wantMsgs[i])
			}
		}
		if !bytes.Equal(rest, wantRest) && !(len(rest) == 0 && len(wantRest) == 0) {
			t.Fatalf("rest: got %q, want %q", rest, wantRest)
		}
	})
}
