package libvirt

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCreateRemoveOverlay(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", base, "64M").CombinedOutput(); err != nil {
		t.Fatalf("create base: %v: %s", err, out)
	}
	overlay := filepath.Join(dir, "vm.qcow2")
	if err := CreateOverlay(ctx, base, overlay); err != nil {
		t.Fatal(err)
	}
	info, err := exec.CommandContext(ctx, "qemu-img", "info", overlay).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v: %s", err, info)
	}
	for _, want := range []string{"backing file: " + base, "backing file format: qcow2", "virtual size: 64 MiB"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("overlay info lacks %q:\n%s", want, info)
		}
	}
	if err := CreateOverlay(ctx, base, overlay); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second CreateOverlay on the same path: %v, want an 'already exists' error", err)
	}
	if err := RemoveOverlay(overlay); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(overlay); !os.IsNotExist(err) {
		t.Errorf("overlay still there after RemoveOverlay: %v", err)
	}
	if err := RemoveOverlay(overlay); err != nil {
		t.Errorf("RemoveOverlay of a missing file: %v", err)
	}
	if err := CreateOverlay(ctx, filepath.Join(dir, "nope.qcow2"), overlay); err == nil || !strings.Contains(err.Error(), "base image") {
		t.Errorf("CreateOverlay with a missing base: %v, want a 'base image' error", err)
	}
}
