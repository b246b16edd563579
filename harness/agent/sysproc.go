package agent

import (
	"os"
	"syscall"
)

// detachedAttr puts a long-lived helper in its own session so the step that
// started it (and an SSH session around that) can end without taking it.
func detachedAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// Hold blocks until SIGTERM or SIGINT: it is the sandbox's infra ("pause")
// process, or the host process that took a reused PID. It exits on SIGTERM
// so that nothing waits for a kill timeout at shutdown.
func Hold(sig <-chan os.Signal) {
	<-sig
}
