// Package sandboxinit is what runs inside a sandbox node (see
// harness/sandbox, which starts it): `nodeagent init` as the node's PID 1,
// which makes the node's mounts and reaps its processes, and starts `nodeagent
// serve` (node/execserve), which runs the harness's commands. It is
// node-side code: it imports nothing of the host-side harness.
package sandboxinit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pidreuse/pidreuse/node/agent"
)

// RunInit is PID 1 of a sandbox node. It makes the node's mounts, brings
// its lo up, starts the command server as its only direct child and then
// reaps every process of the node (holders and reused-PID processes are
// orphaned to it) until the server exits.
func RunInit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	hostname := fs.String("hostname", "pidreuse-node", "the node's hostname")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Getpid() != 1 {
		return errors.New("init: must be PID 1 of a new PID namespace (start it through harness/sandbox)")
	}
	if err := setupMounts(); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := unix.Sethostname([]byte(*hostname)); err != nil {
		return fmt.Errorf("init: sethostname: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("init: find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("init: set lo up: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	server, err := os.StartProcess(self, []string{self, "serve"}, &os.ProcAttr{
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Env:   os.Environ(),
	})
	if err != nil {
		return fmt.Errorf("init: start server: %w", err)
	}
	serverPID := server.Pid
	_ = server.Release()
	return reapUntil(serverPID)
}

// setupMounts gives the node its own view: a private mount tree (so nothing
// propagates back to the machine), a /proc for the new PID namespace (so
// /proc/<pid> means a node PID — never one of the real machine's), and a
// fresh tmpfs /run, which a reboot throws away with every pin in it.
func setupMounts() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	// The whole point of the fresh /proc: check it before anything trusts it.
	if self, err := os.Readlink("/proc/self"); err != nil || self != "1" {
		return fmt.Errorf("/proc is not the node's (self=%q, %v)", self, err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=16m"); err != nil {
		return fmt.Errorf("mount /run: %w", err)
	}
	for _, d := range []string{agent.PinDir, filepath.Dir(agent.SandboxBootIDFile)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	bootID := fmt.Sprintf("%s-%s-%s-%s-%s", hex.EncodeToString(id[0:4]), hex.EncodeToString(id[4:6]),
		hex.EncodeToString(id[6:8]), hex.EncodeToString(id[8:10]), hex.EncodeToString(id[10:]))
	return os.WriteFile(agent.SandboxBootIDFile, []byte(bootID+"\n"), 0o644)
}

// reapUntil waits for every child, as a PID 1 must, and returns when the
// server exits; the node's other processes die with the PID namespace.
func reapUntil(serverPID int) error {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("init: wait: %w", err)
		}
		if pid == serverPID {
			if ws.ExitStatus() != 0 {
				return fmt.Errorf("init: server exited with %d", ws.ExitStatus())
			}
			return nil
		}
	}
}
