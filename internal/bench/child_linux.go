package bench

import "syscall"

// childAttr makes the kernel stop a node the bench started (SIGTERM) if the bench dies without
// stopping it, killed or crashed, so that no `herald serve` is left behind holding a port and a
// temporary directory.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} }
