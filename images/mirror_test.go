package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeEtc is an /etc with an os-release of the given ID and one apt
// sources file.
func fakeEtc(t *testing.T, id string) string {
	t.Helper()
	etc := filepath.Join(t.TempDir(), "etc")
	if id != "" {
		writeFile(t, filepath.Join(etc, "os-release"), "PRETTY_NAME=\"x\"\nID="+id+"\nVERSION_ID=\"1\"\n", 0o644)
	}
	writeFile(t, filepath.Join(etc, "apt", "sources.list.d", "host.sources"), "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n", 0o644)
	return etc
}

func TestFindDebianSources(t *testing.T) {
	keyring := filepath.Join(t.TempDir(), "debian-archive-keyring.gpg")
	writeFile(t, keyring, "keys", 0o644)
	env := func(kv ...string) func(string) string {
		m := map[string]string{KeyringEnv: keyring}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		name        string
		id          string
		getenv      func(string) string
		wantHost    bool   // the host's own file
		wantMirror  string // a generated file for this mirror
		wantErrPart string
	}{
		{name: "debian host: its own sources", id: "debian", getenv: env(), wantHost: true},
		{name: "ubuntu host: the public mirror", id: "ubuntu", getenv: env(), wantMirror: publicDebianMirror},
		{name: "quoted id", id: `"ubuntu"`, getenv: env(), wantMirror: publicDebianMirror},
		{name: "no os-release: not Debian", id: "", getenv: env(), wantMirror: publicDebianMirror},
		{name: "mirror given on Debian", id: "debian", getenv: env(MirrorEnv, "http://127.0.0.1:3142/debian"), wantMirror: "http://127.0.0.1:3142/debian"},
		{name: "mirror given on Ubuntu", id: "ubuntu", getenv: env(MirrorEnv, "file:///srv/mirror/debian"), wantMirror: "file:///srv/mirror/debian"},
		{name: "not a URL", id: "ubuntu", getenv: env(MirrorEnv, "mirror/debian"), wantErrPart: "want an http, https or file URL"},
		{name: "other scheme", id: "debian", getenv: env(MirrorEnv, "ftp://x/debian"), wantErrPart: "want an http, https or file URL"},
		{name: "no keyring", id: "ubuntu", getenv: env(KeyringEnv, "/nonexistent/keyring.gpg"), wantErrPart: "install the debian-archive-keyring package"},
		{name: "relative keyring", id: "ubuntu", getenv: env(KeyringEnv, "keyring.gpg"), wantErrPart: "want an absolute path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			etc := fakeEtc(t, c.id)
			got, err := FindDebianSources("bookworm", etc, c.getenv)
			if c.wantErrPart != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErrPart) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErrPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.wantHost {
				if got.Path != filepath.Join(etc, "apt", "sources.list.d", "host.sources") || got.Data != nil {
					t.Errorf("got %+v, want the host's file", got)
				}
				return
			}
			want := "Types: deb\nURIs: " + c.wantMirror + "\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: " + got.Keyring + "\n"
			if got.Path != "" || string(got.Data) != want || got.Mirror != c.wantMirror {
				t.Errorf("got %+v (%q), want a generated file:\n%s", got, got.Data, want)
			}
			if !strings.Contains(got.String(), c.wantMirror) {
				t.Errorf("String() = %q does not name the mirror", got)
			}
		})
	}
}

// A mirror is an input of the image: another mirror, another hash; the
// same bytes, generated or read from a file, the same hash.
func TestMirrorIsPartOfTheHash(t *testing.T) {
	in := testInputs(t)
	fromFile := mustHash(t, in)
	data, err := os.ReadFile(in.AptSources)
	if err != nil {
		t.Fatal(err)
	}
	gen := in
	gen.AptSources, gen.AptSourcesData = MirrorSourcesName, data
	if h := mustHash(t, gen); h != fromFile {
		t.Errorf("same sources generated: hash %s, from the file %s", h, fromFile)
	}
	a, b := gen, gen
	a.AptSourcesData = mirrorSources("http://a.invalid/debian", "bookworm", DefaultKeyring)
	b.AptSourcesData = mirrorSources("http://b.invalid/debian", "bookworm", DefaultKeyring)
	if mustHash(t, a) == mustHash(t, b) {
		t.Error("two mirrors, one hash")
	}
	bad := gen
	bad.AptSources = "/etc/apt/x.sources"
	if _, err := bad.Hash(); err == nil {
		t.Error("generated sources with a path for a name accepted")
	}
}
