package libvirt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pidreuse/pidreuse/internal/flock"
)

// PortLockDir is where pidreuse processes on this machine mark the SSH
// forward ports their VMs use, one lock file per port. A variable so
// tests can use their own.
var PortLockDir = "/run/pidreuse/ports"

// ErrPortTaken is wrapped by Start's error when QEMU could not bind the
// SSH forward: another process took the port since it was picked. The
// caller picks a new port, redefines and starts again.
var ErrPortTaken = errors.New("the SSH forward port was taken")

// IsPortTaken says whether a start error is QEMU failing to bind its
// host forward (slirp's "Could not set up host forwarding rule").
func IsPortTaken(err error) bool {
	return err != nil && (errors.Is(err, ErrPortTaken) || strings.Contains(err.Error(), "host forwarding rule"))
}

// PortLease is a loopback port this process holds for a VM's SSH forward.
type PortLease struct {
	Port int
	lock *flock.Lock
}

// Release gives the port back. Safe on nil and more than once.
func (p *PortLease) Release() error {
	if p == nil {
		return nil
	}
	return p.lock.ReleaseAndRemove()
}

// ReservePort picks a free TCP port on 127.0.0.1 and locks it for this
// process, so no other pidreuse process on the machine hands it to a VM
// while this one holds it: not between the pick and QEMU's bind, and not
// while the domain is shut off between the two halves of a destroy+start
// reboot, when nothing listens on it. A process outside pidreuse may
// still take it in those windows: QEMU then fails to start (ErrPortTaken)
// and the caller reserves another.
func ReservePort() (*PortLease, error) {
	if err := os.MkdirAll(PortLockDir, 0o755); err != nil {
		return nil, fmt.Errorf("port locks: %w", err)
	}
	var lastErr error
	for range 20 {
		port, err := FreeLoopbackPort()
		if err != nil {
			return nil, err
		}
		l, err := flock.Try(filepath.Join(PortLockDir, strconv.Itoa(port)+".lock"))
		if errors.Is(err, flock.ErrHeld) {
			// Free now, but another run's VM is between its pick and its
			// bind, or between its destroy and its start.
			lastErr = err
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reserve port %d: %w", port, err)
		}
		return &PortLease{Port: port, lock: l}, nil
	}
	return nil, fmt.Errorf("reserve a loopback port: every one tried is held by another run: %w", lastErr)
}

// RemoveStalePortLocks removes the port lock files no live process holds:
// a run that was killed leaves its lease's file behind (harmless, the
// next Try takes it, but one more per kill). Safe while other processes
// lease ports: a file is removed only while this process holds its lock.
func RemoveStalePortLocks() (int, error) {
	files, err := filepath.Glob(filepath.Join(PortLockDir, "*.lock"))
	if err != nil {
		return 0, fmt.Errorf("port locks: %w", err)
	}
	removed := 0
	var errs []error
	for _, p := range files {
		l, err := flock.Try(p)
		if errors.Is(err, flock.ErrHeld) {
			continue // a live VM's
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := l.ReleaseAndRemove(); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}
