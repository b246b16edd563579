package components

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeCRIO117 is the shape of CRI-O 1.17's tree, cut down to what the
// build reads.
func fakeCRIO117() map[string]string {
	return map[string]string{
		"go.mod": "module github.com/cri-o/cri-o\n\ngo 1.13\n\nrequire github.com/json-iterator/go v1.1.9\n",
		"cmd/crio/main.go": "package main\n\n// gitCommit is the commit that the binary is being built from.\n" +
			"var gitCommit = \"\"\n\nvar notAString = 3\n\nfunc main() {}\n",
		"internal/version/version.go": "package version\n\n// Version is the version of the build.\nconst Version = \"1.17.5\"\n",
		"vendor/modules.txt": "# github.com/json-iterator/go v1.1.9\ngithub.com/json-iterator/go\n" +
			"# github.com/modern-go/reflect2 v1.0.1\ngithub.com/modern-go/reflect2\n",
		"vendor/github.com/containers/image/v5/transports/alltransports/ostree_stub.go": "// +build !containers_image_ostree !linux\n\npackage alltransports\n",
		"vendor/github.com/containers/storage/drivers/register/register_btrfs.go":       "// +build !exclude_graphdriver_btrfs,linux\n\npackage register\n",
		"vendor/github.com/containers/storage/drivers/btrfs/version.go":                 "//go:build linux && !btrfs_noversion\n// +build linux,!btrfs_noversion\n\npackage btrfs\n",
		"vendor/github.com/seccomp/libseccomp-golang/seccomp.go":                        "// +build linux\n\npackage seccomp\n",
		"internal/config/seccomp/seccomp.go":                                            "// +build seccomp\n\npackage seccomp\n",
		"vendor/x/testdata/ignored.go":                                                  "// +build containers_image_openpgp\n\npackage ignored\n",
		"pinns/Makefile":                                                                "src = $(wildcard *.c)\n",
		"pinns/pinns.c":                                                                 "int main(void) { return 0; }\n",
	}
}

func TestInspectCRIOTree(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, fakeCRIO117())
	tree, err := inspectCRIOTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tree.version != "1.17.5" || tree.goVersion != "1.13" || tree.toolchain != "" {
		t.Errorf("version %q go %q toolchain %q", tree.version, tree.goVersion, tree.toolchain)
	}
	if !tree.vendor || tree.mode() != "-mod=vendor" || tree.reflect2 != "v1.0.1" {
		t.Errorf("vendor %v mode %s reflect2 %q", tree.vendor, tree.mode(), tree.reflect2)
	}
	if tree.pinns != filepath.Join(dir, "pinns") {
		t.Errorf("pinns = %q", tree.pinns)
	}
	// containers_image_ostree_stub: c/image v5 knows containers_image_ostree
	// only. containers_image_openpgp: only under testdata, which is skipped.
	want := []string{"exclude_graphdriver_btrfs", "btrfs_noversion", "seccomp"}
	if !slices.Equal(tree.tags, want) {
		t.Errorf("tags %v, want %v", tree.tags, want)
	}
	if !slices.Equal(tree.stamps, []string{"main.gitCommit"}) {
		t.Errorf("stamps %v, want main.gitCommit", tree.stamps)
	}
	if s := tree.String(); !strings.Contains(s, "CRI-O 1.17.5: go 1.13, vendor/, reflect2 v1.0.1, pinns") {
		t.Errorf("String() = %q", s)
	}
}

func TestInspectCRIOTreeModern(t *testing.T) {
	// A tree without vendor/ or pinns, with a toolchain line and the
	// version variables of CRI-O 1.18-1.25 and 1.36.
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"go.mod":           "go 1.27.0\n\ntoolchain go1.27.2\n\nmodule github.com/cri-o/cri-o\n",
		"cmd/crio/main.go": "package main\n\nfunc main() {}\n",
		"internal/version/version.go": "package version\n\nconst Version = \"1.99.0\"\n\nvar (\n" +
			"\tgitCommit    string\n\tgitTreeState string\n\tbuildDate    string\n\tbuildCommit  string\n\tother string\n)\n" +
			"var ReleaseMinorVersions = []string{\"1.98\"}\n",
		"internal/version/version_test.go": "package version\n\nvar testOnly string\n",
	})
	tree, err := inspectCRIOTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tree.vendor || tree.mode() != "-mod=mod" || tree.pinns != "" || tree.reflect2 != "" {
		t.Errorf("vendor %v mode %s pinns %q reflect2 %q", tree.vendor, tree.mode(), tree.pinns, tree.reflect2)
	}
	if tree.goVersion != "1.27.0" || tree.toolchain != "go1.27.2" {
		t.Errorf("go %q toolchain %q", tree.goVersion, tree.toolchain)
	}
	v := crioModule + "/internal/version."
	want := []string{v + "gitCommit", v + "gitTreeState", v + "buildDate", v + "buildCommit"}
	if !slices.Equal(tree.stamps, want) {
		t.Errorf("stamps %v, want %v", tree.stamps, want)
	}
}

func TestInspectNotCRIO(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"no go.mod":      {"README": "x"},
		"another module": {"go.mod": "module example.com/x\n", "cmd/crio/main.go": "package main\n"},
		"no cmd/crio":    {"go.mod": "module github.com/cri-o/cri-o\n"},
	} {
		dir := t.TempDir()
		writeTree(t, dir, files)
		if _, err := inspectCRIOTree(dir); err == nil || !strings.Contains(err.Error(), "not a CRI-O source tree") {
			t.Errorf("%s: err = %v, want 'not a CRI-O source tree'", name, err)
		}
	}
}

func TestConstraintTags(t *testing.T) {
	for _, c := range []struct {
		header string
		want   []string
	}{
		{"//go:build linux && !seccomp\n", []string{"linux", "seccomp"}},
		{"// +build !containers_image_ostree !linux\n", []string{"containers_image_ostree", "linux"}},
		{"// Copyright\n\n//go:build a || (b && !c)\n// +build a b,!c\n", []string{"a", "b", "c"}},
		{"// not a constraint: go:build x\n", nil},
		{"//go:build (\n", nil}, // unparsable: ignored
	} {
		if got := constraintTags([]byte(c.header)); !slices.Equal(got, c.want) {
			t.Errorf("constraintTags(%q) = %v, want %v", c.header, got, c.want)
		}
	}
}

func TestCRIOTreeLDFlags(t *testing.T) {
	date := time.Date(2020, 9, 1, 16, 55, 45, 0, time.UTC)
	v := crioModule + "/internal/version."
	for _, c := range []struct {
		name   string
		stamps []string
		st     crioStamp
		want   string
	}{
		{"1.17 clean", []string{"main.gitCommit"}, crioStamp{commit: "6b97f8", date: date},
			"-s -w -X main.gitCommit=6b97f8"},
		{"1.17 dirty", []string{"main.gitCommit"}, crioStamp{commit: "6b97f8", dirty: true},
			"-s -w -X main.gitCommit=6b97f8-dirty"},
		{"1.18 dirty", []string{v + "gitCommit", v + "gitTreeState", v + "buildDate"}, crioStamp{commit: "abc", dirty: true, date: date},
			fmt.Sprintf("-s -w -X %sgitCommit=abc -X %sgitTreeState=dirty -X %sbuildDate=2020-09-01T16:55:45Z", v, v, v)},
		{"no git", []string{v + "gitCommit", v + "gitTreeState", v + "buildDate"}, crioStamp{date: date},
			fmt.Sprintf("-s -w -X %sbuildDate=2020-09-01T16:55:45Z", v)},
		{"1.36", []string{v + "buildDate", v + "buildCommit"}, crioStamp{commit: "abc", date: date},
			fmt.Sprintf("-s -w -X %sbuildDate=2020-09-01T16:55:45Z -X %sbuildCommit=abc", v, v)},
	} {
		if got := crioTreeLDFlags(c.stamps, c.st); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestGoToolchain(t *testing.T) {
	for _, c := range []struct {
		local, goLine, toolchain, want string
	}{
		{"go1.26.8", "1.12", "", "local"},
		{"go1.26.8", "1.26.8", "", "local"},
		{"go1.26.8", "1.26", "", "local"},
		{"go1.26.8", "1.24.6", "go1.25.1", "local"},
		{"go1.26.8", "1.26.4", "default", "local"},
		{"go1.26.8", "", "", "local"},
		{"go1.26.8", "1.27.0", "", "go1.27.0"},
		{"go1.26.8", "1.27", "", "go1.27.0"},
		{"go1.26.8", "1.26.9", "", "go1.26.9"},
		{"go1.26.8", "1.26.0", "go1.27.2", "go1.27.2"},
		{"go1.26.8", "1.27rc1", "", "go1.27rc1"},
		{"go1.27rc1", "1.27.0", "", "go1.27.0"},
		{"go1.27.0", "1.27rc2", "", "local"},
	} {
		got, err := goToolchain(c.local, c.goLine, c.toolchain)
		if err != nil || got != c.want {
			t.Errorf("goToolchain(%q, %q, %q) = %q, %v; want %q", c.local, c.goLine, c.toolchain, got, err, c.want)
		}
	}
	for _, bad := range [][3]string{{"devel", "1.12", ""}, {"go1.26.8", "1.x", ""}} {
		if _, err := goToolchain(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("goToolchain%q accepted", bad)
		}
	}
}

func TestMentionedTagsInDirs(t *testing.T) {
	// Module mode: the package dirs of the build, each without its
	// subdirectories (they are other packages, listed or not).
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"image/alltransports/ostree_stub.go": "//go:build !containers_image_ostree || !linux\n\npackage alltransports\n",
		"image/signature/mechanism_gpgme.go": "//go:build !containers_image_openpgp\n\npackage signature\n",
		"image/signature/sub/x.go":           "//go:build seccomp\n\npackage sub\n",
		"notlisted/x.go":                     "//go:build exclude_graphdriver_btrfs\n\npackage x\n",
	})
	dirs := []string{filepath.Join(root, "image", "alltransports"), filepath.Join(root, "image", "signature")}
	got, err := mentionedTagsInDirs(dirs, crioWantedTags)
	if err != nil || !slices.Equal(got, []string{"containers_image_openpgp"}) {
		t.Errorf("mentionedTagsInDirs = %v, %v; want [containers_image_openpgp]", got, err)
	}
}
