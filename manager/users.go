package manager

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"os/user"
	"strings"
	"time"
)

// socketley is built without cgo (a static binary starts in about half the
// time, which every CLI command pays), so os/user reads /etc/passwd and
// /etc/group only. Users and groups from other NSS sources (LDAP, sssd,
// systemd-homed) are then looked up with getent(1), which asks NSS.

// getentTimeout bounds one getent call (a slow directory server must not
// hold a request for long).
const getentTimeout = 5 * time.Second

// lookupUser finds a user by name.
func lookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err == nil || !errors.As(err, new(user.UnknownUserError)) {
		return u, err
	}
	if f, ok := getent("passwd", name); ok && len(f) >= 7 && f[0] == name {
		return &user.User{Username: f[0], Uid: f[2], Gid: f[3], Name: f[4], HomeDir: f[5]}, nil
	}
	return nil, err
}

// lookupUserID finds a user by uid.
func lookupUserID(uid string) (*user.User, error) {
	u, err := user.LookupId(uid)
	if err == nil || !errors.As(err, new(user.UnknownUserIdError)) {
		return u, err
	}
	if f, ok := getent("passwd", uid); ok && len(f) >= 7 && f[2] == uid {
		return &user.User{Username: f[0], Uid: f[2], Gid: f[3], Name: f[4], HomeDir: f[5]}, nil
	}
	return nil, err
}

// lookupGroup finds a group by name.
func lookupGroup(name string) (*user.Group, error) {
	g, err := user.LookupGroup(name)
	if err == nil || !errors.As(err, new(user.UnknownGroupError)) {
		return g, err
	}
	if f, ok := getent("group", name); ok && len(f) >= 3 && f[0] == name {
		return &user.Group{Name: f[0], Gid: f[2]}, nil
	}
	return nil, err
}

// getent returns the colon-separated fields of key's entry in database
// (passwd, group) as NSS has it; false when there is none or getent is
// missing.
func getent(database, key string) ([]string, bool) {
	if key == "" || strings.ContainsAny(key, ":\n") || strings.HasPrefix(key, "-") {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), getentTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "getent", database, key).Output()
	if err != nil {
		return nil, false
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	return strings.Split(string(line), ":"), true
}
