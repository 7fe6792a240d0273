// Package deps holds the test that guards the package graph (deps_test.go):
// which of our packages may import which. It has no code of its own.
package deps
