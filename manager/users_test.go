package manager

import (
	"os/exec"
	"testing"
)

// TestLookups: users and groups of /etc/passwd and /etc/group resolve by
// name and id; unknown ones fail with os/user's errors; getent refuses keys
// that could be read as options or several fields.
func TestLookups(t *testing.T) {
	if u, err := lookupUser("root"); err != nil || u.Uid != "0" {
		t.Fatalf("lookupUser(root) = %+v, %v", u, err)
	}
	if u, err := lookupUserID("0"); err != nil || u.Username != "root" {
		t.Fatalf("lookupUserID(0) = %+v, %v", u, err)
	}
	if g, err := lookupGroup("root"); err != nil || g.Gid != "0" {
		t.Fatalf("lookupGroup(root) = %+v, %v", g, err)
	}
	if _, err := lookupUser("no-such-user-socketley"); err == nil {
		t.Fatal("an unknown user was found")
	}
	if _, err := lookupGroup("no-such-group-socketley"); err == nil {
		t.Fatal("an unknown group was found")
	}
	for _, key := range []string{"", "-s", "a:b", "a\nroot"} {
		if f, ok := getent("passwd", key); ok {
			t.Errorf("getent(passwd, %q) = %q, want a refusal", key, f)
		}
	}
	if _, err := exec.LookPath("getent"); err == nil {
		if f, ok := getent("passwd", "root"); !ok || f[2] != "0" {
			t.Errorf("getent(passwd, root) = %q, %v", f, ok)
		}
	}
}
