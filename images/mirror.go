package images

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Where the Debian packages of the node come from, and the keys that
// vouch for them.
const (
	// MirrorEnv names a Debian mirror URL to install the node from.
	MirrorEnv = "PIDREUSE_DEBIAN_MIRROR"
	// KeyringEnv names the keyring that signs that mirror's Release
	// files (default DefaultKeyring).
	KeyringEnv = "PIDREUSE_DEBIAN_KEYRING"
	// DefaultKeyring is where the debian-archive-keyring package puts
	// Debian's archive keys, on Debian and on Ubuntu alike.
	DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
	// MirrorSourcesName is the name the generated sources file is handed
	// to mmdebstrap under: the .sources suffix says deb822.
	MirrorSourcesName = "pidreuse-debian.sources"
)

// publicDebianMirror is Debian's own name for its mirror network, the
// default of mmdebstrap and debootstrap for Debian suites. Neither
// debian-archive-keyring nor distro-info-data carries it, so it is
// written here, once: the only mirror pidreuse names. It is used only on
// a host that is not Debian and when MirrorEnv is unset (a hosted Ubuntu
// CI runner, whose own apt sources have no bookworm).
const publicDebianMirror = "http://deb.debian.org/debian"

// AptSources is where mmdebstrap takes the node's packages from.
type AptSources struct {
	// Path is the host's own apt sources file, or "" when Data is
	// generated for a mirror.
	Path string
	// Data is the generated deb822 file for Mirror; nil for Path.
	Data []byte
	// Mirror and Keyring, when Data is generated.
	Mirror, Keyring string
}

// String says where the packages come from, for a person.
func (s AptSources) String() string {
	if s.Path != "" {
		return "this machine's apt sources " + s.Path
	}
	return fmt.Sprintf("Debian mirror %s, keyring %s", s.Mirror, s.Keyring)
}

// apply puts the sources into in.
func (s AptSources) apply(in *Inputs) {
	if s.Path != "" {
		in.AptSources = s.Path
		return
	}
	in.AptSources = MirrorSourcesName
	in.AptSourcesData = s.Data
}

// FindDebianSources decides where the node's packages come from, for
// suite: the mirror in MirrorEnv when set; else, on a Debian host, the
// host's own apt sources under etc/apt (what an install behind a local
// mirror or proxy must use, and what every image was built from before
// there was a choice: the hash stays the same); else the public Debian
// mirror. A mirror comes with the keyring in KeyringEnv or DefaultKeyring,
// which must exist. The mirror, the suites and the keyring path are in the
// generated file, so they are part of the image's input hash.
func FindDebianSources(suite, etc string, getenv func(string) string) (AptSources, error) {
	mirror := getenv(MirrorEnv)
	if mirror == "" {
		id, err := osID(etc)
		if err != nil {
			return AptSources{}, err
		}
		if id == "debian" {
			p, err := FindAptSources(filepath.Join(etc, "apt"))
			if err != nil {
				return AptSources{}, fmt.Errorf("%w (or set %s to a Debian mirror URL)", err, MirrorEnv)
			}
			return AptSources{Path: p}, nil
		}
		mirror = publicDebianMirror
	}
	u, err := url.Parse(mirror)
	if err != nil || u.Host == "" && u.Scheme != "file" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
		return AptSources{}, fmt.Errorf("%s=%q: want an http, https or file URL of a Debian mirror (the dir holding dists/ and pool/)", MirrorEnv, mirror)
	}
	keyring := getenv(KeyringEnv)
	if keyring == "" {
		keyring = DefaultKeyring
	}
	if !filepath.IsAbs(keyring) {
		return AptSources{}, fmt.Errorf("%s=%q: want an absolute path", KeyringEnv, keyring)
	}
	if _, err := os.Stat(keyring); err != nil {
		return AptSources{}, fmt.Errorf("Debian archive keyring for %s: %w (install the debian-archive-keyring package: make deps does, or set %s)", mirror, err, KeyringEnv)
	}
	return AptSources{Data: mirrorSources(mirror, suite, keyring), Mirror: mirror, Keyring: keyring}, nil
}

// mirrorSources is the deb822 sources file for mirror: the suite and its
// updates, main only, signed by keyring.
func mirrorSources(mirror, suite, keyring string) []byte {
	return fmt.Appendf(nil, "Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: %s\n",
		mirror, suite, suite, keyring)
}

// osID is the ID field of etc/os-release (falling back to
// /usr/lib/os-release as os-release(5) says), e.g. "debian", "ubuntu".
func osID(etc string) (string, error) {
	var lastErr error
	for _, p := range []string{filepath.Join(etc, "os-release"), filepath.Join(etc, "..", "usr", "lib", "os-release")} {
		f, err := os.Open(p)
		if err != nil {
			lastErr = err
			continue
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ID="); ok {
				return strings.Trim(v, `"'`), nil
			}
		}
		return "", nil
	}
	if errors.Is(lastErr, os.ErrNotExist) {
		return "", nil // not told: not Debian
	}
	return "", fmt.Errorf("which distribution is this: %w", lastErr)
}
