// Command stuckdel is a loopback CNI plugin whose DEL never returns: it
// runs Debian's loopback for every other command, and on DEL starts a child
// that shares its stdout and then sleeps for ever. Built by the CLI's tests
// to show a stuck step ends the run as "timed out", 125, nothing left
// running.
package main

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

const realLoopback = "/usr/lib/cni/loopback"

func main() {
	if os.Getenv("CNI_COMMAND") != "DEL" {
		if err := syscall.Exec(realLoopback, os.Args, os.Environ()); err != nil {
			os.Stderr.WriteString("stuckdel: " + err.Error() + "\n")
			os.Exit(1)
		}
	}
	child := exec.Command("sleep", "3600")
	// Named after this plugin's own path, so a test finds the child of
	// its plugin and not one of another run on the machine.
	child.Args[0] = os.Args[0] + "-sleep"
	child.Stdout = os.Stdout
	_ = child.Start()
	time.Sleep(24 * time.Hour)
}
