package libvirt

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pidreuse/pidreuse/internal/flock"
)

func TestReservePort(t *testing.T) {
	PortLockDir = filepath.Join(t.TempDir(), "ports")
	a, err := ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	if a.Port == b.Port {
		t.Fatalf("two leases of port %d", a.Port)
	}
	lockFile := filepath.Join(PortLockDir, strconv.Itoa(a.Port)+".lock")
	if _, err := flock.Try(lockFile); !errors.Is(err, flock.ErrHeld) {
		t.Errorf("a leased port's lock is not held: %v", err)
	}
	// The port itself stays free for QEMU to bind.
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(a.Port))
	if err != nil {
		t.Fatalf("leased port not bindable: %v", err)
	}
	l.Close()
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lockFile); !os.IsNotExist(err) {
		t.Errorf("released port's lock file left: %v", err)
	}
	b.Release()
	b.Release()
	var none *PortLease
	if err := none.Release(); err != nil {
		t.Error(err)
	}
}

func TestIsPortTaken(t *testing.T) {
	// libvirt 9.0 with QEMU 7.2, a second VM on a port already listened on.
	msg := "internal error: qemu unexpectedly closed the monitor: 2026-01-02T03:04:05.000000Z qemu-system-x86_64: -netdev user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22: Could not set up host forwarding rule 'tcp:127.0.0.1:40022-:22'"
	if !IsPortTaken(errors.New(msg)) {
		t.Error("slirp's message not recognised")
	}
	if IsPortTaken(errors.New("Cannot access storage file")) || IsPortTaken(nil) {
		t.Error("other errors taken for a busy port")
	}
}

func TestRemoveStalePortLocks(t *testing.T) {
	PortLockDir = filepath.Join(t.TempDir(), "ports")
	live, err := ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	defer live.Release()
	// What a killed run leaves: a file nobody holds.
	stale := filepath.Join(PortLockDir, "1.lock")
	if err := os.WriteFile(stale, []byte("4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := RemoveStalePortLocks()
	if err != nil || n != 1 {
		t.Fatalf("RemoveStalePortLocks = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale lock file left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(PortLockDir, strconv.Itoa(live.Port)+".lock")); err != nil {
		t.Errorf("a live lease's file was removed: %v", err)
	}
}
