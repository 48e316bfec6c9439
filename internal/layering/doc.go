// Package layering holds only tests: they fail when a package imports what
// the dependency direction of DESIGN.md forbids, when a core package (wire,
// swim, store, radix, replica, engine) does I/O, reads the clock, uses the
// global math/rand or starts goroutines, and when production code depends
// on the test machinery in internal/.
package layering
