package components

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/images/versions"
)

func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "advice.detachedHead=false"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// fakeRelease makes a repository with a tagged commit shaped like a CRI-O
// release (an export-subst file, as vendored client-go has), its release
// tarball made the way the shared ones were, and the pin of both.
func fakeRelease(t *testing.T) (repo, tarball string, pin versions.CRIOSource) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	repo = filepath.Join(t.TempDir(), "upstream")
	os.MkdirAll(repo, 0o755)
	gitT(t, repo, "init", "-q")
	writeTree(t, repo, map[string]string{
		"go.mod":                               "module github.com/cri-o/cri-o\n",
		"cmd/crio/main.go":                     "package main\n",
		"vendor/k8s.io/version/base.go":        "package version\n\nvar gitVersion = \"v0.0.0-master+$Format:%h$\"\n",
		"vendor/k8s.io/version/.gitattributes": "base.go export-subst\n",
	})
	os.Symlink("cmd/crio/main.go", filepath.Join(repo, "link"))
	os.Chmod(filepath.Join(repo, "go.mod"), 0o755)
	gitT(t, repo, "add", "-A")
	gitT(t, repo, "commit", "-q", "-m", "release")
	gitT(t, repo, "tag", "v9.9.9")
	pin = versions.CRIOSource{Tag: "v9.9.9", Commit: gitT(t, repo, "rev-parse", "HEAD")}
	tarData, err := exec.Command("git", "-C", repo, "-c", "core.abbrev=10", "archive", "--format=tar", "--prefix=cri-o-v9.9.9/", "v9.9.9").Output()
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarData)
	zw.Close()
	tarball = filepath.Join(t.TempDir(), "cri-o-v9.9.9.tar.gz")
	os.WriteFile(tarball, gz.Bytes(), 0o444)
	pin.TarSHA256, pin.TarballSHA256 = sha(tarData), sha(gz.Bytes())
	return repo, tarball, pin
}

func testWorkspace(t *testing.T) *workspace {
	return &workspace{src: t.TempDir(), log: io.Discard, progress: func(string) {}}
}

func checkExtracted(t *testing.T, tree pinnedTree, commit string) {
	t.Helper()
	base, err := os.ReadFile(filepath.Join(tree.dir, "vendor", "k8s.io", "version", "base.go"))
	if err != nil || !strings.Contains(string(base), "master+"+commit[:10]+`"`) {
		t.Errorf("export-subst file = %q, %v; want the 10-char hash", base, err)
	}
	if link, err := os.Readlink(filepath.Join(tree.dir, "link")); err != nil || link != "cmd/crio/main.go" {
		t.Errorf("symlink = %q, %v", link, err)
	}
	if st, err := os.Stat(filepath.Join(tree.dir, "go.mod")); err != nil || st.Mode().Perm()&0o100 == 0 {
		t.Errorf("executable bit lost: %v, %v", st.Mode(), err)
	}
	if tree.commitTime.IsZero() {
		t.Error("no commit time")
	}
}

func TestExtractTarball(t *testing.T) {
	_, tarball, pin := fakeRelease(t)
	w := testWorkspace(t)
	tree, err := w.extractCRIOSource(context.Background(), pin, Source{fromTarball, tarball}, w.src)
	if err != nil {
		t.Fatal(err)
	}
	if tree.dir != filepath.Join(w.src, "cri-o-v9.9.9") {
		t.Errorf("tree at %s", tree.dir)
	}
	checkExtracted(t, tree, pin.Commit)

	bad := pin
	bad.TarballSHA256 = strings.Repeat("0", 64)
	w = testWorkspace(t)
	if _, err := w.extractCRIOSource(context.Background(), bad, Source{fromTarball, tarball}, w.src); err == nil || !strings.Contains(err.Error(), "not the release tarball") {
		t.Errorf("tarball with another sha256: %v", err)
	}
	if entries, _ := os.ReadDir(w.src); len(entries) != 0 {
		t.Errorf("an unchecked tarball was unpacked: %v", entries)
	}
	bad = pin
	bad.Commit = strings.Repeat("1", 40)
	w = testWorkspace(t)
	if _, err := w.extractCRIOSource(context.Background(), bad, Source{fromTarball, tarball}, w.src); err == nil || !strings.Contains(err.Error(), "names commit") {
		t.Errorf("tarball of another commit: %v", err)
	}
}

func TestExtractClone(t *testing.T) {
	repo, _, pin := fakeRelease(t)
	ctx := context.Background()

	// A shallow clone of the tag: git's own hash length would be shorter
	// there; the pinned core.abbrev keeps the archive equal to the tarball.
	shallow := filepath.Join(t.TempDir(), "cri-o-v9.9.9")
	gitT(t, repo, "clone", "-q", "--depth", "1", "--branch", "v9.9.9", "file://"+repo, shallow)
	// Work-tree edits and a later commit do not reach the build: the
	// pinned commit is archived.
	os.WriteFile(filepath.Join(shallow, "cmd", "crio", "main.go"), []byte("package main // edited\n"), 0o644)
	for _, clone := range []string{repo, shallow} {
		w := testWorkspace(t)
		tree, err := w.extractCRIOSource(ctx, pin, Source{fromClone, clone}, w.src)
		if err != nil {
			t.Fatalf("%s: %v", clone, err)
		}
		checkExtracted(t, tree, pin.Commit)
		if main, _ := os.ReadFile(filepath.Join(tree.dir, "cmd", "crio", "main.go")); string(main) != "package main\n" {
			t.Errorf("%s: extracted main.go = %q, want the commit's", clone, main)
		}
	}

	// The tag moved: refused even though the pinned commit is there.
	writeTree(t, repo, map[string]string{"extra": "x"})
	gitT(t, repo, "add", "-A")
	gitT(t, repo, "commit", "-q", "-m", "after")
	gitT(t, repo, "tag", "-f", "v9.9.9")
	w := testWorkspace(t)
	if _, err := w.extractCRIOSource(ctx, pin, Source{fromClone, repo}, w.src); err == nil || !strings.Contains(err.Error(), "not the upstream tag") {
		t.Errorf("moved tag: %v", err)
	}
	// No tag and no commit.
	other := filepath.Join(t.TempDir(), "other")
	os.MkdirAll(other, 0o755)
	gitT(t, other, "init", "-q")
	if _, err := w.extractCRIOSource(ctx, pin, Source{fromClone, other}, w.src); err == nil || !strings.Contains(err.Error(), "fetch origin tag v9.9.9") {
		t.Errorf("clone without the commit: %v", err)
	}
	// The commit is there but its archive is not the tarball.
	gitT(t, repo, "tag", "-f", "v9.9.9", pin.Commit)
	bad := pin
	bad.TarSHA256 = strings.Repeat("0", 64)
	w = testWorkspace(t)
	if _, err := w.extractCRIOSource(ctx, bad, Source{fromClone, repo}, w.src); err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Errorf("archive with another sha256: %v", err)
	}
	if entries, _ := os.ReadDir(w.src); len(entries) != 0 {
		t.Errorf("an unchecked archive was unpacked: %v", entries)
	}
}

// tarOf makes a tar stream of headers, each regular file with content x.
func tarOf(t *testing.T, hs ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hs {
		if h.Typeflag == tar.TypeReg {
			h.Size = 1
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	return b.Bytes()
}

func TestUntarRefuses(t *testing.T) {
	dir := func(n string) *tar.Header { return &tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755} }
	file := func(n string) *tar.Header { return &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644} }
	for name, hs := range map[string][]*tar.Header{
		"outside the prefix": {dir("p/"), file("q/x")},
		"dot-dot":            {dir("p/"), file("p/../x")},
		"absolute":           {file("/p/x")},
		"through a symlink":  {dir("p/"), {Name: "p/l", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, file("p/l/x")},
		"a hard link":        {dir("p/"), file("p/a"), {Name: "p/b", Typeflag: tar.TypeLink, Linkname: "p/a"}},
		"a device":           {dir("p/"), {Name: "p/d", Typeflag: tar.TypeChar}},
	} {
		dst := t.TempDir()
		if _, err := untar(bytes.NewReader(tarOf(t, hs...)), dst, "p/"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The whole stream is read, padding included, so a hash of it is whole.
	data := tarOf(t, dir("p/"), file("p/x"))
	data = append(data, make([]byte, 4096)...)
	r := bytes.NewReader(data)
	if _, err := untar(r, t.TempDir(), "p/"); err != nil || r.Len() != 0 {
		t.Errorf("untar left %d bytes unread (%v)", r.Len(), err)
	}
}
