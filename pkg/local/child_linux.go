package local

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill cmd's process when this one dies, so a test binary that
// panics on a timeout leaves no stand-in or bootstrap running. (Linux ties the signal to the
// thread that started the child; the Go runtime keeps its threads unless a goroutine exits
// while locked to one, which nothing here does.)
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
