//go:build linux && !amd64 && !arm64

package faults

// sysSetns is unknown on this architecture: setns fails and the partition
// tests report it.
const sysSetns = ^uintptr(0)
