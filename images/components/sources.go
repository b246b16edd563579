package components

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"
)

// SourcesEnv names the variable that lists the dirs (colon-separated)
// searched for CRI-O source tarballs and clones, instead of the default.
const SourcesEnv = "PIDREUSE_CRIO_SOURCES"

// selfModule is pidreuse's own module path: the default source dir is
// found next to the checkout whose go.mod declares it.
const selfModule = "github.com/pidreuse/pidreuse"

// sharedSources is where the shared dir next to a checkout keeps the
// CRI-O release tarballs.
var sharedSources = filepath.Join("..", "shared", "third_party", "cri-o")

// SourceDirs returns the dirs searched for CRI-O sources, in order: the
// dirs of $PIDREUSE_CRIO_SOURCES when it is set, else ../shared/third_party/cri-o
// next to the pidreuse checkout that holds the running binary (bin/pidreuse),
// then next to the checkout that holds the current directory (go test, go run).
func SourceDirs() []string {
	var starts []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			starts = append(starts, filepath.Dir(exe))
		}
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	return sourceDirs(os.Getenv(SourcesEnv), starts)
}

// sourceDirs is SourceDirs with its inputs passed in.
func sourceDirs(env string, starts []string) []string {
	var dirs []string
	add := func(d string) {
		for _, have := range dirs {
			if have == d {
				return
			}
		}
		dirs = append(dirs, d)
	}
	if env != "" {
		for _, d := range filepath.SplitList(env) {
			if d != "" {
				add(filepath.Clean(d))
			}
		}
		return dirs
	}
	for _, s := range starts {
		if root, ok := findCheckout(s); ok {
			add(filepath.Join(root, sharedSources))
		}
	}
	return dirs
}

// findCheckout returns the nearest dir at or above start whose go.mod
// declares pidreuse's module.
func findCheckout(start string) (string, bool) {
	for dir := filepath.Clean(start); ; dir = filepath.Dir(dir) {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modfile.ModulePath(data) == selfModule {
			return dir, true
		}
		if filepath.Dir(dir) == dir {
			return "", false
		}
	}
}

// sourceKind says how a located source is read and checked.
type sourceKind int

const (
	fromTarball sourceKind = iota // cri-o-<tag>.tar.gz
	fromClone                     // a git clone, bare or not
)

// located is where one CRI-O release's source was found.
type located struct {
	kind sourceKind
	path string
}

// candidates are the names looked for in each source dir, in order: the
// release tarball, a clone of that tag, a clone of the whole repository.
func candidates(tag string) []struct {
	name string
	kind sourceKind
} {
	return []struct {
		name string
		kind sourceKind
	}{
		{"cri-o-" + tag + ".tar.gz", fromTarball},
		{"cri-o-" + tag, fromClone},
		{"cri-o", fromClone},
	}
}

// locateCRIOSource returns the first candidate for tag that exists in
// dirs. The first one found is the one used: a candidate that then fails
// its check is an error, never a reason to look further, so the source of
// a build is always the one the search order names.
func locateCRIOSource(tag string, dirs []string) (located, error) {
	for _, d := range dirs {
		for _, c := range candidates(tag) {
			p := filepath.Join(d, c.name)
			if _, err := os.Stat(p); err == nil {
				return located{c.kind, p}, nil
			}
		}
	}
	var names []string
	for _, c := range candidates(tag) {
		names = append(names, c.name)
	}
	where := "nowhere: " + SourcesEnv + " is unset and no pidreuse checkout was found above the binary or the current directory"
	if len(dirs) > 0 {
		where = strings.Join(dirs, ", ")
	}
	return located{}, fmt.Errorf("CRI-O %s source not found: looked for %s in %s. "+
		"Put the release tarball there (see third_party/cri-o/SHA256SUMS of the shared dir), or "+
		"`git clone --branch %s` the upstream repository (github.com/cri-o/cri-o) to DIR/cri-o-%s and set %s=DIR",
		tag, strings.Join(names, ", "), where, tag, tag, SourcesEnv)
}
