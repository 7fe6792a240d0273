package units

import (
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

func TestSocketServiceProperties(t *testing.T) {
	spec := Spec{Name: "x", Path: "/bin/true", Restart: wire.RestartNo, StartLimitBurst: 1, StartLimitInterval: 10e9}
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
