package components

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeTree writes files (slash-separated path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSourceDirs(t *testing.T) {
	// /work/shared next to /work/ci-clone: the binary's checkout and the
	// current dir's checkout each give their ../shared/third_party/cri-o.
	root := t.TempDir()
	clone := filepath.Join(root, "ci-clone")
	other := filepath.Join(root, "deep", "wt")
	writeTree(t, clone, map[string]string{"go.mod": "module " + selfModule + "\n", "bin/.keep": "", "images/components/x.go": ""})
	writeTree(t, other, map[string]string{"go.mod": "module " + selfModule + "\n"})
	writeTree(t, root, map[string]string{"elsewhere/go.mod": "module example.com/other\n"})

	got := sourceDirs("", []string{filepath.Join(clone, "bin"), filepath.Join(clone, "images", "components"), other, filepath.Join(root, "elsewhere")})
	want := []string{filepath.Join(root, "shared", "third_party", "cri-o"), filepath.Join(root, "deep", "shared", "third_party", "cri-o")}
	if !slices.Equal(got, want) {
		t.Errorf("sourceDirs = %v, want %v", got, want)
	}
	// The variable replaces the default, in its order.
	if got := sourceDirs("/a::/b/", []string{clone}); !slices.Equal(got, []string{"/a", "/b"}) {
		t.Errorf("sourceDirs with %s = %v", SourcesEnv, got)
	}
	if got := sourceDirs("", []string{filepath.Join(root, "elsewhere")}); len(got) != 0 {
		t.Errorf("sourceDirs outside any checkout = %v", got)
	}
}

func TestLocateCRIOSource(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, b, map[string]string{"cri-o-v1.17.5.tar.gz": "", "cri-o/.git/HEAD": ""})
	writeTree(t, a, map[string]string{"cri-o/.git/HEAD": "", "cri-o-v1.16.2/.git/HEAD": ""})
	for _, c := range []struct {
		tag  string
		dirs []string
		want located
	}{
		// The tarball comes before clones in a dir; dirs go in order.
		{"v1.17.5", []string{b, a}, located{fromTarball, filepath.Join(b, "cri-o-v1.17.5.tar.gz")}},
		{"v1.17.5", []string{a, b}, located{fromClone, filepath.Join(a, "cri-o")}},
		// A clone named for the tag comes before a clone of everything.
		{"v1.16.2", []string{a}, located{fromClone, filepath.Join(a, "cri-o-v1.16.2")}},
	} {
		got, err := locateCRIOSource(c.tag, c.dirs)
		if err != nil || got != c.want {
			t.Errorf("locate %s in %v = %+v, %v; want %+v", c.tag, c.dirs, got, err, c.want)
		}
	}
	empty := t.TempDir()
	_, err := locateCRIOSource("v1.17.5", []string{empty})
	for _, want := range []string{empty, "cri-o-v1.17.5.tar.gz", "cri-o-v1.17.5, cri-o", SourcesEnv, "git clone --branch v1.17.5"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("not-found error lacks %q: %v", want, err)
		}
	}
	if _, err := locateCRIOSource("v1.17.5", nil); err == nil || !strings.Contains(err.Error(), "no pidreuse checkout") {
		t.Errorf("error with no dirs: %v", err)
	}
}

func TestSourceDirsFromThisCheckout(t *testing.T) {
	// go test runs in images/components of a checkout: the default must
	// be that checkout's ../shared/third_party/cri-o.
	t.Setenv(SourcesEnv, "")
	wd, _ := os.Getwd()
	want := filepath.Join(wd, "..", "..", "..", "shared", "third_party", "cri-o")
	if got := SourceDirs(); !slices.Contains(got, want) {
		t.Errorf("SourceDirs() = %v, want it to hold %s", got, want)
	}
}
