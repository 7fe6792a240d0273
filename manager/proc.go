package manager

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// procStartTime returns the start time of pid in clock ticks since boot
// (field 22 of /proc/PID/stat). Together with the pid it identifies one
// process: a reused pid has a different start time.
func procStartTime(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// procStat returns the state letter (field 3) and the start time (field 22)
// of pid.
func procStat(pid int) (byte, uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// comm (field 2) may contain spaces and parentheses: skip past the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	return fields[0][0], start, err
}

// sameProcess reports whether pid is still the live process that had
// startTime. A zombie (exited, not yet reaped by its parent) is not alive.
func sameProcess(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	state, st, err := procStat(pid)
	return err == nil && st == startTime && state != 'Z' && state != 'X'
}
