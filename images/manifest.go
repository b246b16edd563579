package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Names of the files in a cache entry.
const (
	ManifestName  = "manifest.json"
	BaseDiskName  = "base.qcow2"
	KernelName    = "vmlinuz"
	InitrdName    = "initrd.img"
	ClientKeyName = "id_ed25519"
	// BuildLogName holds the output of the build's commands, kept for
	// diagnosing an image after the fact.
	BuildLogName = "build.log"
)

// Image is a complete cache entry.
type Image struct {
	// Dir is the cache entry directory.
	Dir string
	// BaseDisk is the qcow2 base disk. It is shared by every VM and must
	// only be used as a read-only backing file.
	BaseDisk string
	// Kernel and Initrd are for direct kernel boot with KernelCmdline.
	Kernel string
	Initrd string
	// ClientKey is the OpenSSH private key authorized for root (mode 0600).
	ClientKey string
	Manifest  Manifest
}

// Package is one installed Debian package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
}

// Artifact is one file of the cache entry, relative to its directory.
type Artifact struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// LaidFile is one file, directory or symlink laid into the rootfs from
// Inputs.Files.
type LaidFile struct {
	Dst    string      `json:"dst"`
	Kind   string      `json:"kind"`
	Mode   os.FileMode `json:"mode"`
	SHA256 string      `json:"sha256,omitempty"`
	Target string      `json:"target,omitempty"`
}

// Manifest records what an image is made of. It is written last, so its
// presence (and consistency with the files next to it) marks a complete
// entry.
type Manifest struct {
	FormatVersion int    `json:"format_version"`
	InputHash     string `json:"input_hash"`
	// BuiltAt and BuildDuration are informational; they are not inputs.
	BuiltAt       time.Time     `json:"built_at"`
	BuildDuration time.Duration `json:"build_duration_ns"`
	Suite         string        `json:"suite"`
	// AptSourcesSHA256 identifies the apt sources the packages came from.
	AptSourcesSHA256 string `json:"apt_sources_sha256"`
	// RequestedPackages is the sorted Inputs.Packages; Packages is
	// everything dpkg reports installed.
	RequestedPackages []string   `json:"requested_packages"`
	Packages          []Package  `json:"packages"`
	Files             []LaidFile `json:"files"`
	KernelVersion     string     `json:"kernel_version"`
	KernelCmdline     string     `json:"kernel_cmdline"`
	Kernel            Artifact   `json:"kernel"`
	Initrd            Artifact   `json:"initrd"`
	BaseDisk          Artifact   `json:"base_disk"`
	DiskSize          int64      `json:"disk_size"`
	Hostname          string     `json:"hostname"`
	// Prime is Inputs.Prime; PrimeError says why it failed (the first
	// boot then does its work).
	Prime      []string `json:"prime,omitempty"`
	PrimeError string   `json:"prime_error,omitempty"`
	// HostPublicKey is the guest sshd's only host key as an
	// authorized_keys line ("ssh-ed25519 AAAA... comment"); pin it.
	HostPublicKey string `json:"host_public_key"`
	// ClientPublicKey is the key authorized for root, same format.
	ClientPublicKey string `json:"client_public_key"`
}

// Load returns the complete cache entry for hash under cacheRoot.
func Load(cacheRoot, hash string) (*Image, error) {
	img, err := LoadDir(filepath.Join(cacheRoot, hash))
	if err != nil {
		return nil, err
	}
	if img.Manifest.InputHash != hash {
		return nil, fmt.Errorf("image %s: manifest is for input hash %s: remove the directory and rebuild", img.Dir, img.Manifest.InputHash)
	}
	return img, nil
}

// LoadDir reads the cache entry in dir and checks it is complete: the
// manifest parses and every artifact it names exists with the recorded
// size. Contents are not re-hashed, so this stays fast on a multi-GB disk.
func LoadDir(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("image %s has no %s: it was never built or the build did not finish: %w", dir, ManifestName, err)
		}
		return nil, fmt.Errorf("reading image manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image %s: corrupt %s (remove the directory and rebuild): %w", dir, ManifestName, err)
	}
	if m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("image %s has format version %d, this code builds %d: rebuild it", dir, m.FormatVersion, FormatVersion)
	}
	if m.InputHash == "" || m.HostPublicKey == "" || m.ClientPublicKey == "" {
		return nil, fmt.Errorf("image %s: manifest lacks the input hash or SSH keys: remove the directory and rebuild", dir)
	}
	for _, a := range []Artifact{m.BaseDisk, m.Kernel, m.Initrd} {
		if err := checkArtifact(dir, a); err != nil {
			return nil, err
		}
	}
	img := &Image{
		Dir:       dir,
		BaseDisk:  filepath.Join(dir, m.BaseDisk.Path),
		Kernel:    filepath.Join(dir, m.Kernel.Path),
		Initrd:    filepath.Join(dir, m.Initrd.Path),
		ClientKey: filepath.Join(dir, ClientKeyName),
		Manifest:  m,
	}
	fi, err := os.Stat(img.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("image %s: client key missing (remove the directory and rebuild): %w", dir, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// ssh refuses a private key others can read; say so here rather
		// than at the first connection.
		return nil, fmt.Errorf("image %s: client key %s has mode %v, ssh needs 0600: chmod 600 it", dir, img.ClientKey, fi.Mode().Perm())
	}
	return img, nil
}

func checkArtifact(dir string, a Artifact) error {
	if a.Path == "" || filepath.IsAbs(a.Path) || a.Path != filepath.Base(a.Path) {
		return fmt.Errorf("image %s: manifest names artifact %q outside the entry: remove the directory and rebuild", dir, a.Path)
	}
	fi, err := os.Stat(filepath.Join(dir, a.Path))
	if err != nil {
		return fmt.Errorf("image %s is incomplete (remove the directory and rebuild): %w", dir, err)
	}
	if fi.Size() != a.Size {
		return fmt.Errorf("image %s: %s is %d bytes, manifest says %d: remove the directory and rebuild", dir, a.Path, fi.Size(), a.Size)
	}
	return nil
}

// writeManifest writes m to dir and syncs it, since its presence is what
// marks the entry complete.
func writeManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	return writeFileSync(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644)
}

func writeFileSync(p string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	return f.Close()
}
