// Package layering holds only a test: it fails when a package imports what
// the dependency direction of DESIGN.md forbids.
package layering
