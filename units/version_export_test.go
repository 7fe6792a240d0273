package units

// ForceVersion makes w take its manager for the given major version from
// now on (the paths gated on the version that a running Watch takes, see
// settleAll), to test a version-gated path against another systemd.
func (w *Watch) ForceVersion(v int) { w.version.Store(int64(v)) }
