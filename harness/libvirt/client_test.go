package libvirt

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConnectMissingSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sock := filepath.Join(t.TempDir(), "libvirt-sock")
	_, err := Connect(ctx, sock)
	if err == nil {
		t.Fatal("Connect to a missing socket succeeded")
	}
	want := "libvirtd not reachable at " + sock + ": run `make deps`"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestConnectRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sock := filepath.Join(t.TempDir(), "libvirt-sock")
	// A socket file nobody listens on: what a crashed libvirtd leaves.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	_, err = Connect(ctx, sock)
	if err == nil {
		t.Fatal("Connect to a dead socket succeeded")
	}
	if !strings.Contains(err.Error(), "libvirtd not reachable at "+sock) || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("error %q does not say libvirtd is not reachable and what to do", err)
	}
}
