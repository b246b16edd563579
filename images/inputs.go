// Package images builds the Debian node image the VM backend boots: a
// qcow2 base disk plus the kernel and initrd for direct kernel boot, and the
// SSH keys that let the harness log in with a pinned host key.
//
// An image is cached under cacheRoot/<hash>, where hash covers every input
// (see Inputs.Hash). VMs boot from qcow2 overlays on the cached base disk, so
// a cache entry is read-only once it exists and is never rewritten in place.
package images

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pidreuse/pidreuse/internal/fileutil"
)

// FormatVersion is part of every image hash. Bump it whenever the recipe
// changes in a way the Inputs do not capture (mmdebstrap flags, files written
// by the configure stage, disk layout, manifest shape), so that old cache
// entries are no longer reused.
const FormatVersion = 9

// KernelCmdline is what the image's kernel must be booted with: the disk is
// a bare ext4 filesystem (no partition table, no bootloader) on the first
// virtio disk, and the serial console is the only console.
const KernelCmdline = "root=/dev/vda rw console=ttyS0,115200"

// Cmdline is KernelCmdline with in's KernelArgs.
func (in Inputs) Cmdline() string {
	return strings.Join(append([]string{KernelCmdline}, in.KernelArgs...), " ")
}

// DefaultSuite is the Debian release the nodes run.
const DefaultSuite = "bookworm"

// DefaultDiskSize is the virtual size of the base disk. The raw file is
// sparse and qcow2 only stores used clusters, so a generous size costs
// nothing and leaves room for container images written by the VMs.
const DefaultDiskSize int64 = 10 << 30

// DefaultHostname is written to /etc/hostname. All VMs share the image, so
// callers that need distinct names set them at boot.
const DefaultHostname = "pidreuse-node"

// File is one host file or directory laid into the rootfs.
type File struct {
	// Src is a host path. A directory is copied recursively (regular files,
	// directories and symlinks only), keeping the permission bits of what
	// it contains.
	Src string
	// Dst is the absolute path inside the rootfs. Parent directories are
	// created with mode 0755.
	Dst string
	// Mode is the permission of Dst (for a directory Src: of the top
	// directory only). Zero means "keep the source's permission bits".
	Mode os.FileMode
}

// Inputs is everything an image is built from. Two Inputs with the same
// Hash produce interchangeable images.
type Inputs struct {
	// Suite is the Debian release, e.g. "bookworm".
	Suite string
	// Packages are installed on top of the minbase variant. Order and
	// duplicates do not matter. Start from DefaultPackages and append.
	Packages []string
	// AptSources is the apt sources file handed to mmdebstrap as its
	// mirror: a host file (FindAptSources), or, with AptSourcesData, only
	// the name a generated file is handed over under. Its content, not its
	// path, is hashed. FindDebianSources picks one.
	AptSources string
	// AptSourcesData is the content of a generated sources file (a mirror
	// given by URL, see FindDebianSources); nil reads AptSources.
	AptSourcesData []byte
	// Files are laid into the rootfs after the packages are installed, in
	// order, so a later entry overwrites an earlier one.
	Files []File
	// Enable are systemd units enabled (systemctl enable, in the rootfs)
	// after Files are laid in, e.g. a kubelet unit shipped as a File.
	Enable []string
	// KernelArgs are added to KernelCmdline, e.g.
	// systemd.unified_cgroup_hierarchy=0 for a node whose kubelet needs
	// cgroup v1.
	KernelArgs []string
	// Prime is a command run at the end of the build in the finished
	// rootfs (chroot, in a mount namespace of its own with /proc, /sys,
	// /dev and an empty /run), to do ahead of time what every first boot
	// would otherwise do, e.g. load a container image into a runtime's
	// store. The image must not depend on it: when it fails the build goes
	// on and says so, and the first boot does the work.
	Prime []string
	// Hostname goes to /etc/hostname and /etc/hosts.
	Hostname string
	// DiskSize is the virtual size of the base disk in bytes.
	DiskSize int64
}

// DefaultPackages returns the packages every node needs to boot under
// direct kernel boot and be reached over SSH. It returns a new slice each
// time so callers can append their own.
func DefaultPackages() []string {
	return []string{
		"systemd", "systemd-sysv", "udev", "dbus", "libpam-systemd",
		"openssh-server", "linux-image-amd64", "iproute2", "kmod",
		"iptables", "ca-certificates",
	}
}

// DefaultInputs returns the inputs of the plain node image, with the
// Debian packages from where FindDebianSources says (the host's apt
// sources on a Debian host, unless $PIDREUSE_DEBIAN_MIRROR names a mirror).
func DefaultInputs() (Inputs, error) {
	src, err := FindDebianSources(DefaultSuite, "/etc", os.Getenv)
	if err != nil {
		return Inputs{}, err
	}
	in := Inputs{
		Suite:    DefaultSuite,
		Packages: DefaultPackages(),
		Hostname: DefaultHostname,
		DiskSize: DefaultDiskSize,
	}
	src.apply(&in)
	return in, nil
}

// FindAptSources returns the apt sources file under etcApt (normally
// /etc/apt) to hand to mmdebstrap. Without one, mmdebstrap silently falls
// back to a public mirror, which this build must never do. deb822 files in
// sources.list.d win over the one-line sources.list because that is what
// current Debian installs use; files whose name contains ".disabled" (or
// that apt itself would ignore) are skipped.
func FindAptSources(etcApt string) (string, error) {
	dir := filepath.Join(etcApt, "sources.list.d")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading apt sources directory: %w", err)
	}
	var lists []string
	for _, e := range entries { // ReadDir sorts by name: the choice is stable.
		name := e.Name()
		if strings.Contains(name, ".disabled") || strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(dir, name)
		if !isRegular(p) {
			continue
		}
		switch {
		case strings.HasSuffix(name, ".sources"):
			if hasAptEntries(p) {
				return p, nil
			}
		case strings.HasSuffix(name, ".list"):
			lists = append(lists, p)
		}
	}
	main := filepath.Join(etcApt, "sources.list")
	if isRegular(main) && hasAptEntries(main) {
		return main, nil
	}
	for _, p := range lists {
		if hasAptEntries(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no enabled apt sources file in %s or %s: configure the host's Debian mirror for apt first (mmdebstrap must not fall back to a public mirror)", dir, main)
}

func isRegular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// hasAptEntries reports whether a sources file has anything besides
// comments and blank lines, so that an emptied-out file is not picked.
func hasAptEntries(p string) bool {
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}

// fileDigest describes one laid-in file for the hash and the manifest.
type fileDigest struct {
	Dst    string `json:"dst"`
	Kind   string `json:"kind"` // "file", "dir" or "symlink"
	Mode   uint32 `json:"mode"`
	SHA256 string `json:"sha256,omitempty"` // files
	Target string `json:"target,omitempty"` // symlinks
}

// hashDoc is the canonical encoding of Inputs. encoding/json writes struct
// fields in declaration order, so the encoding is stable as long as this
// type is; changing it changes every hash, which is what a recipe change
// should do anyway.
type hashDoc struct {
	Magic         string       `json:"magic"`
	FormatVersion int          `json:"format_version"`
	Suite         string       `json:"suite"`
	Packages      []string     `json:"packages"`
	AptSources    string       `json:"apt_sources_sha256"`
	Hostname      string       `json:"hostname"`
	DiskSize      int64        `json:"disk_size"`
	Files         []fileDigest `json:"files"`
	Enable        []string     `json:"enable"`
	// omitempty: images without kernel args keep the hash they had.
	KernelArgs []string `json:"kernel_args,omitempty"`
	// omitempty: images that prime nothing keep the hash they had.
	Prime       []string `json:"prime,omitempty"`
	PrimeRecipe int      `json:"prime_recipe,omitempty"`
}

// digested is what hashing the inputs learned, reused by the build so it
// uses exactly the bytes that were hashed.
type digested struct {
	hash       string
	aptSources []byte
	packages   []string
	units      []string
	files      []fileDigest
}

// Hash returns the hex sha256 of a canonical encoding of all inputs,
// including the content of the apt sources file and of every laid-in file,
// and FormatVersion.
func (in Inputs) Hash() (string, error) {
	d, err := in.digest()
	if err != nil {
		return "", err
	}
	return d.hash, nil
}

func (in Inputs) validate() error {
	if in.Suite == "" || strings.ContainsAny(in.Suite, "/ \t\n") {
		return fmt.Errorf("invalid Debian suite %q: set Inputs.Suite (e.g. %q)", in.Suite, DefaultSuite)
	}
	if in.AptSources == "" {
		return errors.New("no apt sources file: set Inputs.AptSources (see FindDebianSources)")
	}
	if in.AptSourcesData != nil && filepath.Base(in.AptSources) != in.AptSources {
		return fmt.Errorf("generated apt sources: Inputs.AptSources %q must be a bare file name", in.AptSources)
	}
	if in.Hostname == "" || strings.ContainsAny(in.Hostname, "/ \t\n") {
		return fmt.Errorf("invalid hostname %q: set Inputs.Hostname", in.Hostname)
	}
	if in.DiskSize < 1<<30 || in.DiskSize%(1<<20) != 0 {
		return fmt.Errorf("invalid disk size %d: use a whole number of MiB, at least 1 GiB", in.DiskSize)
	}
	for _, p := range in.Packages {
		if p == "" || strings.ContainsAny(p, ", \t\n") {
			return fmt.Errorf("invalid package name %q in Inputs.Packages", p)
		}
	}
	for _, a := range in.KernelArgs {
		if a == "" || strings.ContainsAny(a, " \t\n'\"") {
			return fmt.Errorf("invalid kernel argument %q in Inputs.KernelArgs", a)
		}
	}
	for _, u := range in.Enable {
		if u == "" || strings.ContainsAny(u, "/ \t\n") || strings.HasPrefix(u, "-") {
			return fmt.Errorf("invalid systemd unit name %q in Inputs.Enable", u)
		}
	}
	for _, f := range in.Files {
		if f.Src == "" {
			return fmt.Errorf("file for %q has no source path", f.Dst)
		}
		if !path.IsAbs(f.Dst) || path.Clean(f.Dst) != f.Dst || f.Dst == "/" {
			return fmt.Errorf("file %s: destination %q must be a clean absolute path below /", f.Src, f.Dst)
		}
		if f.Mode&^(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
			return fmt.Errorf("file %s: mode %v has bits other than permissions", f.Src, f.Mode)
		}
	}
	return nil
}

func (in Inputs) digest() (*digested, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	src := in.AptSourcesData
	if src == nil {
		var err error
		if src, err = os.ReadFile(in.AptSources); err != nil {
			return nil, fmt.Errorf("reading apt sources file: %w", err)
		}
	}
	srcSum := sha256.Sum256(src)

	// The package set, not the order it was listed in, decides what
	// mmdebstrap installs.
	pkgs := sortedSet(in.Packages)
	units := sortedSet(in.Enable)

	var files []fileDigest
	for _, f := range in.Files {
		fd, err := digestTree(f)
		if err != nil {
			return nil, err
		}
		files = append(files, fd...)
	}

	doc := hashDoc{
		Magic:         "pidreuse-node-image",
		FormatVersion: FormatVersion,
		Suite:         in.Suite,
		Packages:      pkgs,
		AptSources:    hex.EncodeToString(srcSum[:]),
		Hostname:      in.Hostname,
		DiskSize:      in.DiskSize,
		Files:         files,
		Enable:        units,
		KernelArgs:    in.KernelArgs,
		Prime:         in.Prime,
	}
	if len(in.Prime) > 0 {
		doc.PrimeRecipe = primeRecipe
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding image inputs: %w", err)
	}
	sum := sha256.Sum256(b)
	return &digested{
		hash:       hex.EncodeToString(sum[:]),
		aptSources: src,
		packages:   pkgs,
		units:      units,
		files:      files,
	}, nil
}

// sortedSet returns the distinct elements of s in order, nil when there are
// none, so that nil and empty lists hash the same.
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	sort.Strings(out)
	return slices.Compact(out)
}

// permBits keeps what a laid-in file's mode may carry.
func permBits(m os.FileMode) os.FileMode {
	return m & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
}

// digestTree describes f (recursively for a directory) in a stable order.
// The source path itself is not part of it: moving a checkout must not
// invalidate the cache.
func digestTree(f File) ([]fileDigest, error) {
	var out []fileDigest
	err := walkSource(f, func(src, dst string, fi os.FileInfo, mode os.FileMode) error {
		d := fileDigest{Dst: dst, Mode: uint32(mode)}
		switch {
		case fi.Mode().IsRegular():
			d.Kind = "file"
			sum, _, err := fileutil.SHA256(src)
			if err != nil {
				return err
			}
			d.SHA256 = sum
		case fi.IsDir():
			d.Kind = "dir"
		case fi.Mode()&os.ModeSymlink != 0:
			d.Kind = "symlink"
			t, err := os.Readlink(src)
			if err != nil {
				return fmt.Errorf("reading symlink: %w", err)
			}
			d.Target = t
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// walkSource visits f.Src and, for a directory, everything below it in
// lexical order, with the rootfs path and the mode each entry gets.
func walkSource(f File, visit func(src, dst string, fi os.FileInfo, mode os.FileMode) error) error {
	top, err := os.Stat(f.Src) // follow a symlinked Src: the caller means its target
	if err != nil {
		return fmt.Errorf("image input file: %w", err)
	}
	if !top.Mode().IsRegular() && !top.IsDir() {
		return fmt.Errorf("image input file %s: only regular files and directories can be laid into the image", f.Src)
	}
	mode := permBits(top.Mode())
	if f.Mode != 0 {
		mode = permBits(f.Mode)
	}
	if err := visit(f.Src, f.Dst, top, mode); err != nil {
		return fmt.Errorf("image input file %s: %w", f.Src, err)
	}
	if !top.IsDir() {
		return nil
	}
	return filepath.WalkDir(f.Src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("image input directory %s: %w", f.Src, err)
		}
		if p == f.Src {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("image input directory %s: %w", f.Src, err)
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("image input %s: only regular files, directories and symlinks can be laid into the image", p)
		}
		rel, err := filepath.Rel(f.Src, p)
		if err != nil {
			return err
		}
		dst := path.Join(f.Dst, filepath.ToSlash(rel))
		if err := visit(p, dst, fi, permBits(fi.Mode())); err != nil {
			return fmt.Errorf("image input file %s: %w", p, err)
		}
		return nil
	})
}
