package units

import (
	"errors"
	"testing"
)

func TestNormalizeListen(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{in: "8080", want: "8080"},
		{in: "127.0.0.1:8080", want: "127.0.0.1:8080"},
		{in: "[::1]:8080", want: "[::1]:8080"},
		{in: "0.0.0.0:1", want: "0.0.0.0:1"},
		{in: "65535", want: "65535"},
		{in: "0", bad: true},
		{in: "65536", bad: true},
		{in: "-1", bad: true},
		{in: "http", bad: true},
		{in: "08080", bad: true},
		{in: ":8080", bad: true},
		{in: "localhost:8080", bad: true},
		{in: "127.0.0.1", bad: true},
		{in: "127.0.0.1:", bad: true},
		{in: "::1:8080", bad: true},
		{in: "[fe80::1%eth0]:80", bad: true},
		{in: "", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeListen(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("NormalizeListen(%q) = %q, %v; want ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeListen(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestSocketServiceProperties(t *testing.T) {
	spec := Spec{Name: "x", Path: "/bin/true", Restart: RestartNo, StartLimitBurst: 1, StartLimitInterval: 10e9}
	props, err := socketServiceProperties(spec, User)
	if err != nil {
		t.Fatal(err)
	}
	var limits []string
	for _, p := range props {
		if p.Name == "StartLimitBurst" || p.Name == "StartLimitIntervalUSec" {
			limits = append(limits, p.Name+"="+p.Value.String())
		}
	}
	if len(limits) != 1 || limits[0] != "StartLimitIntervalUSec=@t 0" {
		t.Fatalf("start limit properties %v, want only StartLimitIntervalUSec=0", limits)
	}
}
