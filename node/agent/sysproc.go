package agent

import (
	"fmt"
	"os"
	"syscall"
)

// spawn starts argv detached (its own session, stdio on /dev/null) so it
// outlives the step, and an SSH session around it; the node's init (or
// systemd) reaps it.
func spawn(argv []string, cloneflags uintptr) (int, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	null := devnull.Fd()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{null, null, null},
		Sys:   &syscall.SysProcAttr{Setsid: true, Cloneflags: cloneflags},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	return pid, nil
}
