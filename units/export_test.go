package units

// SetPrivateFill turns the initial fill over systemd's private socket on or
// off (for tests of the fill over the bus); it returns the previous setting.
func SetPrivateFill(on bool) bool {
	return !noPrivateFill.Swap(!on)
}

// PrivateFills returns how many fills were done over the private socket.
func PrivateFills() int64 { return privateFills.Load() }
