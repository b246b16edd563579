package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/pidreuse/pidreuse/internal/command"
)

// FreeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago. The listener is closed before QEMU binds the port, so another process
// can take it in between; QEMU then fails to start with "Could not set up
// host forwarding rule" and the caller picks a new port and redefines.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w (is the loopback interface up?)", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("release probe listener on 127.0.0.1:%d: %w", port, err)
	}
	return port, nil
}

// CreateOverlay creates overlay as a qcow2 image backed by base, so every VM
// writes to its own throw-away layer and base stays pristine. The overlay
// inherits base's virtual size. base is referenced by absolute path so the
// overlay does not depend on the directory libvirtd runs in.
func CreateOverlay(ctx context.Context, base, overlay string) error {
	absBase, err := filepath.Abs(base)
	if err != nil {
		return fmt.Errorf("resolve base image path %q: %w", base, err)
	}
	if _, err := os.Stat(absBase); err != nil {
		return fmt.Errorf("base image %s: %w (build it with `make images`)", absBase, err)
	}
	if _, err := os.Stat(overlay); err == nil {
		return fmt.Errorf("overlay %s already exists: remove it (RemoveOverlay) or pick another path", overlay)
	}
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return fmt.Errorf("qemu-img not found in PATH: run `make deps` (Debian package qemu-utils): %w", err)
	}
	// -F names the backing format explicitly: libvirt refuses to probe
	// it (a guest could otherwise make a raw image look like qcow2).
	cmd := exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", absBase, overlay)
	if err := command.Run(ctx, cmd); err != nil {
		return fmt.Errorf("overlay %s: %w", overlay, err)
	}
	return nil
}

// RemoveOverlay deletes an overlay made by CreateOverlay. A missing file is
// not an error, so cleanup can run more than once.
func RemoveOverlay(overlay string) error {
	if err := os.Remove(overlay); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove overlay %s: %w", overlay, err)
	}
	return nil
}
