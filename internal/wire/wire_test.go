package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		err  error
	}{
		{"one", "ls\n", []string{"ls"}, io.EOF},
		{"crlf", "ls\r\nps\n", []string{"ls", "ps"}, io.EOF},
		{"partial", "ls", nil, io.ErrUnexpectedEOF},
		{"empty", "", nil, io.EOF},
		{"long ok", strings.Repeat("a", MaxLine-1) + "\n", []string{strings.Repeat("a", MaxLine-1)}, io.EOF},
		{"too long", strings.Repeat("a", MaxLine+1) + "\n", nil, ErrLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			var got []string
			var err error
			for {
				var l string
				l, err = ReadLine(r)
				if err != nil {
					break
				}
				got = append(got, l)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("got %d lines, want %d", len(got), len(tt.want))
			}
		})
	}
}

func TestSplit(t *testing.T) {
	got, err := Split("  attach\tserver   x 1 --pid 2 ")
	if err != nil || strings.Join(got, ",") != "attach,server,x,1,--pid,2" {
		t.Fatalf("got %q %v", got, err)
	}
	if _, err := Split(strings.Repeat("a ", MaxTokens+1)); !errors.Is(err, ErrTooManyTokens) {
		t.Fatalf("got %v, want ErrTooManyTokens", err)
	}
}

func TestReplyFrame(t *testing.T) {
	var b bytes.Buffer
	if err := WriteReply(&b, CodeInvalid, []byte("bad\x00input\n")); err != nil {
		t.Fatal(err)
	}
	// Golden: what the C++ clients read — code byte, text, one NUL.
	if want := "\x01badinput\n\x00"; b.String() != want {
		t.Fatalf("frame %q, want %q", b.String(), want)
	}
	code, payload, err := ReadReply(bufio.NewReader(&b))
	if err != nil || code != CodeInvalid || string(payload) != "badinput\n" {
		t.Fatalf("got %d %q %v", code, payload, err)
	}
	if _, _, err := ReadReply(bufio.NewReader(strings.NewReader("\x00half"))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated reply: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"web", true}, {"a", true}, {"9lives", true}, {"my-app_1.2", true}, {"A1.b_c-d", true},
		{strings.Repeat("a", 64), true}, {strings.Repeat("a", 65), false},
		{"", false}, {"-web", false}, {".hidden", false}, {"_x", false},
		{"has space", false}, {"a/b", false}, {"ünï", false}, {"x@y", false}, {"a\\x2d", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrInvalid) || ClassOf(err) != ClassInvalid {
				t.Errorf("error %v is not of class invalid", err)
			}
			if !strings.Contains(err.Error(), "1-64") {
				t.Errorf("CheckName(%q) = %v, want the rule in the message", tt.name, err)
			}
		})
	}
}
