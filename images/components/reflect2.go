package components

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/pidreuse/pidreuse/images/versions"
)

// reflect2Module v1.0.1 crashes at run time under Go >= 1.18 (jsoniter's
// map marshalling dereferences nil); versions.Reflect2Fixed is the fix.
const (
	reflect2Module = "github.com/modern-go/reflect2"
	reflect2Broken = "v1.0.1"
)

// swapVendoredReflect2 puts reflect2 at versions.Reflect2Fixed into the
// tree's vendor/ in place of v1.0.1: its files, its line in
// vendor/modules.txt and, when go.mod names it, go.mod's requirement or
// replacement, so the go command's vendor consistency check agrees. The new
// version comes through the module proxy, checked against the checksum
// database like any download.
func (w *workspace) swapVendoredReflect2(ctx context.Context, t *crioTree) error {
	m, err := w.download(ctx, reflect2Module, versions.Reflect2Fixed)
	if err != nil {
		return err
	}
	w.progress(fmt.Sprintf("swapping %s %s for %s in vendor/", reflect2Module, reflect2Broken, versions.Reflect2Fixed))
	modsPath := filepath.Join(t.dir, "vendor", "modules.txt")
	mods, err := os.ReadFile(modsPath)
	if err != nil {
		return err
	}
	mods, err = rewriteModulesTxt(mods, reflect2Module, reflect2Broken, versions.Reflect2Fixed)
	if err != nil {
		return err
	}
	goModPath := filepath.Join(t.dir, "go.mod")
	goMod, err := os.ReadFile(goModPath)
	if err != nil {
		return err
	}
	goMod, changed, err := rewriteGoModVersion(goMod, reflect2Module, reflect2Broken, versions.Reflect2Fixed)
	if err != nil {
		return err
	}
	pkgDir := filepath.Join(t.dir, "vendor", filepath.FromSlash(reflect2Module))
	if err := os.RemoveAll(pkgDir); err != nil {
		return err
	}
	if err := copyVendoredPackage(m.Dir, pkgDir); err != nil {
		return fmt.Errorf("vendor %s@%s: %w", reflect2Module, versions.Reflect2Fixed, err)
	}
	if err := os.WriteFile(modsPath, mods, 0o644); err != nil {
		return err
	}
	if changed {
		if err := os.WriteFile(goModPath, goMod, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(w.log, "\n# vendor/%s: %s -> %s (go.mod changed: %v)\n", reflect2Module, reflect2Broken, versions.Reflect2Fixed, changed)
	t.reflect2 = versions.Reflect2Fixed
	return nil
}

// moduleHeader is one "# path version [=> path version]" line of
// vendor/modules.txt.
type moduleHeader struct {
	path, version       string
	newPath, newVersion string // the replacement, if any
}

func parseModuleHeader(line string) (moduleHeader, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "#" {
		return moduleHeader{}, false
	}
	h := moduleHeader{path: f[1]}
	rest := f[2:]
	if len(rest) > 0 && rest[0] != "=>" {
		h.version, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		if rest[0] != "=>" || len(rest) < 2 || len(rest) > 3 {
			return moduleHeader{}, false
		}
		h.newPath = rest[1]
		if len(rest) == 3 {
			h.newVersion = rest[2]
		}
	}
	return h, true
}

func (h moduleHeader) effectiveVersion() string {
	if h.newPath != "" {
		return h.newVersion
	}
	return h.version
}

func (h moduleHeader) String() string {
	s := "# " + h.path
	if h.version != "" {
		s += " " + h.version
	}
	if h.newPath != "" {
		s += " => " + h.newPath
		if h.newVersion != "" {
			s += " " + h.newVersion
		}
	}
	return s
}

// rewriteModulesTxt changes the version of module path in modules.txt from
// `from` to `to`: the replacement's version when it is replaced by the same
// module at `from`, else its own. The module must be listed once, at from.
func rewriteModulesTxt(data []byte, path, from, to string) ([]byte, error) {
	lines := strings.Split(string(data), "\n")
	found := 0
	for i, line := range lines {
		h, ok := parseModuleHeader(line)
		if !ok || h.path != path {
			continue
		}
		found++
		switch {
		case h.newPath == path && h.newVersion == from:
			h.newVersion = to
			if h.version == from {
				h.version = to
			}
		case h.newPath == "" && h.version == from:
			h.version = to
		default:
			return nil, fmt.Errorf("vendor/modules.txt lists %q, not %s %s", line, path, from)
		}
		lines[i] = h.String()
	}
	if found != 1 {
		return nil, fmt.Errorf("vendor/modules.txt lists %s %d times, want once", path, found)
	}
	return []byte(strings.Join(lines, "\n")), nil
}

// rewriteGoModVersion changes go.mod's requirement of path from `from` to
// `to`, and a replacement of path by itself at from. It reports whether
// go.mod changed; most trees that vendor v1.0.1 do not name it at all.
func rewriteGoModVersion(data []byte, path, from, to string) ([]byte, bool, error) {
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		return nil, false, fmt.Errorf("parse go.mod: %w", err)
	}
	changed := false
	for _, r := range f.Require {
		if r.Mod.Path == path && r.Mod.Version == from {
			if err := f.AddRequire(path, to); err != nil {
				return nil, false, err
			}
			changed = true
		}
	}
	for _, r := range f.Replace {
		if r.Old.Path == path && r.New.Path == path && r.New.Version == from {
			if err := f.AddReplace(r.Old.Path, r.Old.Version, path, to); err != nil {
				return nil, false, err
			}
			changed = true
		}
	}
	if !changed {
		return data, false, nil
	}
	out, err := f.Format()
	return out, true, err
}

// copyVendoredPackage copies the files `go mod vendor` would take from the
// module's root package: every regular file but tests. reflect2 is one
// package, so its subdirectories (tests) are left out.
func copyVendoredPackage(modDir, dst string) error {
	entries, err := os.ReadDir(modDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), "_test.go") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := copyFile(filepath.Join(modDir, e.Name()), filepath.Join(dst, e.Name()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies src to a new file dst with mode perm; files of the
// module cache are read-only, copies must not be.
func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
