//go:build !linux

package bench

import "os/exec"

// RaiseFileLimit is a no-op outside Linux; it reports no limit.
func RaiseFileLimit() (uint64, error) { return 0, nil }

func dieWithParent(*exec.Cmd) {}
