//go:build libvirt

package libvirt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// blankOverlay makes a test's VM disk: an overlay over a blank 16 MiB
// base (the guest sits in SeaBIOS), in a dir removed at the test's end,
// and a domain name for it. t.TempDir's parents are 0700; QEMU runs as
// libvirt-qemu and must reach the disk, so the dir is world-traversable.
func blankOverlay(t *testing.T, ctx context.Context) (dir, overlay, name string) {
	t.Helper()
	dir, err := os.MkdirTemp("", testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base.qcow2")
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", base, "16M").CombinedOutput(); err != nil {
		t.Fatalf("create blank base image: %v: %s", err, out)
	}
	overlay = filepath.Join(dir, "vm.qcow2")
	if err := CreateOverlay(ctx, base, overlay); err != nil {
		t.Fatal(err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	return dir, overlay, testPrefix + hex.EncodeToString(rnd[:])
}
