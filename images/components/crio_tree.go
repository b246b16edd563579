package components

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/modfile"
)

// crioTree is what a CRI-O build needs to know about a source tree, read
// from the tree itself, so one recipe builds every release from v1.16 on.
type crioTree struct {
	dir string
	// version is internal/version's Version constant, for messages.
	version string
	// goVersion and toolchain are go.mod's go and toolchain lines.
	goVersion, toolchain string
	// vendor: vendor/modules.txt is there, build with -mod=vendor; else
	// module mode, through the module proxy.
	vendor bool
	// reflect2 is the version of github.com/modern-go/reflect2 that
	// vendor/modules.txt lists ("" when it lists none).
	reflect2 string
	// pinns is the dir of pinns' Makefile, "" when the tree has no pinns.
	pinns string
	// tags are the node image's build tags that the tree's code mentions:
	// its own and vendor/'s; in module mode compileCRIO adds those of the
	// dependencies it resolves.
	tags []string
	// stamps are the version variables the tree declares, as
	// "importpath.name" for the linker's -X.
	stamps []string
}

// crioWantedTags are the build tags of the node image's CRI-O: no ostree,
// btrfs or devicemapper (no headers here, and the guest uses overlay), Go's
// openpgp instead of gpgme, and seccomp (the guest has libseccomp2). A
// tree gets those of them its code knows, so a tag that an old or new tree
// never heard of does not pretend to select anything.
var crioWantedTags = []string{
	"containers_image_ostree_stub", "exclude_graphdriver_btrfs", "btrfs_noversion",
	"exclude_graphdriver_devicemapper", "containers_image_openpgp", "seccomp",
}

// inspectCRIOTree reads what the build needs from the tree at dir.
func inspectCRIOTree(dir string) (*crioTree, error) {
	goModData, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return nil, fmt.Errorf("not a CRI-O source tree (no go.mod): %w", err)
	}
	// Strict, for the toolchain line; lax (which skips it) if an old
	// go.mod has something today's parser refuses.
	gm, err := modfile.Parse("go.mod", goModData, nil)
	if err != nil {
		if gm, err = modfile.ParseLax("go.mod", goModData, nil); err != nil {
			return nil, fmt.Errorf("parse go.mod: %w", err)
		}
	}
	if gm.Module == nil || gm.Module.Mod.Path != crioModule {
		return nil, fmt.Errorf("%s is not a CRI-O source tree: its go.mod does not declare module %s", dir, crioModule)
	}
	if st, err := os.Stat(filepath.Join(dir, "cmd", "crio")); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s is not a CRI-O source tree: no cmd/crio", dir)
	}
	t := &crioTree{dir: dir}
	if gm.Go != nil {
		t.goVersion = gm.Go.Version
	}
	if gm.Toolchain != nil {
		t.toolchain = gm.Toolchain.Name
	}
	if mods, err := os.ReadFile(filepath.Join(dir, "vendor", "modules.txt")); err == nil {
		t.vendor = true
		t.reflect2 = vendoredVersion(mods, reflect2Module)
	}
	if st, err := os.Stat(filepath.Join(dir, "pinns", "Makefile")); err == nil && st.Mode().IsRegular() {
		t.pinns = filepath.Join(dir, "pinns")
	}
	if t.tags, err = mentionedTags(dir, crioWantedTags); err != nil {
		return nil, err
	}
	if t.stamps, err = stampVars(dir); err != nil {
		return nil, err
	}
	t.version, _ = versionConst(filepath.Join(dir, "internal", "version"))
	return t, nil
}

// mode is the -mod flag for the tree.
func (t *crioTree) mode() string {
	if t.vendor {
		return "-mod=vendor"
	}
	return "-mod=mod"
}

func (t *crioTree) String() string {
	pinns := "no pinns"
	if t.pinns != "" {
		pinns = "pinns"
	}
	mode := "module mode"
	if t.vendor {
		mode = "vendor/"
	}
	return fmt.Sprintf("CRI-O %s: go %s%s, %s, reflect2 %s, %s, tags %s, stamps %s",
		orNone(t.version), orNone(t.goVersion), prefixed(" toolchain ", t.toolchain), mode, orNone(t.reflect2), pinns,
		strings.Join(t.tags, ","), strings.Join(t.stamps, ","))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// vendoredVersion returns the version modules.txt lists for path: the
// replacement's when the module is replaced.
func vendoredVersion(modulesTxt []byte, path string) string {
	for _, line := range strings.Split(string(modulesTxt), "\n") {
		if h, ok := parseModuleHeader(line); ok && h.path == path {
			return h.effectiveVersion()
		}
	}
	return ""
}

// mentionedTags returns those of wanted that a build constraint of some
// .go file under dir mentions, in wanted's order. Only the header of each
// file is read.
func mentionedTags(dir string, wanted []string) ([]string, error) {
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != dir && (strings.HasPrefix(n, ".") || n == "testdata" || n == "_output") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || !d.Type().IsRegular() {
			return nil
		}
		return addFileTags(seen, p)
	})
	if err != nil {
		return nil, fmt.Errorf("scan build tags: %w", err)
	}
	return pick(wanted, seen), nil
}

// mentionedTagsInDirs is mentionedTags over the .go files of dirs, not
// their subdirectories: the package dirs of a module-mode build, whose
// dependencies live in the module cache, not in the tree.
func mentionedTagsInDirs(dirs []string, wanted []string) ([]string, error) {
	seen := map[string]bool{}
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join(d, "*.go"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if err := addFileTags(seen, f); err != nil {
				return nil, fmt.Errorf("scan build tags: %w", err)
			}
		}
	}
	return pick(wanted, seen), nil
}

// addFileTags marks the tags of the Go file at path's build constraints.
func addFileTags(seen map[string]bool, path string) error {
	data, err := readHeader(path)
	if err != nil {
		return err
	}
	for _, tag := range constraintTags(data) {
		seen[tag] = true
	}
	return nil
}

// pick returns those of wanted that seen has, in wanted's order.
func pick(wanted []string, seen map[string]bool) []string {
	var tags []string
	for _, t := range wanted {
		if seen[t] {
			tags = append(tags, t)
		}
	}
	return tags
}

// readHeader returns a Go file's lines up to its package clause, where
// build constraints live.
func readHeader(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "package ") {
			break
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes(), sc.Err()
}

// constraintTags returns the tags named in the //go:build and // +build
// lines of a Go file's header.
func constraintTags(header []byte) []string {
	var tags []string
	for _, line := range strings.Split(string(header), "\n") {
		line = strings.TrimSpace(line)
		if !constraint.IsGoBuild(line) && !constraint.IsPlusBuild(line) {
			continue
		}
		expr, err := constraint.Parse(line)
		if err != nil {
			continue
		}
		expr.Eval(func(tag string) bool {
			if !slices.Contains(tags, tag) {
				tags = append(tags, tag)
			}
			return true
		})
	}
	return tags
}

// stampVars returns the version variables that CRI-O's Makefiles set with
// -X and that the tree declares as plain strings: main.gitCommit (1.16,
// 1.17), internal/version's gitCommit, gitTreeState and buildDate
// (1.18-1.25), buildDate (1.26 on), buildCommit (1.36 on).
func stampVars(dir string) ([]string, error) {
	var stamps []string
	for _, p := range []struct{ dir, importPath string }{
		{filepath.Join(dir, "cmd", "crio"), "main"},
		{filepath.Join(dir, "internal", "version"), crioModule + "/internal/version"},
	} {
		vars, err := stringVars(p.dir)
		if err != nil {
			return nil, err
		}
		for _, v := range vars {
			if _, ok := crioStampValue(v, crioStamp{}); ok {
				stamps = append(stamps, p.importPath+"."+v)
			}
		}
	}
	return stamps, nil
}

// stringVars returns the package-level variables of the non-test Go files
// in dir that -X can set: declared string, or initialised with a string
// literal. A missing dir has none.
func stringVars(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var vars []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", f, err)
		}
		for _, decl := range af.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if isStringType(vs.Type) || (vs.Type == nil && i < len(vs.Values) && isStringLit(vs.Values[i])) {
						vars = append(vars, name.Name)
					}
				}
			}
		}
	}
	return vars, nil
}

func isStringType(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == "string"
}

func isStringLit(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.STRING
}

// versionConst returns the Version constant of the package in dir.
func versionConst(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			continue
		}
		for _, decl := range af.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if name.Name == "Version" && i < len(vs.Values) && isStringLit(vs.Values[i]) {
						return strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
					}
				}
			}
		}
	}
	return "", fmt.Errorf("no Version constant in %s", dir)
}
