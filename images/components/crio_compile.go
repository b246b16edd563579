package components

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pidreuse/pidreuse/internal/elfcheck"
)

// The build of a CRI-O source tree, shared by the pinned bug-era recipes
// and `pidreuse build crio`: inspectCRIOTree, then compileCRIO and, when
// the tree has pinns, compilePinns. Both work on a tree the build owns (an
// extracted tarball or a copy), because the reflect2 swap edits it.

// readCRIOTree is inspectCRIOTree, said in the log and the progress.
func (w *workspace) readCRIOTree(dir string) (*crioTree, error) {
	t, err := inspectCRIOTree(dir)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w.log, "\n# %s\n", t)
	w.progress(t.String())
	return t, nil
}

// compileCRIO builds cmd/crio of the tree into out, as CRI-O's Makefile
// does (-trimpath, stripped, version stamped) with the node image's tags,
// after picking the go toolchain the tree needs and swapping reflect2
// v1.0.1 out of its vendor/. cgo is on: seccomp links libseccomp.
func (w *workspace) compileCRIO(ctx context.Context, t *crioTree, st crioStamp, out string) error {
	if slices.Contains(t.tags, "seccomp") {
		if _, err := os.Stat("/usr/include/seccomp.h"); err != nil {
			return fmt.Errorf("CRI-O needs libseccomp's headers (%v): run `apt-get install -y libseccomp-dev`", err)
		}
	}
	toolchain, err := w.toolchainFor(ctx, t)
	if err != nil {
		return err
	}
	if t.vendor && t.reflect2 == reflect2Broken {
		if err := w.swapVendoredReflect2(ctx, t); err != nil {
			return err
		}
	}
	if !t.vendor {
		if err := w.moduleModeTags(ctx, t, toolchain); err != nil {
			return err
		}
	}
	mode := "module mode: dependencies through the Go module proxy"
	if t.vendor {
		mode = "from vendor/"
	}
	w.progress(fmt.Sprintf("compiling crio %s (%s; ~5 min cold on 2 cores, more under load)", orNone(t.version), mode))
	return w.run(ctx, t.dir, goEnvToolchain(toolchain, t.mode()+" -buildvcs=false", "CGO_ENABLED=1"),
		"go", "build", "-trimpath", "-tags", strings.Join(t.tags, ","), "-ldflags", crioTreeLDFlags(t.stamps, st),
		"-o", out, "./cmd/crio")
}

// moduleModeTags sets t.tags from the code the build reads in module mode:
// the packages of cmd/crio's build, dependencies included, which the go
// command resolves (and fetches through the module proxy) into the module
// cache. Without it a tree without vendor/ would miss the tags that only
// its dependencies know, such as containers_image_openpgp, and need gpgme.
func (w *workspace) moduleModeTags(ctx context.Context, t *crioTree, toolchain string) error {
	w.progress("resolving crio's dependencies (module mode, through the Go module proxy)")
	out, err := w.runOut(ctx, t.dir, goEnvToolchain(toolchain, "-mod=mod -buildvcs=false", "CGO_ENABLED=1"),
		"go", "list", "-deps", "-tags", strings.Join(crioWantedTags, ","), "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/crio")
	if err != nil {
		return err
	}
	tags, err := mentionedTagsInDirs(strings.Fields(string(out)), crioWantedTags)
	if err != nil {
		return err
	}
	t.tags = tags
	msg := "module mode: the build's packages mention tags " + strings.Join(tags, ",")
	fmt.Fprintf(w.log, "# %s\n", msg)
	w.progress(msg)
	return nil
}

// toolchainFor returns the GOTOOLCHAIN for the tree (see goToolchain).
func (w *workspace) toolchainFor(ctx context.Context, t *crioTree) (string, error) {
	// Asked outside the tree: with GOTOOLCHAIN=local a go command inside a
	// tree that wants a newer go fails before it answers.
	out, err := w.runOut(ctx, w.src, goEnv(""), "go", "env", "GOVERSION")
	if err != nil {
		return "", err
	}
	local := strings.TrimSpace(string(out))
	tc, err := goToolchain(local, t.goVersion, t.toolchain)
	if err != nil {
		return "", err
	}
	if tc != "local" {
		w.progress(fmt.Sprintf("the tree needs %s, this machine has %s: the go command fetches %s through the Go module proxy", tc, local, tc))
	}
	return tc, nil
}

// compilePinns runs the tree's own pinns/Makefile (static, -O3/-Os as the
// tree says) and moves the result to out. make runs with the C variables
// unset, so neither a user's CFLAGS nor an outer make's MAKEFLAGS changes
// what the Makefile's defaults build.
func (w *workspace) compilePinns(ctx context.Context, t *crioTree, out string) error {
	if t.pinns == "" {
		return fmt.Errorf("the tree has no pinns/Makefile")
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libc.a"); err != nil {
		return fmt.Errorf("a static pinns needs libc.a (%v): run `apt-get install -y gcc libc6-dev make`", err)
	}
	w.progress("compiling pinns " + orNone(t.version))
	args := []string{}
	for _, v := range []string{"CC", "CFLAGS", "CPPFLAGS", "LDFLAGS", "LIBS", "TARGET_ARCH", "STRIP", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"} {
		args = append(args, "-u", v)
	}
	args = append(args, "make", "-C", t.pinns)
	if err := w.run(ctx, t.dir, nil, "env", args...); err != nil {
		return err
	}
	built := filepath.Join(t.dir, "bin", "pinns")
	if err := elfcheck.Static(built); err != nil {
		return err
	}
	return os.Rename(built, out)
}
