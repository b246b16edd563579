package components

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pidreuse/pidreuse/internal/elfcheck"
)

// Modules the components are built from.
const (
	kubernetesModule = "k8s.io/kubernetes"
	crioModule       = "github.com/cri-o/cri-o"
	crictlModule     = "sigs.k8s.io/cri-tools"
	criDockerdModule = "github.com/Mirantis/cri-dockerd"
)

// Build tags, as each project's own release build sets them.
const (
	// hack/lib/golang.sh; grpcnotrace is what it adds for non-debug builds.
	kubeletTags = "selinux,notest,grpcnotrace"
	// CRI-O's Makefile on a host without btrfs headers, with seccomp (the
	// guest has libseccomp2) and without ostree and gpgme.
	crioTags = "containers_image_ostree_stub,exclude_graphdriver_btrfs,btrfs_noversion,containers_image_openpgp,seccomp"
)

// buildKubelet builds cmd/kubelet of k8s.io/kubernetes. `go install
// k8s.io/kubernetes/cmd/kubelet@v` is refused because Kubernetes' go.mod
// replaces its staging modules with directories of its repository, so the
// build runs in a wrapper module that points them at their published
// versions instead.
func buildKubelet(ctx context.Context, w *workspace) error {
	m, err := w.download(ctx, kubernetesModule, w.version)
	if err != nil {
		return err
	}
	local, err := stagingReplace(w.version)
	if err != nil {
		return err
	}
	upMod, err := w.writeWrapper(m, local)
	if err != nil {
		return err
	}
	date, err := releaseTime(m)
	if err != nil {
		return err
	}
	ldflags, err := kubeletLDFlags(w.version, date)
	if err != nil {
		return err
	}
	// Off when it can be: a static kubelet runs whatever the guest's libc.
	cgo, err := needsCgo(upMod)
	if err != nil {
		return err
	}
	w.progress(fmt.Sprintf("compiling kubelet %s (cgo %v)", w.version, cgo))
	return w.run(ctx, w.src, goEnv("-mod=mod -buildvcs=false", fmt.Sprintf("CGO_ENABLED=%d", btoi(cgo))),
		"go", "build", "-trimpath", "-tags", kubeletTags, "-ldflags", ldflags,
		"-o", w.out, kubernetesModule+"/cmd/kubelet")
}

// buildCRIO builds cmd/crio of CRI-O. `go install …@v` fails: it looks up
// the module's deprecation in its version list, which the proxy refuses.
// A wrapper module sidesteps that lookup, and seeding it with CRI-O's own
// go.sum sidesteps the checksum database, which lacks some of CRI-O's
// pseudo-versions. cgo is on: seccomp support links libseccomp.
func buildCRIO(ctx context.Context, w *workspace) error {
	if _, err := os.Stat("/usr/include/seccomp.h"); err != nil {
		return fmt.Errorf("CRI-O needs libseccomp's headers (%v): run `apt-get install -y libseccomp-dev`", err)
	}
	m, err := w.download(ctx, crioModule, w.version)
	if err != nil {
		return err
	}
	if _, err := w.writeWrapper(m, nil); err != nil {
		return err
	}
	date, err := releaseTime(m)
	if err != nil {
		return err
	}
	w.progress("compiling crio " + w.version)
	return w.run(ctx, w.src, goEnv("-mod=mod -buildvcs=false", "CGO_ENABLED=1"),
		"go", "build", "-trimpath", "-tags", crioTags, "-ldflags", crioLDFlags(date),
		"-o", w.out, crioModule+"/cmd/crio")
}

// buildPinns compiles pinns from the C sources in CRI-O's module, with the
// flags of pinns/Makefile (whose -O3 overrides its -Os) except -Werror: a
// newer gcc's new warning must not fail a pinned build. Static, as
// upstream ships it, so it runs whatever the guest's libc.
func buildPinns(ctx context.Context, w *workspace) error {
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libc.a"); err != nil {
		return fmt.Errorf("a static pinns needs libc.a (%v): run `apt-get install -y gcc libc6-dev`", err)
	}
	m, err := w.download(ctx, crioModule, w.version)
	if err != nil {
		return err
	}
	srcs, err := filepath.Glob(filepath.Join(m.Dir, "pinns", "src", "*.c"))
	if err != nil || len(srcs) == 0 {
		return fmt.Errorf("no pinns sources in %s (%v): is CRI-O %s's module complete? `go clean -modcache` refetches it", m.Dir, err, w.version)
	}
	w.progress("compiling pinns " + w.version)
	args := append([]string{"-std=c99", "-O3", "-Wall", "-Wextra", "-static", "-s", "-o", w.out}, srcs...)
	if err := w.run(ctx, w.src, nil, "gcc", args...); err != nil {
		return err
	}
	return elfcheck.Static(w.out)
}

// buildCrictl installs crictl the plain way: cri-tools has no replaces and
// go install works.
func buildCrictl(ctx context.Context, w *workspace) error {
	bin := filepath.Join(w.src, "bin")
	pkg := crictlModule + "/cmd/crictl@" + w.version
	w.progress("compiling crictl " + w.version)
	if err := w.run(ctx, w.src, goEnv("-buildvcs=false", "CGO_ENABLED=0", "GOBIN="+bin),
		"go", "install", "-trimpath", "-ldflags", crictlLDFlags(w.version), pkg); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(bin, Crictl), w.out); err != nil {
		return fmt.Errorf("go install %s left no binary: %w", pkg, err)
	}
	return nil
}

// buildCRIDockerd builds cri-dockerd (its main package is the module's
// root) in a wrapper module: its go.mod pins the k8s.io modules by version
// replaces, which `go install …@v` refuses. Static, as its Makefile
// builds it, with the version its Makefile stamps.
func buildCRIDockerd(ctx context.Context, w *workspace) error {
	m, err := w.download(ctx, criDockerdModule, w.version)
	if err != nil {
		return err
	}
	if _, err := w.writeWrapper(m, nil); err != nil {
		return err
	}
	w.progress("compiling cri-dockerd " + w.version)
	ldflags := "-s -w -X " + criDockerdModule + "/cmd/version.Version=" + strings.TrimPrefix(w.version, "v")
	return w.run(ctx, w.src, goEnv("-mod=mod -buildvcs=false", "CGO_ENABLED=0"),
		"go", "build", "-trimpath", "-ldflags", ldflags, "-o", w.out, criDockerdModule)
}

// writeWrapper writes the wrapper module for m into the workspace (see
// wrapperGoMod, wrapperGoSum) and returns upstream's go.mod.
func (w *workspace) writeWrapper(m *modInfo, local localReplace) ([]byte, error) {
	upMod, err := os.ReadFile(m.GoMod)
	if err != nil {
		return nil, fmt.Errorf("read %s@%s go.mod: %w", m.Path, m.Version, err)
	}
	goMod, err := wrapperGoMod(upMod, m.Version, local)
	if err != nil {
		return nil, err
	}
	upSum, err := os.ReadFile(filepath.Join(m.Dir, "go.sum"))
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read %s@%s go.sum: %w", m.Path, m.Version, err)
	}
	fmt.Fprintf(w.log, "\n# wrapper go.mod:\n%s", goMod)
	if err := os.WriteFile(filepath.Join(w.src, "go.mod"), goMod, 0o644); err != nil {
		return nil, err
	}
	return upMod, os.WriteFile(filepath.Join(w.src, "go.sum"), wrapperGoSum(upSum, m), 0o644)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
