package images

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pidreuse/pidreuse/images/layer"
	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/fileutil"
	"github.com/pidreuse/pidreuse/internal/flock"
	"github.com/pidreuse/pidreuse/internal/mounts"
	"github.com/pidreuse/pidreuse/internal/shell"
)

// checkHost fails early, before a lock or temp directory exists, when the
// host cannot run the build.
func checkHost() error {
	if os.Geteuid() != 0 {
		return errors.New("building the node image needs root (mmdebstrap --mode=root, chroot, root-owned files in the disk): run as root")
	}
	for _, tool := range []struct{ cmd, pkg string }{
		{"mmdebstrap", "mmdebstrap"},
		{"mke2fs", "e2fsprogs"},
		{"qemu-img", "qemu-utils"},
		{"chroot", "coreutils"},
	} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			return fmt.Errorf("%s not found: run `make deps` (or apt-get install %s)", tool.cmd, tool.pkg)
		}
	}
	return nil
}

// workDir holds what only the build needs (rootfs, raw disk); it is
// removed before the entry is published.
func (s *buildState) workDir() string { return filepath.Join(s.dir, "work") }

// run runs a command with its output going to the build log; on failure the
// error carries the output's last lines (see command.Run) so the caller sees
// why without the log (which is deleted with the failed build).
func (s *buildState) run(ctx context.Context, name string, args ...string) error {
	_, err := s.output(ctx, false, name, args...)
	return err
}

// output is run that also returns stdout when captureStdout is set.
func (s *buildState) output(ctx context.Context, captureStdout bool, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout bytes.Buffer
	if captureStdout {
		cmd.Stdout = &stdout
	} else {
		cmd.Stdout = s.log
	}
	cmd.Stderr = s.log
	// SIGTERM rather than SIGKILL on cancel: mmdebstrap traps it and
	// unmounts what it mounted inside the rootfs (measured: it can take
	// ~25 s to wind down mid-install). WaitDelay bounds how long a command
	// that ignores it may take to die; mounts.SafeRemoveAll then detaches
	// any mount it left.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	fmt.Fprintf(s.log, "+ %s\n", shell.Join(cmd.Args))
	start := time.Now()
	err := command.Run(ctx, cmd)
	fmt.Fprintf(s.log, "  (%s, %v)\n", name, time.Since(start).Round(time.Millisecond))
	if err != nil {
		return nil, err
	}
	return stdout.Bytes(), nil
}

// rootfsRecipe keys the cached package tree apart from FormatVersion
// (which also covers the configure stage): bump it when the mmdebstrap
// call changes.
const rootfsRecipe = 1

// RootfsCacheDir holds one tarball per package set (under the image cache
// root), so a new image — a new node agent, a new plugin — costs an
// extraction, not a Debian install.
const RootfsCacheDir = ".rootfs"

// rootfsKey names the package tree: the suite, the package set and the
// apt sources, nothing that is laid in later.
func (s *buildState) rootfsKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "pidreuse rootfs %d\n%s\n%s\n", rootfsRecipe, s.in.Suite, strings.Join(s.d.packages, ","))
	h.Write(s.d.aptSources)
	return hex.EncodeToString(h.Sum(nil))
}

// stageRootfs installs the packages with mmdebstrap into a tarball cached
// by package set, then unpacks it as the rootfs to configure.
func stageRootfs(ctx context.Context, s *buildState) error {
	work := s.workDir()
	if err := os.Mkdir(work, 0o755); err != nil {
		return err
	}
	cacheDir := filepath.Join(filepath.Dir(s.dir), RootfsCacheDir)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	key := s.rootfsKey()
	tarball := filepath.Join(cacheDir, key+".tar")
	// Images with different hashes share a package set: one Debian
	// install per set at a time, the others wait and unpack it.
	lock, err := flock.Wait(ctx, filepath.Join(cacheDir, ".lock-"+key), func(pid int) {
		fmt.Fprintf(s.log, "rootfs: waiting for pid %d, which installs the same package set\n", pid)
	})
	if err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	if _, err := os.Stat(tarball); err != nil {
		err := s.debootstrap(ctx, work, cacheDir, key, tarball)
		lock.Release()
		if err != nil {
			return err
		}
	} else {
		// A published tarball never changes: unpack it unlocked.
		lock.Release()
		fmt.Fprintf(s.log, "rootfs: cached package tree %s\n", tarball)
		// Its mtime says when a build last used it, for Prune.
		now := time.Now()
		_ = os.Chtimes(tarball, now, now)
	}
	s.rootfs = filepath.Join(work, "rootfs")
	if err := os.Mkdir(s.rootfs, 0o755); err != nil {
		return err
	}
	return s.run(ctx, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", tarball, "-C", s.rootfs)
}

// debootstrap runs mmdebstrap into a temporary tarball and renames it to
// tarball only when complete, so an interrupted install is never cached.
func (s *buildState) debootstrap(ctx context.Context, work, cacheDir, key, tarball string) error {
	// Hand mmdebstrap the exact bytes that were hashed, under the original
	// file name: mmdebstrap picks deb822 vs one-line format by the suffix.
	// A missing or unusable mirror argument would make mmdebstrap fall back
	// to a public mirror, so the file is always passed explicitly.
	sources := filepath.Join(work, filepath.Base(s.in.AptSources))
	if err := os.WriteFile(sources, s.d.aptSources, 0o644); err != nil {
		return fmt.Errorf("copying apt sources: %w", err)
	}
	// The .tar suffix tells mmdebstrap to write a tarball.
	tmp := filepath.Join(cacheDir, fmt.Sprintf(".tmp-%s-%d.tar", key, os.Getpid()))
	defer os.Remove(tmp)
	args := []string{
		"--mode=root",
		"--variant=minbase",
		"--include=" + strings.Join(s.d.packages, ","),
		s.in.Suite, tmp, sources,
	}
	if err := s.run(ctx, "mmdebstrap", args...); err != nil {
		if ctx.Err() != nil {
			return err
		}
		if s.in.AptSourcesData != nil {
			return fmt.Errorf("%w\n(check that the mirror in these apt sources is reachable, or set %s:\n%s)", err, MirrorEnv, s.d.aptSources)
		}
		return fmt.Errorf("%w\n(check the apt sources file %s and that its mirror is reachable)", err, s.in.AptSources)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	return nil
}

// stageConfigure turns the chroot into a bootable, SSH-reachable node.
func stageConfigure(ctx context.Context, s *buildState) error {
	r, err := os.OpenRoot(s.rootfs)
	if err != nil {
		return fmt.Errorf("opening rootfs: %w", err)
	}
	defer r.Close()

	h := s.in.Hostname
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"etc/hostname", h + "\n", 0o644},
		{"etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t" + h + "\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644},
		// No partition table: the disk is the filesystem.
		{"etc/fstab", "/dev/vda / ext4 defaults 0 1\n", 0o644},
		// mmdebstrap copied the build host's resolver; the guest has no
		// DNS (restricted user networking), and must not learn the host's.
		{"etc/resolv.conf", "", 0o644},
		// Empty but present: systemd generates a fresh machine ID on each
		// boot of each overlay instead of every VM sharing one.
		{"etc/machine-id", "", 0o444},
		{"etc/ssh/ssh_host_ed25519_key", string(s.hostKey.private), 0o600},
		{"etc/ssh/ssh_host_ed25519_key.pub", s.hostKey.authorized, 0o644},
		// The Include of sshd_config.d comes first in Debian's sshd_config
		// and sshd keeps the first value it reads, so these win.
		{"etc/ssh/sshd_config.d/10-pidreuse.conf", "# Written by the pidreuse image builder.\n" +
			"HostKey /etc/ssh/ssh_host_ed25519_key\n" +
			"PasswordAuthentication no\n" +
			"KbdInteractiveAuthentication no\n" +
			"PermitRootLogin prohibit-password\n" +
			"UseDNS no\n" +
			// No PAM session: its logind session and the user manager it
			// starts for root (user@0.service) held the first login of
			// each boot for 4-9 s under TCG (measured), and the harness
			// uses neither: it runs commands, and what it leaves running
			// detaches itself.
			"UsePAM no\n", 0o644},
		{"root/.ssh/authorized_keys", s.clientKey.authorized, 0o600},
		// DHCP from QEMU's user network. Its DNS server leads nowhere
		// (restrict=on), so it is not used. Routes are taken as offered:
		// under restrict=on that is only the 10.0.2.0/24 link route, and
		// a caller that needs a default route (Kubernetes picks the node
		// IP from it) can lay in its own .network file via Inputs.Files.
		// A failed run's artifacts include the journal of the boot before
		// the reboot (journalctl -b -1): keep it on disk.
		// A run's own binaries (CRI-O, kubelet, pinns, CNI plugins under
		// test) arrive on a second disk and are laid over the image at
		// boot: see images/layer.
		{strings.TrimPrefix(layer.UnitPath, "/"), layer.Unit, 0o644},
		{strings.TrimPrefix(layer.ScriptPath, "/"), layer.Script, 0o755},
		{"etc/systemd/journald.conf.d/10-pidreuse.conf", "[Journal]\nStorage=persistent\n", 0o644},
		// sshd only once the guest has its address (DHCP): the harness
		// dials when the console says sshd listens, and a connection
		// QEMU forwards before the address is up waits for TCP's SYN
		// retransmits, or hangs. The line is written to the console
		// directly: systemd's own "Started ssh.service" is not enough,
		// it stops printing unit status while a unit holds the console
		// (a getty did, and sshd sometimes started after it: the
		// harness then waited its full 2 min for a line never printed).
		{"etc/systemd/system/ssh.service.d/10-pidreuse.conf", "# Written by the pidreuse image builder.\n[Unit]\nWants=network-online.target\nAfter=network-online.target\n\n" +
			"[Service]\nExecStartPost=-/bin/sh -c 'echo \"" + SSHListensLine + "\" >/dev/console'\n", 0o644},
		// Boot time under TCG (measured: 4.7 s to unpack the stock 35 MiB
		// initrd; 1.5-2 s for each module udev loads for emulated
		// hardware the node never uses). The initrd needs only the root
		// disk's driver and filesystem; the blacklisted modules are for
		// hardware QEMU's pc machine shows (floppy, PC speaker, the PIIX
		// SMBus), for KVM inside the guest, wireless and the DRM console.
		// Nothing under test (netns, veth, bridge, overlay, nf_tables)
		// is among them.
		{"etc/initramfs-tools/conf.d/10-pidreuse.conf", "# Written by the pidreuse image builder.\nMODULES=list\n", 0o644},
		{"etc/initramfs-tools/modules", "# Written by the pidreuse image builder.\nvirtio_pci\nvirtio_blk\next4\n", 0o644},
		{"etc/modprobe.d/10-pidreuse.conf", "# Written by the pidreuse image builder: modules the node never needs.\n" +
			"blacklist floppy\nblacklist pcspkr\nblacklist i2c_piix4\nblacklist kvm\nblacklist kvm_amd\nblacklist kvm_intel\n" +
			"blacklist cfg80211\nblacklist drm\nblacklist bochs\nblacklist psmouse\nblacklist serio_raw\n", 0o644},
		// udev gives every new interface a "persistent" MAC by default
		// (99-default.link), racing the CNI bridge plugin that made the
		// veth: CRI-O's CHECK after ADD then fails ("Interface veth… Mac
		// doesn't match") and kubelet retries the sandbox after a
		// backoff. Measured: the web pod ran 50 s late in one run of
		// three. The interfaces CNI makes keep the MAC it gave them.
		{"etc/systemd/network/10-pidreuse-cni.link", "# Written by the pidreuse image builder.\n" +
			"[Match]\nDriver=veth bridge\n\n[Link]\nMACAddressPolicy=none\n", 0o644},
		{"etc/systemd/network/20-pidreuse-wired.network", "# Written by the pidreuse image builder.\n" +
			"[Match]\nName=en* eth*\n\n" +
			"[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n\n" +
			"[DHCPv4]\nUseDNS=no\nUseNTP=no\nUseDomains=no\n", 0o644},
	}

	// Only our host key may exist, so the pinned key is the one sshd uses.
	oldKeys, err := fs.Glob(r.FS(), "etc/ssh/ssh_host_*")
	if err != nil {
		return err
	}
	for _, k := range oldKeys {
		if err := r.Remove(k); err != nil {
			return fmt.Errorf("removing generated host key: %w", err)
		}
	}
	if err := r.MkdirAll("root/.ssh", 0o700); err != nil {
		return err
	}
	if err := r.Chmod("root/.ssh", 0o700); err != nil {
		return err
	}
	for _, f := range files {
		if err := replaceFile(r, f.name, []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	// dbus keeps its own copy of the machine ID when this is a regular
	// file; it would then be shared by every VM.
	if fi, err := r.Lstat("var/lib/dbus/machine-id"); err == nil && fi.Mode().IsRegular() {
		if err := r.Remove("var/lib/dbus/machine-id"); err != nil {
			return err
		}
	}

	if err := s.layFiles(r); err != nil {
		return err
	}

	// systemctl works offline in a chroot for enable/mask.
	enable := append([]string{"systemd-networkd.service", "ssh.service", layer.UnitName}, s.d.units...)
	if err := s.run(ctx, "chroot", append([]string{s.rootfs, "systemctl", "enable"}, enable...)...); err != nil {
		return err
	}
	// Background maintenance timers only cost CPU under TCG and would try
	// to reach the network the guest does not have.
	// Nor do the early module loads of systemd for what the node does
	// not use (the DRM console, device mapper, EFI pstore), each 1.5-2 s
	// of CPU under TCG before sysinit.target, nor e2scrub's boot check.
	// No login prompts: root has no password (the harness logs in
	// with its key over SSH), and a getty on the serial console makes
	// systemd stop printing unit status there, which a failed run's
	// console artifact needs.
	mask := []string{"apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer", "fstrim.timer",
		"modprobe@drm.service", "modprobe@dm_mod.service", "modprobe@efi_pstore.service", "e2scrub_reap.service",
		"serial-getty@ttyS0.service", "getty@tty1.service"}
	if err := s.run(ctx, "chroot", append([]string{s.rootfs, "systemctl", "mask"}, mask...)...); err != nil {
		return err
	}

	s.prime(ctx)

	// The initrd of the list above, in place of the stock one.
	if err := s.run(ctx, "chroot", s.rootfs, "update-initramfs", "-u", "-k", "all"); err != nil {
		return fmt.Errorf("update-initramfs in the rootfs: %w", err)
	}
	if err := s.copyKernel(); err != nil {
		return err
	}
	pkgs, err := s.installedPackages(ctx)
	if err != nil {
		return err
	}
	s.packages = pkgs
	return nil
}

// primeRecipe keys images that prime apart by how primeScript runs the
// command: bump it when the script changes.
const primeRecipe = 2

// primeScript mounts what a command in the rootfs expects — / as a mount
// point (containers/storage's untar makes / private, which fails with
// EINVAL on a plain directory), /proc, /sys, /dev, an empty /run — and
// runs it there. It runs under unshare --mount: every mount, and any the
// command makes (a container store's overlay test), goes with the
// namespace when it ends.
const primeScript = `set -e
r=$1; shift
mount --bind "$r" "$r"
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount --rbind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/run"
exec chroot "$r" "$@"`

// prime runs Inputs.Prime in the rootfs. A failure is the build log's and
// the manifest's to tell (prime_error), not the build's: the first boot
// does the same work when it finds it undone.
func (s *buildState) prime(ctx context.Context) {
	if len(s.in.Prime) == 0 {
		return
	}
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", primeScript, "prime", s.rootfs}, s.in.Prime...)
	if err := s.run(ctx, "unshare", args...); err != nil && ctx.Err() == nil {
		s.primeErr = err
		fmt.Fprintf(s.log, "prime failed, left to the first boot: %v\n", err)
	}
}

// errText is err's text, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// replaceFile writes name in the rootfs from scratch: whatever was there
// (possibly a symlink to a host-specific file) is removed first, and the
// mode is set explicitly since WriteFile only applies it on creation.
func replaceFile(r *os.Root, name string, data []byte, mode os.FileMode) error {
	if err := r.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replacing %s in rootfs: %w", name, err)
	}
	if err := r.MkdirAll(path.Dir(name), 0o755); err != nil {
		return fmt.Errorf("creating parent of %s in rootfs: %w", name, err)
	}
	if err := r.WriteFile(name, data, mode); err != nil {
		return fmt.Errorf("writing %s in rootfs: %w", name, err)
	}
	if err := r.Chmod(name, mode); err != nil {
		return fmt.Errorf("chmod %s in rootfs: %w", name, err)
	}
	return nil
}

// layFiles copies Inputs.Files into the rootfs through r, which refuses any
// path (or symlink already in the rootfs) that would escape to the host.
// Each file is hashed while copied and must match what Hash saw, so the
// manifest describes what is really in the image.
func (s *buildState) layFiles(r *os.Root) error {
	i := 0
	for _, f := range s.in.Files {
		err := walkSource(f, func(src, dst string, fi os.FileInfo, mode os.FileMode) error {
			if i >= len(s.d.files) || s.d.files[i].Dst != dst {
				return fmt.Errorf("%s changed since the inputs were hashed: retry the build", src)
			}
			want := s.d.files[i]
			i++
			name := strings.TrimPrefix(dst, "/")
			lf := LaidFile{Dst: dst, Kind: want.Kind, Mode: mode}
			if err := r.MkdirAll(path.Dir(name), 0o755); err != nil {
				return fmt.Errorf("creating parent of %s in rootfs: %w", dst, err)
			}
			switch want.Kind {
			case "dir":
				if err := r.MkdirAll(name, mode); err != nil {
					return fmt.Errorf("creating %s in rootfs: %w", dst, err)
				}
				if err := r.Chmod(name, mode); err != nil {
					return err
				}
			case "symlink":
				target, err := os.Readlink(src)
				if err != nil {
					return err
				}
				if err := r.RemoveAll(name); err != nil {
					return err
				}
				if err := r.Symlink(target, name); err != nil {
					return fmt.Errorf("creating symlink %s in rootfs: %w", dst, err)
				}
				lf.Target = target
			case "file":
				sum, err := copyInto(r, src, name, mode)
				if err != nil {
					return fmt.Errorf("copying to %s in rootfs: %w", dst, err)
				}
				lf.SHA256 = sum
			}
			if lf.SHA256 != want.SHA256 || lf.Target != want.Target || uint32(mode) != want.Mode {
				return fmt.Errorf("%s changed since the inputs were hashed: retry the build", src)
			}
			s.files = append(s.files, lf)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if i != len(s.d.files) {
		return errors.New("image input files changed since the inputs were hashed: retry the build")
	}
	return nil
}

func copyInto(r *os.Root, src, name string, mode os.FileMode) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	// Remove first: the destination may be a symlink or a read-only file
	// shipped by a package.
	if err := r.RemoveAll(name); err != nil {
		return "", err
	}
	out, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	// OpenFile applies the umask and drops setuid bits; set the mode as asked.
	if err := r.Chmod(name, mode); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyKernel copies the installed kernel and initrd out of /boot for direct
// kernel boot; there is no bootloader in the image.
func (s *buildState) copyKernel() error {
	boot := filepath.Join(s.rootfs, "boot")
	kernels, err := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	if err != nil {
		return err
	}
	if len(kernels) != 1 {
		return fmt.Errorf("expected exactly one kernel in the rootfs /boot, found %d: check that linux-image-amd64 is in Inputs.Packages", len(kernels))
	}
	version := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	initrd := filepath.Join(boot, "initrd.img-"+version)
	if _, err := os.Stat(initrd); err != nil {
		return fmt.Errorf("no initrd for kernel %s (is initramfs-tools installed?): %w", version, err)
	}
	if _, err := fileutil.Copy(kernels[0], filepath.Join(s.dir, KernelName), 0o644); err != nil {
		return fmt.Errorf("copying kernel: %w", err)
	}
	if _, err := fileutil.Copy(initrd, filepath.Join(s.dir, InitrdName), 0o644); err != nil {
		return fmt.Errorf("copying initrd: %w", err)
	}
	s.kernelVersion = version
	return nil
}

// installedPackages asks the rootfs's own dpkg what is installed, so the
// manifest records exact versions even when the mirror moves on.
func (s *buildState) installedPackages(ctx context.Context) ([]Package, error) {
	out, err := s.output(ctx, true, "chroot", s.rootfs, "dpkg-query", "-W",
		"-f", `${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n`)
	if err != nil {
		return nil, fmt.Errorf("listing installed packages: %w", err)
	}
	return parseDpkgQuery(out)
}

func parseDpkgQuery(out []byte) ([]Package, error) {
	var pkgs []Package
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			continue
		}
		// "ii " is installed; anything else (config-files, half-installed)
		// is not part of the running system.
		if !strings.HasPrefix(f[0], "ii") {
			continue
		}
		pkgs = append(pkgs, Package{Name: f[1], Version: f[2], Arch: f[3]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, errors.New("dpkg-query reported no installed packages")
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs, nil
}

// stageDisk makes the ext4 filesystem straight from the rootfs directory:
// no loop device or mount, and the raw file stays sparse.
func stageDisk(ctx context.Context, s *buildState) error {
	s.rawDisk = filepath.Join(s.workDir(), "disk.raw")
	f, err := os.OpenFile(s.rawDisk, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(s.in.DiskSize); err != nil {
		f.Close()
		return fmt.Errorf("sizing raw disk: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return s.run(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-d", s.rootfs, "-L", "root",
		s.rawDisk, strconv.FormatInt(s.in.DiskSize/1024, 10)+"k")
}

// stageConvert turns the raw disk into the qcow2 base that overlays point
// at, then drops the work files (rootfs, raw disk) that the entry does not
// keep.
func stageConvert(ctx context.Context, s *buildState) error {
	// Uncompressed: compressed clusters are slower to read under TCG and the
	// base is read by every VM.
	if err := s.run(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", s.rawDisk, filepath.Join(s.dir, BaseDiskName)); err != nil {
		return err
	}
	if err := mounts.SafeRemoveAll(s.workDir()); err != nil {
		return fmt.Errorf("removing build work files: %w", err)
	}
	return nil
}

// stageManifest records the result. It runs last: a manifest that exists
// and matches its files is what makes an entry complete.
func stageManifest(ctx context.Context, s *buildState) error {
	var arts [3]Artifact
	for i, name := range []string{BaseDiskName, KernelName, InitrdName} {
		if err := ctx.Err(); err != nil {
			return err
		}
		a, err := artifact(s.dir, name)
		if err != nil {
			return err
		}
		arts[i] = a
	}
	srcSum := sha256.Sum256(s.d.aptSources)
	m := &Manifest{
		FormatVersion:     FormatVersion,
		InputHash:         s.d.hash,
		BuiltAt:           s.started.UTC().Truncate(time.Second),
		BuildDuration:     time.Since(s.started).Round(time.Millisecond),
		Suite:             s.in.Suite,
		AptSourcesSHA256:  hex.EncodeToString(srcSum[:]),
		RequestedPackages: s.d.packages,
		Packages:          s.packages,
		Files:             s.files,
		KernelVersion:     s.kernelVersion,
		KernelCmdline:     s.in.Cmdline(),
		BaseDisk:          arts[0],
		Kernel:            arts[1],
		Initrd:            arts[2],
		DiskSize:          s.in.DiskSize,
		Hostname:          s.in.Hostname,
		Prime:             s.in.Prime,
		PrimeError:        errText(s.primeErr),
		HostPublicKey:     strings.TrimSpace(s.hostKey.authorized),
		ClientPublicKey:   strings.TrimSpace(s.clientKey.authorized),
	}
	return writeManifest(s.dir, m)
}

// artifact hashes and syncs one entry file; syncing here means the rename
// that publishes the entry never exposes data still in the page cache only.
func artifact(dir, name string) (Artifact, error) {
	p := filepath.Join(dir, name)
	sum, size, err := fileutil.SHA256(p)
	if err != nil {
		return Artifact{}, fmt.Errorf("image artifact: %w", err)
	}
	if err := syncFile(p); err != nil {
		return Artifact{}, fmt.Errorf("syncing %s: %w", name, err)
	}
	return Artifact{Path: name, Size: size, SHA256: sum}, nil
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
