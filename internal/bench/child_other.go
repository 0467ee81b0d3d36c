//go:build !linux

package bench

import "syscall"

// childAttr: only Linux can tie a child's life to its parent's (Pdeathsig).
func childAttr() *syscall.SysProcAttr { return nil }
