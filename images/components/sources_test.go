package components

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/images/versions"
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

func TestLocateCRIOSource(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeTree(t, b, map[string]string{"cri-o-v1.17.5.tar.gz": "", "cri-o/.git/HEAD": ""})
	writeTree(t, a, map[string]string{"cri-o/.git/HEAD": "", "cri-o-v1.16.2/.git/HEAD": ""})
	for _, c := range []struct {
		tag  string
		dirs []string
		want Source
	}{
		// The tarball comes before clones in a dir; dirs go in order.
		{"v1.17.5", []string{b, a}, Source{fromTarball, filepath.Join(b, "cri-o-v1.17.5.tar.gz")}},
		{"v1.17.5", []string{a, b}, Source{fromClone, filepath.Join(a, "cri-o")}},
		// A clone named for the tag comes before a clone of everything.
		{"v1.16.2", []string{a}, Source{fromClone, filepath.Join(a, "cri-o-v1.16.2")}},
	} {
		got, ok := locateCRIOSource(c.tag, c.dirs)
		if !ok || got != c.want {
			t.Errorf("locate %s in %v = %+v, %v; want %+v", c.tag, c.dirs, got, ok, c.want)
		}
	}
	if _, ok := locateCRIOSource("v1.17.5", []string{t.TempDir(), ""}); ok {
		t.Error("found a source in an empty dir")
	}
}

// isolate points FindCRIOSource at a new cache dir and at upstream.
func isolate(t *testing.T, sources, upstream string) string {
	t.Helper()
	cache := t.TempDir()
	t.Setenv("PIDREUSE_CACHE_DIR", cache)
	t.Setenv(SourcesEnv, sources)
	t.Setenv(UpstreamEnv, upstream)
	return filepath.Join(cache, "sources", cloneName)
}

func TestFindCRIOSourceFetchesTheTagIntoTheCache(t *testing.T) {
	repo, _, pin := fakeRelease(t)
	ctx := context.Background()
	clone := isolate(t, "", "file://"+repo)
	got, err := FindCRIOSource(ctx, pin)
	if err != nil {
		t.Fatal(err)
	}
	if got != (Source{fromClone, clone}) {
		t.Fatalf("FindCRIOSource = %+v, want the cached clone %s", got, clone)
	}
	// Bare: nothing is ever checked out; the build reads git archive.
	if bare := gitT(t, clone, "rev-parse", "--is-bare-repository"); bare != "true" {
		t.Errorf("cached clone is not bare: %s", bare)
	}
	if tagged := gitT(t, clone, "rev-parse", pin.Tag+"^{commit}"); tagged != pin.Commit {
		t.Errorf("cached tag names %s, want %s", tagged, pin.Commit)
	}
	w := testWorkspace(t)
	tree, err := w.extractCRIOSource(ctx, pin, got, w.src)
	if err != nil {
		t.Fatal(err)
	}
	checkExtracted(t, tree, pin.Commit)
	entries, _ := os.ReadDir(filepath.Dir(clone))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".new-") {
			t.Errorf("temporary clone left: %s", e.Name())
		}
	}
	// Once cached, upstream is not asked again.
	t.Setenv(UpstreamEnv, "file://"+filepath.Join(t.TempDir(), "gone"))
	if again, err := FindCRIOSource(ctx, pin); err != nil || again != got {
		t.Errorf("second FindCRIOSource = %+v, %v; want the cache, no fetch", again, err)
	}
}

func TestFindCRIOSourceOrderAndRefusals(t *testing.T) {
	repo, tarball, pin := fakeRelease(t)
	ctx := context.Background()

	// $PIDREUSE_CRIO_SOURCES comes first, before the cache or upstream.
	dir := t.TempDir()
	if err := os.Symlink(tarball, filepath.Join(dir, "cri-o-v9.9.9.tar.gz")); err != nil {
		t.Fatal(err)
	}
	isolate(t, t.TempDir()+string(filepath.ListSeparator)+dir, "file://"+filepath.Join(t.TempDir(), "gone"))
	if got, err := FindCRIOSource(ctx, pin); err != nil || got != (Source{fromTarball, filepath.Join(dir, "cri-o-v9.9.9.tar.gz")}) {
		t.Errorf("with %s: %+v, %v", SourcesEnv, got, err)
	}

	// An upstream whose tag names another commit is an error, not a skip.
	moved := pin
	moved.Commit = strings.Repeat("1", 40)
	isolate(t, "", "file://"+repo)
	if _, err := FindCRIOSource(ctx, moved); err == nil || IsNoSource(err) || !strings.Contains(err.Error(), "not the upstream tag") {
		t.Errorf("moved tag upstream: %v", err)
	}
}

func TestFindCRIOSourceUnreachableUpstreamAnswersAtOnce(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	pin := versions.CRIOSources()[1]
	// Nothing listens on port 1 of the loopback address: refused at once,
	// as a network without a route to upstream fails here.
	for _, c := range []struct {
		name, sources, upstream string
		want                    []string
	}{
		{"unset", "", "https://127.0.0.1:1/cri-o/cri-o", []string{SourcesEnv + " (unset)", "127.0.0.1"}},
		{"empty dir", t.TempDir(), "file:///nonexistent/cri-o", []string{"no cri-o-v1.17.5.tar.gz, cri-o-v1.17.5, cri-o in it", "/nonexistent/cri-o"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clone := isolate(t, c.sources, c.upstream)
			start := time.Now()
			_, err := FindCRIOSource(context.Background(), pin)
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("took %s to say there is no source", took)
			}
			if !IsNoSource(err) {
				t.Fatalf("want a NoSourceError, got %v", err)
			}
			want := append([]string{"CRI-O v1.17.5 source not available", "the cached clone " + clone + " (absent)", "fetching tag v1.17.5", "set " + SourcesEnv + " to a dir holding a clone of upstream CRI-O as cri-o/"}, c.want...)
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("not one line: %q", err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(clone)); len(entries) > 1 { // the lock file
				t.Errorf("a failed fetch left %v", entries)
			}
		})
	}
}

func TestCheckSourcesOnlyAsksForPinnedTrees(t *testing.T) {
	isolate(t, "", "file:///nonexistent/cri-o")
	ctx := context.Background()
	if err := CheckSources(ctx, []Component{{Kubelet, versions.KubeletLegacy}, {CRIO, versions.CRIO}, {Pinns, versions.CRIO}}); err != nil {
		t.Errorf("components from the module proxy need no source: %v", err)
	}
	err := CheckSources(ctx, []Component{{Kubelet, versions.KubeletLegacy}, {CRIO, versions.CRIO116}})
	if !IsNoSource(err) || !strings.Contains(err.Error(), versions.CRIO116) {
		t.Errorf("CRI-O %s without a source: %v", versions.CRIO116, err)
	}
}
