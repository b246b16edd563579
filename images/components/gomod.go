package components

import (
	"fmt"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/pidreuse/pidreuse/images/versions"
)

// wrapperModule is the module path of every generated wrapper module; it is
// never published, and only names the main module of a build.
const wrapperModule = "pidreuse.invalid/componentbuild"

// localReplace maps a replace whose target is a directory of the upstream
// checkout, which a module downloaded from the proxy cannot use, to a
// module version that can stand in for it.
type localReplace func(r *modfile.Replace) (module.Version, error)

// wrapperGoMod returns the go.mod of a module with no code of its own from
// which upstream's packages build as they do in upstream's own checkout:
// the module requires upstream at version, keeps upstream's go version and
// godebug lines (they set the runtime defaults of the binary), and copies
// upstream's requirements, excludes and replaces, so the build list is
// upstream's. Directory replaces go through local; nil refuses them.
func wrapperGoMod(upstreamGoMod []byte, version string, local localReplace) ([]byte, error) {
	up, err := modfile.Parse("go.mod", upstreamGoMod, nil)
	if err != nil {
		return nil, fmt.Errorf("parse upstream go.mod: %w", err)
	}
	if up.Module == nil || up.Go == nil {
		return nil, fmt.Errorf("upstream go.mod has no module or go line")
	}
	f := new(modfile.File)
	steps := []func() error{
		func() error { return f.AddModuleStmt(wrapperModule) },
		func() error { return f.AddGoStmt(up.Go.Version) },
	}
	for _, g := range up.Godebug {
		steps = append(steps, func() error { return f.AddGodebug(g.Key, g.Value) })
	}
	steps = append(steps, func() error { return f.AddRequire(up.Module.Mod.Path, version) })
	for _, r := range up.Require {
		steps = append(steps, func() error { f.AddNewRequire(r.Mod.Path, r.Mod.Version, r.Indirect); return nil })
	}
	for _, x := range up.Exclude {
		steps = append(steps, func() error { return f.AddExclude(x.Mod.Path, x.Mod.Version) })
	}
	for _, r := range up.Replace {
		steps = append(steps, func() error {
			to := r.New
			if modfile.IsDirectoryPath(to.Path) {
				if local == nil {
					return fmt.Errorf("upstream replaces %s with directory %s, which a downloaded module does not have", r.Old.Path, to.Path)
				}
				var err error
				if to, err = local(r); err != nil {
					return err
				}
			}
			return f.AddReplace(r.Old.Path, r.Old.Version, to.Path, to.Version)
		})
	}
	steps = append(steps, func() error { return applySwaps(f) })
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("wrapper go.mod for %s: %w", up.Module.Mod.Path, err)
		}
	}
	f.Cleanup()
	return modfile.Format(f.Syntax), nil
}

// swap stands a module in for one that an old build list pins and that
// cannot be used here.
type swap struct {
	path    string // the module
	version string // swapped only at this version; "" at any
	// to is the stand-in for the module at version v.
	to func(v string) module.Version
}

// swaps are applied to every wrapper: vbom.ml/util (kubelet <= 1.17) is
// refused by the proxy and github.com/fvbommel/util is its home at the same
// commits; reflect2 v1.0.1 crashes under Go >= 1.18.
func swaps() []swap {
	return []swap{
		{path: "vbom.ml/util", to: func(v string) module.Version {
			return module.Version{Path: "github.com/fvbommel/util", Version: v}
		}},
		{path: reflect2Module, version: reflect2Broken, to: func(string) module.Version {
			return module.Version{Path: reflect2Module, Version: versions.Reflect2Fixed}
		}},
	}
}

// applySwaps replaces each swapped module of f's build list: where f
// replaces it, the replacement is swapped; where f only requires it, a
// replacement is added. The version looked at is the one f selects.
func applySwaps(f *modfile.File) error {
	for _, s := range swaps() {
		v, ok := selectedVersion(f, s.path)
		if !ok || (s.version != "" && v != s.version) {
			continue
		}
		// Without an old version, AddReplace turns every replace of
		// path, version-specific ones too, into this one line.
		to := s.to(v)
		if err := f.AddReplace(s.path, "", to.Path, to.Version); err != nil {
			return err
		}
	}
	return nil
}

// selectedVersion is the version of path that f's own lines select: its
// replacement's when f replaces path by the same module, else its
// requirement's. False when f names path nowhere, or replaces it by
// another module or a directory, which is then f's choice to keep.
func selectedVersion(f *modfile.File, path string) (string, bool) {
	for _, r := range f.Replace {
		if r.Old.Path == path {
			if r.New.Path != path {
				return "", false
			}
			return r.New.Version, true
		}
	}
	for _, r := range f.Require {
		if r.Mod.Path == path {
			return r.Mod.Version, true
		}
	}
	return "", false
}

// cgoOnlyModules are modules whose packages build only with cgo: a build
// list with one of them needs CGO_ENABLED=1. cadvisor imported gonvml
// (NVIDIA's NVML) until 2020, so kubelet 1.17 does.
var cgoOnlyModules = []string{"github.com/mindprince/gonvml"}

// needsCgo reports whether upstream's go.mod requires a cgo-only module.
func needsCgo(upstreamGoMod []byte) (bool, error) {
	up, err := modfile.Parse("go.mod", upstreamGoMod, nil)
	if err != nil {
		return false, fmt.Errorf("parse upstream go.mod: %w", err)
	}
	for _, r := range up.Require {
		for _, m := range cgoOnlyModules {
			if r.Mod.Path == m {
				return true, nil
			}
		}
	}
	return false, nil
}

// wrapperGoSum is upstream's go.sum plus the hashes of upstream itself.
// Upstream's go.sum is what makes the build resolvable: it holds the
// hashes of pseudo-versions the checksum database has never seen, which
// the go command would otherwise have to look up there, and fail.
func wrapperGoSum(upstreamGoSum []byte, m *modInfo) []byte {
	var b strings.Builder
	b.Write(upstreamGoSum)
	if len(upstreamGoSum) > 0 && !strings.HasSuffix(string(upstreamGoSum), "\n") {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%s %s %s\n", m.Path, m.Version, m.Sum)
	fmt.Fprintf(&b, "%s %s/go.mod %s\n", m.Path, m.Version, m.GoModSum)
	return []byte(b.String())
}

// stagingReplace maps Kubernetes' replaces of its staging modules
// (k8s.io/api => ./staging/src/k8s.io/api) to the staging module as
// published for kubernetesVersion: k8s.io/kubernetes v1.X.Y ships
// k8s.io/api v0.X.Y from the same commit.
func stagingReplace(kubernetesVersion string) (localReplace, error) {
	rest, ok := strings.CutPrefix(kubernetesVersion, "v1.")
	if !ok || strings.Count(rest, ".") != 1 {
		return nil, fmt.Errorf("kubernetes version %q: want v1.X.Y", kubernetesVersion)
	}
	staging := "v0." + rest
	return func(r *modfile.Replace) (module.Version, error) {
		if !strings.HasPrefix(r.Old.Path, "k8s.io/") || r.New.Path != "./staging/src/"+r.Old.Path {
			return module.Version{}, fmt.Errorf("replace %s => %s is not a Kubernetes staging module", r.Old.Path, r.New.Path)
		}
		return module.Version{Path: r.Old.Path, Version: staging}, nil
	}, nil
}

// kubeletVersionPackages hold the version kubelet prints. Older trees kept
// a copy in k8s.io/kubernetes/pkg/version (1.17.5's module has none); the
// linker ignores -X for a package the binary does not have, so stamping all
// three fits every release.
var kubeletVersionPackages = []string{
	"k8s.io/kubernetes/pkg/version", "k8s.io/client-go/pkg/version", "k8s.io/component-base/version",
}

// kubeletLDFlags stamps the version as Kubernetes' hack/lib/version.sh does
// for a clean release build (client-go and component-base both carry it),
// and strips the binary as hack/lib/golang.sh does for non-debug builds.
func kubeletLDFlags(version, buildDate string) (string, error) {
	rest, ok := strings.CutPrefix(version, "v")
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 3 {
		return "", fmt.Errorf("kubelet version %q: want vX.Y.Z", version)
	}
	flags := []string{"-s", "-w"}
	for _, kv := range [][2]string{
		{"buildDate", buildDate},
		{"gitVersion", version},
		{"gitMajor", parts[0]},
		{"gitMinor", parts[1]},
		{"gitTreeState", "clean"},
	} {
		for _, pkg := range kubeletVersionPackages {
			flags = append(flags, fmt.Sprintf("-X %s.%s=%s", pkg, kv[0], kv[1]))
		}
	}
	return strings.Join(flags, " "), nil
}

// crioLDFlags is what CRI-O's Makefile passes: its version is a constant in
// the source, only the build date is stamped.
func crioLDFlags(buildDate string) string {
	return "-s -w -X " + crioModule + "/internal/version.buildDate=" + buildDate
}

// crictlLDFlags is what cri-tools' Makefile passes: the version from
// `git describe` without its "v", and no stripping.
func crictlLDFlags(version string) string {
	return "-X " + crictlModule + "/pkg/version.Version=" + strings.TrimPrefix(version, "v")
}
