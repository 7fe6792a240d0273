package sdk

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

// TestAddResolvesRelativePaths: the daemon runs elsewhere, so Client.Add
// sends absolute paths, resolved against the caller's working directory.
func TestAddResolvesRelativePaths(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		path, workDir     string
		wantPath, wantDir string
		cred, wantCred    string
	}{
		{"relative path", "bin/svc", "", filepath.Join(wd, "bin/svc"), "", "", ""},
		{"dot path", "./svc", "", filepath.Join(wd, "svc"), "", "", ""},
		{"relative work dir", "/usr/bin/true", "data", "/usr/bin/true", filepath.Join(wd, "data"), "", ""},
		{"absolute kept", "/usr/bin/true", "/tmp", "/usr/bin/true", "/tmp", "/etc/k", "/etc/k"},
		{"relative credential", "/usr/bin/true", "", "/usr/bin/true", "", "secrets/k", filepath.Join(wd, "secrets/k")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t, func(string) (byte, string) {
				return 0, `{"runtimes":[{"name":"svc","status":"created","pid":0,"restarts":0,"owner_uid":0}]}`
			})
			spec := AddSpec{Name: "svc", Path: tt.path, WorkDir: tt.workDir}
			if tt.cred != "" {
				spec.Credentials = []Credential{{ID: "k", Path: tt.cred}}
				spec.EnvFiles = []string{tt.cred}
			}
			if _, err := NewClient(d.path).Add(t.Context(), spec, StartOptions{}); err != nil {
				t.Fatal(err)
			}
			var req wire.Request
			if err := json.Unmarshal([]byte(d.next(t)), &req); err != nil {
				t.Fatal(err)
			}
			if req.Add == nil || req.Add.Path != tt.wantPath || req.Add.WorkDir != tt.wantDir {
				t.Fatalf("sent %+v, want path %q and work dir %q", req.Add, tt.wantPath, tt.wantDir)
			}
			if tt.cred != "" && (len(req.Add.Credentials) != 1 || req.Add.Credentials[0].Path != tt.wantCred) {
				t.Fatalf("sent credentials %+v, want the path %q", req.Add.Credentials, tt.wantCred)
			}
			if tt.cred != "" && (len(req.Add.EnvFiles) != 1 || req.Add.EnvFiles[0] != tt.wantCred) {
				t.Fatalf("sent env files %q, want %q", req.Add.EnvFiles, tt.wantCred)
			}
			if tt.cred != "" && (spec.Credentials[0].Path != tt.cred || spec.EnvFiles[0] != tt.cred) {
				t.Fatalf("the caller's spec was changed: %+v", spec.Credentials)
			}
		})
	}
}
