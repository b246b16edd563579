package components

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRewriteModulesTxt(t *testing.T) {
	const p = reflect2Module
	for _, c := range []struct {
		name, in, want string
	}{
		{"plain (CRI-O 1.16-1.22)",
			"# a v1\na\n# " + p + " v1.0.1\n" + p + "\n# z v2\nz\n",
			"# a v1\na\n# " + p + " v1.0.2\n" + p + "\n# z v2\nz\n"},
		{"explicit (go >= 1.14 trees)",
			"# " + p + " v1.0.1\n## explicit\n" + p + "\n",
			"# " + p + " v1.0.2\n## explicit\n" + p + "\n"},
		{"replaced by itself",
			"# " + p + " v1.0.1 => " + p + " v1.0.1\n" + p + "\n",
			"# " + p + " v1.0.2 => " + p + " v1.0.2\n" + p + "\n"},
		{"wildcard replace",
			"# " + p + " => " + p + " v1.0.1\n" + p + "\n",
			"# " + p + " => " + p + " v1.0.2\n" + p + "\n"},
	} {
		got, err := rewriteModulesTxt([]byte(c.in), p, "v1.0.1", "v1.0.2")
		if err != nil || string(got) != c.want {
			t.Errorf("%s: got %q, %v\nwant %q", c.name, got, err, c.want)
		}
		if v := vendoredVersion(got, p); v != "v1.0.2" {
			t.Errorf("%s: vendoredVersion after rewrite = %q", c.name, v)
		}
	}
	for name, in := range map[string]string{
		"absent":            "# a v1\na\n",
		"other version":     "# " + p + " v1.0.2\n" + p + "\n",
		"replaced by other": "# " + p + " v1.0.1 => example.com/fork v1.0.1\n",
		"listed twice":      "# " + p + " v1.0.1\n# " + p + " v1.0.1\n",
	} {
		if _, err := rewriteModulesTxt([]byte(in), p, "v1.0.1", "v1.0.2"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if v := vendoredVersion([]byte("# "+p+" v1.0.1 => "+p+" v1.0.3\n"), p); v != "v1.0.3" {
		t.Errorf("vendoredVersion of a replaced module = %q, want the replacement's", v)
	}
	// A package line with the module's name is not a header.
	if v := vendoredVersion([]byte(p+"\n"), p); v != "" {
		t.Errorf("vendoredVersion of a package line = %q", v)
	}
}

func TestRewriteGoModVersion(t *testing.T) {
	const p = reflect2Module
	in := "module github.com/cri-o/cri-o\n\ngo 1.15\n\nrequire (\n\t" + p + " v1.0.1 // indirect\n\tother.example/x v1.0.1\n)\n\nreplace " + p + " => " + p + " v1.0.1\n"
	got, changed, err := rewriteGoModVersion([]byte(in), p, "v1.0.1", "v1.0.2")
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	s := string(got)
	if strings.Contains(s, p+" v1.0.1") || !strings.Contains(s, p+" v1.0.2 // indirect") || !strings.Contains(s, "=> "+p+" v1.0.2") || !strings.Contains(s, "other.example/x v1.0.1") {
		t.Errorf("rewritten go.mod:\n%s", s)
	}
	plain := "module github.com/cri-o/cri-o\n\ngo 1.13\n\nrequire other.example/x v1.0.1\n"
	got, changed, err = rewriteGoModVersion([]byte(plain), p, "v1.0.1", "v1.0.2")
	if err != nil || changed || string(got) != plain {
		t.Errorf("go.mod without reflect2 changed (%v, %v):\n%s", changed, err, got)
	}
}

func TestCopyVendoredPackage(t *testing.T) {
	mod := t.TempDir()
	writeTree(t, mod, map[string]string{
		"reflect2.go": "package reflect2\n", "reflect2_test.go": "package reflect2\n", "LICENSE": "x",
		"go.mod": "module " + reflect2Module + "\n", ".travis.yml": "x", "tests/map_test.go": "package tests\n",
	})
	os.Chmod(filepath.Join(mod, "reflect2.go"), 0o444) // as in the module cache
	dst := filepath.Join(t.TempDir(), "vendor", "reflect2")
	if err := copyVendoredPackage(mod, dst); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dst)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "LICENSE go.mod reflect2.go" {
		t.Errorf("vendored %v, want LICENSE go.mod reflect2.go", names)
	}
	if st, err := os.Stat(filepath.Join(dst, "reflect2.go")); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("vendored file mode %v, %v; want 0644", st.Mode(), err)
	}
}
