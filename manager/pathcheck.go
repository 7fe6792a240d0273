package manager

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Permission bits asked of lookupAs, in the "other" position.
const (
	permRead   = 0o4
	permExec   = 0o1
	permSearch = 0o1
)

// errUnreachable is lookupAs's answer for a path that does not exist and
// for one the caller may not reach alike, so that the root daemon is no
// file-existence oracle.
var errUnreachable = errors.New("unreachable")

// maxSymlinks bounds the symbolic links followed in one lookup (the
// kernel's limit is 40).
const maxSymlinks = 40

// mayAccess reports whether caller has the permission bits want (rwx as
// 4/2/1) on a file with mode, owner uid and group gid, by the classic
// owner/group/other rule (ACLs are not consulted). Root may do everything
// except execute a file without any x bit, as the kernel decides.
func mayAccess(caller Caller, mode fs.FileMode, uid, gid uint32, want fs.FileMode) bool {
	perm := mode.Perm()
	if caller.root() {
		if want&permExec != 0 && !mode.IsDir() {
			return perm&0o111 != 0
		}
		return true
	}
	var bits fs.FileMode
	switch {
	case int(uid) == caller.UID:
		bits = perm >> 6
	case int(gid) == caller.GID || slices.Contains(caller.Groups, int(gid)):
		bits = perm >> 3
	default:
		bits = perm
	}
	return bits&7&want == want
}

// lookupAs resolves path as caller would: every directory on the way,
// including those reached through symbolic links, must be searchable by
// caller. It returns the final file's information (symbolic links
// followed). A path that does not exist and one caller may not reach both
// give errUnreachable; only errors that caller could provoke by itself are
// told apart.
func lookupAs(caller Caller, path string) (fs.FileInfo, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s is not absolute", path)
	}
	rest := strings.Split(strings.TrimPrefix(filepath.Clean(path), "/"), "/")
	cur := "/"
	links := 0
	for len(rest) > 0 {
		comp := rest[0]
		rest = rest[1:]
		if comp == "" || comp == "." {
			continue
		}
		dir, err := os.Stat(cur)
		if err != nil || !dir.IsDir() {
			return nil, errUnreachable
		}
		if st, ok := dir.Sys().(*syscall.Stat_t); !ok || !mayAccess(caller, dir.Mode(), st.Uid, st.Gid, permSearch) {
			return nil, errUnreachable
		}
		if comp == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, comp)
		fi, err := os.Lstat(next)
		if err != nil {
			return nil, errUnreachable
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		links++
		if links > maxSymlinks {
			return nil, errUnreachable
		}
		target, err := os.Readlink(next)
		if err != nil {
			return nil, errUnreachable
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	fi, err := os.Stat(cur)
	if err != nil {
		return nil, errUnreachable
	}
	return fi, nil
}

// statAs is os.Stat for caller: root's lookups are the daemon's own
// (errors as os.Stat gives them); anyone else's go through lookupAs.
func statAs(caller Caller, path string) (fs.FileInfo, error) {
	if caller.root() {
		return os.Stat(path)
	}
	return lookupAs(caller, path)
}

// ownerGroup returns the owner and group of fi.
func ownerGroup(fi fs.FileInfo) (uint32, uint32) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid
	}
	return 0, 0
}
