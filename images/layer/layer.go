// Package layer puts a run's own binaries — a CRI-O, kubelet or pinns
// build under test, a CNI plugin dir — into a VM without rebuilding the
// node image. They go into a small read-only ext4 disk (made with
// `mke2fs -d`, no loop mount, in well under a second) that the VM gets as
// a second virtio disk. At boot, before sshd, CRI-O and kubelet start, the
// image's pidreuse-layer.service mounts it and lays it over the image's
// directories with read-only overlayfs mounts: the binary under test wins,
// everything else is the cached base. A bisect step therefore costs a boot,
// never an image build.
package layer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/elfcheck"
	"github.com/pidreuse/pidreuse/internal/fileutil"
)

// Guest side of the layer; the image's configure stage writes Unit and
// Script, and the VM passes CmdlineFlag when it attaches a layer.
const (
	// Serial names the layer disk; udev links it as DevicePath.
	Serial     = "pidreuse-layer"
	DevicePath = "/dev/disk/by-id/virtio-" + Serial
	// CmdlineFlag on the kernel command line makes the unit run; without
	// it the unit is skipped, so a VM without a layer does not wait for a
	// disk that never comes.
	CmdlineFlag = "pidreuse.layer"
	// GuestMount is where the layer disk is mounted in the guest.
	GuestMount = "/run/pidreuse/layer"
	// GuestCNIDir is the layer's CNI plugin dir as the guest sees it.
	GuestCNIDir = GuestMount + "/cni"
	UnitName    = "pidreuse-layer.service"
	UnitPath    = "/etc/systemd/system/" + UnitName
	ScriptPath  = "/usr/local/lib/pidreuse/mount-layer"
)

// Overlays maps each directory of the layer to the guest directory it is
// laid over.
var Overlays = []struct{ Layer, Guest string }{
	{"bin", "/usr/local/bin"}, // crio, kubelet, pinns (see images/crionode)
	{"cni", "/usr/lib/cni"},   // CRI-O's plugin_dirs
}

// Unit is the systemd unit that mounts the layer.
const Unit = `[Unit]
Description=pidreuse: lay the run's own binaries (the layer disk) over the image
DefaultDependencies=no
ConditionKernelCommandLine=` + CmdlineFlag + `
After=local-fs.target systemd-udevd.service
Before=ssh.service crio.service kubelet.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=` + ScriptPath + `

[Install]
WantedBy=sysinit.target
`

// Script mounts the layer disk and each of its dirs over the image's.
// Overlays have only lower dirs, so they are read-only: nothing in the
// guest can change the binary under test.
var Script = func() string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# Written by the pidreuse image builder (images/layer).
set -eu
dev=` + DevicePath + `
i=0
while [ ! -e "$dev" ]; do
	i=$((i + 1))
	if [ "$i" -gt 600 ]; then echo "pidreuse-layer: no disk at $dev after 60s" >&2; exit 1; fi
	sleep 0.1
done
mkdir -p ` + GuestMount + `
mount -o ro "$dev" ` + GuestMount + `
`)
	// Files are copied, not laid over: they are a run's settings (a CRI-O
	// drop-in, a sysctl) written into the VM's own overlay disk, and the
	// services that read them start after this unit.
	fmt.Fprintf(&b, "if [ -d %[1]s/%[2]s ]; then cp -a %[1]s/%[2]s/. /; echo \"pidreuse-layer: files copied\"; fi\n", GuestMount, filesDir)
	for _, o := range Overlays {
		fmt.Fprintf(&b, "if [ -d %[1]s/%[2]s ]; then mkdir -p %[3]s; mount -t overlay pidreuse-layer -o lowerdir=%[1]s/%[2]s:%[3]s %[3]s; echo \"pidreuse-layer: %[2]s over %[3]s\"; fi\n",
			GuestMount, o.Layer, o.Guest)
	}
	return b.String()
}()

// Binary is one binary under test.
type Binary struct {
	// Name is its file name in the guest's /usr/local/bin (crio, kubelet,
	// pinns).
	Name string `json:"name"`
	// Src is the host path.
	Src string `json:"src"`
	// SHA256 and Version are filled in by Check.
	SHA256  string `json:"sha256"`
	Version string `json:"version,omitempty"`
}

// GuestPath is where the guest sees the binary.
func (b Binary) GuestPath() string { return "/usr/local/bin/" + b.Name }

// Layer is what a run lays over the image.
type Layer struct {
	Binaries []Binary `json:"binaries,omitempty"`
	// CNIDir is a host dir of CNI plugins (already checked by the caller).
	CNIDir string `json:"cniDir,omitempty"`
	// Files are written into the guest's root at boot, before the
	// services that read them: a run's own settings, such as a CRI-O
	// drop-in that turns namespace pinning on or off.
	Files []File `json:"files,omitempty"`
}

// File is one file a layer writes into the guest.
type File struct {
	// Path is absolute, in the guest.
	Path string      `json:"path"`
	Data []byte      `json:"-"`
	Mode os.FileMode `json:"mode"`
}

// filesDir holds the layer's Files, as a tree rooted at the guest's /.
const filesDir = "files"

// Empty says whether there is nothing to lay over the image.
func (l Layer) Empty() bool { return len(l.Binaries) == 0 && l.CNIDir == "" && len(l.Files) == 0 }

// versionArgs says how to ask each tool for its version. pinns has no
// --version (v1.34.0 segfaults on an unknown long option), so it is only
// checked as an ELF.
var versionArgs = map[string][]string{
	"crio":        {"--version"},
	"kubelet":     {"--version"},
	"cri-dockerd": {"--version"},
	"containerd":  {"--version"},
}

// Check makes sure b can be a node's binary: it exists, is executable, is
// an x86-64 ELF and, for tools that have one, answers --version. It fills
// in b's SHA256 and Version. A failure is a bad input ("skip" in a
// bisect), never a verdict.
func Check(ctx context.Context, b *Binary) error {
	if err := elfcheck.Executable(b.Src); err != nil {
		return fmt.Errorf("--%s: %w", b.Name, err)
	}
	sum, _, err := fileutil.SHA256(b.Src)
	if err != nil {
		return fmt.Errorf("--%s: %w", b.Name, err)
	}
	b.SHA256 = sum
	args, ok := versionArgs[b.Name]
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Not command.Run: this is a probe whose answer is its first line, and
	// its failure is one line of a usage error.
	out, err := exec.CommandContext(ctx, b.Src, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("--%s: `%s %s` failed (%v): %s", b.Name, b.Src, strings.Join(args, " "), err, firstLine(string(out)))
	}
	b.Version = firstLine(string(out))
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Build writes the layer disk as dir/layer.img (raw ext4) from a staging
// tree in dir, and returns its path. The staging tree is removed.
func Build(ctx context.Context, l Layer, dir string) (string, error) {
	if l.Empty() {
		return "", errors.New("layer: nothing to lay over the image")
	}
	stage := filepath.Join(dir, "layer-stage")
	if err := os.RemoveAll(stage); err != nil {
		return "", fmt.Errorf("layer: %w", err)
	}
	defer os.RemoveAll(stage)
	var size int64
	if len(l.Binaries) > 0 {
		bin := filepath.Join(stage, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			return "", fmt.Errorf("layer: %w", err)
		}
		seen := map[string]bool{}
		for _, b := range l.Binaries {
			if seen[b.Name] {
				return "", fmt.Errorf("layer: %s given twice", b.Name)
			}
			seen[b.Name] = true
			if b.SHA256 == "" {
				return "", fmt.Errorf("layer: %s was not checked (layer.Check)", b.Name)
			}
			n, err := fileutil.Copy(b.Src, filepath.Join(bin, b.Name), 0o755)
			if err != nil {
				return "", fmt.Errorf("layer: %s: %w", b.Name, err)
			}
			size += n
		}
	}
	if l.CNIDir != "" {
		n, err := copyPlugins(l.CNIDir, filepath.Join(stage, "cni"))
		if err != nil {
			return "", fmt.Errorf("layer: cni: %w", err)
		}
		size += n
	}
	for _, f := range l.Files {
		if !filepath.IsAbs(f.Path) || filepath.Clean(f.Path) != f.Path || f.Path == "/" {
			return "", fmt.Errorf("layer: file path %q must be absolute and clean", f.Path)
		}
		p := filepath.Join(stage, filesDir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("layer: %w", err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, f.Data, mode); err != nil {
			return "", fmt.Errorf("layer: %w", err)
		}
		// WriteFile's mode passes through the umask; the guest gets mode.
		if err := os.Chmod(p, mode); err != nil {
			return "", fmt.Errorf("layer: %w", err)
		}
		size += int64(len(f.Data)) + 4096
	}
	img := filepath.Join(dir, "layer.img")
	_ = os.Remove(img)
	// ext4 metadata, inode tables and a journal-less margin: 25% + 16 MiB.
	kib := (size+size/4)/1024 + 16*1024
	cmd := exec.CommandContext(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal",
		"-L", "pidreuse-layer", "-E", "root_owner=0:0", "-d", stage, img, fmt.Sprintf("%dk", kib))
	if err := command.Run(ctx, cmd); err != nil {
		_ = os.Remove(img)
		return "", fmt.Errorf("layer: %w", err)
	}
	return img, nil
}

// copyPlugins copies the regular files of src (CNI plugins are flat).
func copyPlugins(src, dst string) (int64, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return 0, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var total int64
	for _, name := range names {
		n, err := fileutil.Copy(filepath.Join(src, name), filepath.Join(dst, name), 0o755)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
