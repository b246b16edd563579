package components

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/elfcheck"
)

// kubernetesGoMod is the shape of k8s.io/kubernetes' go.mod, cut down.
const kubernetesGoMod = `// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
	github.com/google/cadvisor v0.52.1
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
)

require github.com/go-logr/logr v1.4.2 // indirect

exclude github.com/bad/mod v1.0.0

replace (
	github.com/fork/me => github.com/forked/me v1.2.3
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
)
`

func parseWrapper(t *testing.T, data []byte) *modfile.File {
	t.Helper()
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatalf("generated go.mod does not parse: %v\n%s", err, data)
	}
	return f
}

func TestWrapperGoModKubelet(t *testing.T) {
	local, err := stagingReplace("v1.34.2")
	if err != nil {
		t.Fatal(err)
	}
	data, err := wrapperGoMod([]byte(kubernetesGoMod), "v1.34.2", local)
	if err != nil {
		t.Fatal(err)
	}
	f := parseWrapper(t, data)
	if f.Module.Mod.Path != wrapperModule || f.Go.Version != "1.24.0" {
		t.Errorf("module %q go %q, want %q go 1.24.0", f.Module.Mod.Path, f.Go.Version, wrapperModule)
	}
	if len(f.Godebug) != 1 || f.Godebug[0].Key != "default" || f.Godebug[0].Value != "go1.24" {
		t.Errorf("godebug not carried over:\n%s", data)
	}
	reqs := map[string]string{}
	for _, r := range f.Require {
		reqs[r.Mod.Path] = r.Mod.Version
	}
	for path, v := range map[string]string{
		"k8s.io/kubernetes":          "v1.34.2",
		"k8s.io/api":                 "v0.0.0",
		"github.com/google/cadvisor": "v0.52.1",
		"github.com/go-logr/logr":    "v1.4.2",
	} {
		if reqs[path] != v {
			t.Errorf("require %s %q, want %q", path, reqs[path], v)
		}
	}
	reps := map[string]string{}
	for _, r := range f.Replace {
		reps[r.Old.Path] = r.New.Path + " " + r.New.Version
	}
	want := map[string]string{
		"k8s.io/api":         "k8s.io/api v0.34.2",
		"k8s.io/client-go":   "k8s.io/client-go v0.34.2",
		"github.com/fork/me": "github.com/forked/me v1.2.3",
	}
	if fmt.Sprint(reps) != fmt.Sprint(want) {
		t.Errorf("replaces %v, want %v", reps, want)
	}
	if len(f.Exclude) != 1 || f.Exclude[0].Mod.Path != "github.com/bad/mod" {
		t.Errorf("exclude not carried over:\n%s", data)
	}
	if strings.Contains(string(data), "./staging") {
		t.Errorf("a directory replace survived:\n%s", data)
	}
}

func TestWrapperGoModRefusesDirectoryReplace(t *testing.T) {
	// CRI-O's wrapper passes no mapper: a directory replace would build
	// something other than the release, so it must fail loudly.
	if _, err := wrapperGoMod([]byte(kubernetesGoMod), "v1.34.2", nil); err == nil {
		t.Error("directory replace accepted without a mapper")
	}
	local, err := stagingReplace("v1.34.2")
	if err != nil {
		t.Fatal(err)
	}
	odd := strings.Replace(kubernetesGoMod, "./staging/src/k8s.io/api", "../elsewhere", 1)
	if _, err := wrapperGoMod([]byte(odd), "v1.34.2", local); err == nil {
		t.Error("non-staging directory replace accepted")
	}
}

func TestWrapperGoModCRIOShape(t *testing.T) {
	// CRI-O's go.mod puts its go line before the module line and has no
	// replaces.
	up := "go 1.24.1\n\nmodule github.com/cri-o/cri-o\n\nrequire (\n\tgithub.com/containerd/nri v0.9.1-0.20250219030224-e597e7849f24\n)\n"
	data, err := wrapperGoMod([]byte(up), "v1.34.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := parseWrapper(t, data)
	if f.Go.Version != "1.24.1" || len(f.Require) != 2 || len(f.Replace) != 0 {
		t.Errorf("unexpected wrapper:\n%s", data)
	}
}

func TestStagingReplaceVersion(t *testing.T) {
	for _, v := range []string{"v2.0.0", "1.34.2", "v1.34", "v1.34.2.1"} {
		if _, err := stagingReplace(v); err == nil {
			t.Errorf("stagingReplace(%q) accepted", v)
		}
	}
}

func TestWrapperGoSum(t *testing.T) {
	m := &modInfo{Path: "github.com/cri-o/cri-o", Version: "v1.34.0", Sum: "h1:zip=", GoModSum: "h1:mod="}
	got := string(wrapperGoSum([]byte("a v1 h1:x="), m))
	want := "a v1 h1:x=\ngithub.com/cri-o/cri-o v1.34.0 h1:zip=\ngithub.com/cri-o/cri-o v1.34.0/go.mod h1:mod=\n"
	if got != want {
		t.Errorf("wrapperGoSum = %q, want %q", got, want)
	}
	if got := string(wrapperGoSum(nil, m)); !strings.HasPrefix(got, "github.com/cri-o/cri-o v1.34.0 h1:zip=\n") {
		t.Errorf("wrapperGoSum(nil) = %q", got)
	}
}

func TestKubeletLDFlags(t *testing.T) {
	got, err := kubeletLDFlags("v1.34.2", "2025-11-11T19:00:37Z")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"-s -w ",
		"-X k8s.io/component-base/version.gitVersion=v1.34.2",
		"-X k8s.io/client-go/pkg/version.gitVersion=v1.34.2",
		"-X k8s.io/component-base/version.gitMajor=1",
		"-X k8s.io/component-base/version.gitMinor=34",
		"-X k8s.io/client-go/pkg/version.gitMinor=34",
		"-X k8s.io/kubernetes/pkg/version.gitVersion=v1.34.2",
		"-X k8s.io/component-base/version.gitTreeState=clean",
		"-X k8s.io/component-base/version.buildDate=2025-11-11T19:00:37Z",
		"-X k8s.io/client-go/pkg/version.buildDate=2025-11-11T19:00:37Z",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("kubelet ldflags lack %q:\n%s", want, got)
		}
	}
	if _, err := kubeletLDFlags("1.34", "x"); err == nil {
		t.Error("bad version accepted")
	}
}

func TestCRIOAndCrictlLDFlags(t *testing.T) {
	if got, want := crioLDFlags("2025-05-14T19:57:38Z"), "-s -w -X github.com/cri-o/cri-o/internal/version.buildDate=2025-05-14T19:57:38Z"; got != want {
		t.Errorf("crioLDFlags = %q, want %q", got, want)
	}
	if got, want := crictlLDFlags("v1.34.0"), "-X sigs.k8s.io/cri-tools/pkg/version.Version=1.34.0"; got != want {
		t.Errorf("crictlLDFlags = %q, want %q", got, want)
	}
}

func TestReleaseTime(t *testing.T) {
	info := filepath.Join(t.TempDir(), "v1.info")
	os.WriteFile(info, []byte(`{"Version":"v1.34.2","Time":"2025-11-11T19:00:37Z"}`), 0o644)
	got, err := releaseTime(&modInfo{Info: info})
	if err != nil || got != "2025-11-11T19:00:37Z" {
		t.Errorf("releaseTime = %q, %v", got, err)
	}
	os.WriteFile(info, []byte(`{"Version":"v1.34.2"}`), 0o644)
	if _, err := releaseTime(&modInfo{Info: info}); err == nil {
		t.Error("info without a time accepted")
	}
}

func TestAll(t *testing.T) {
	want := []Component{
		{Kubelet, versions.Kubelet}, {CRIO, versions.CRIO}, {Pinns, versions.CRIO}, {Crictl, versions.Crictl}, {CRIDockerd, versions.CRIDockerd},
	}
	if got := All(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("All() = %v, want %v", got, want)
	}
	if got, want := Path("/c", Component{"crio", "v1.34.0"}), "/c/crio/v1.34.0/crio"; got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
}

func TestBuildUnknown(t *testing.T) {
	if _, err := Build(context.Background(), t.TempDir(), "containerd", nil); err == nil || !strings.Contains(err.Error(), "kubelet") {
		t.Errorf("Build(containerd) = %v, want an error listing the components", err)
	}
}

// someELF copies the test binary, an x86-64 ELF executable, to path.
func someELF(t *testing.T, path string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestBuildCacheHit(t *testing.T) {
	root := t.TempDir()
	c := Component{Crictl, versions.Crictl}
	someELF(t, Path(root, c))
	got, err := Build(context.Background(), root, Crictl, func(s string) { t.Errorf("built despite the cache: %s", s) })
	if err != nil || got != Path(root, c) {
		t.Errorf("Build = %q, %v; want the cached %q", got, err, Path(root, c))
	}
}

func TestBuildInstallsCompleteEntry(t *testing.T) {
	root := t.TempDir()
	c := Component{"tool", "v1.0.0"}
	r := recipe{Component: c, key: c.Version, build: func(ctx context.Context, w *workspace) error {
		fmt.Fprintln(w.log, "compiling")
		someELF(t, w.out)
		return nil
	}}
	if err := build(context.Background(), root, r, func(string) {}); err != nil {
		t.Fatal(err)
	}
	dir := entryDir(root, c)
	names, _ := os.ReadDir(dir)
	if len(names) != 2 || names[0].Name() != "build.log" || names[1].Name() != "tool" {
		t.Errorf("entry holds %v, want build.log and tool", names)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("entry dir mode %v, %v; want 0755", st.Mode(), err)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "build.log"))
	if !strings.Contains(string(log), "compiling") {
		t.Errorf("build.log = %q", log)
	}
	leftovers, _ := filepath.Glob(filepath.Join(root, c.Name, ".build-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary dirs left: %v", leftovers)
	}
}

func TestBuildFailureLeavesNoEntry(t *testing.T) {
	root := t.TempDir()
	c := Component{"tool", "v1.0.0"}
	r := recipe{Component: c, key: c.Version, build: func(ctx context.Context, w *workspace) error {
		for i := 1; i <= 100; i++ {
			fmt.Fprintf(w.log, "line %d\n", i)
		}
		someELF(t, w.out) // a binary from a failed build must not be cached
		return errors.New("compiler said no")
	}}
	err := build(context.Background(), root, r, func(string) {})
	if err == nil {
		t.Fatal("failed recipe reported success")
	}
	msg := err.Error()
	if !strings.Contains(msg, "compiler said no") || !strings.Contains(msg, "line 100") || strings.Contains(msg, "line 60\n") {
		t.Errorf("error should carry the log's last %d lines only:\n%s", command.TailLines, msg)
	}
	if _, err := os.Stat(entryDir(root, c)); !os.IsNotExist(err) {
		t.Errorf("failed build left a cache entry (%v)", err)
	}
	kept, err := os.ReadFile(filepath.Join(root, c.Name, c.Version+".failed-build.log"))
	if err != nil || !strings.Contains(string(kept), "line 1\n") {
		t.Errorf("full log of the failed build not kept: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(root, c.Name, ".build-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary dirs left: %v", leftovers)
	}
}

// A failed command's error carries its line and its last lines once (not
// again from the log), and the kept log has all of it.
func TestBuildFailureOfACommand(t *testing.T) {
	root := t.TempDir()
	c := Component{"tool", "v1.0.0"}
	script := "for i in $(seq 1 100); do echo out $i; echo err $i >&2; done; exit 1"
	r := recipe{Component: c, key: c.Version, build: func(ctx context.Context, w *workspace) error {
		return w.run(ctx, w.src, []string{"X=a b"}, "sh", "-c", script)
	}}
	err := build(context.Background(), root, r, func(string) {})
	var cmdErr *command.Error
	if !errors.As(err, &cmdErr) {
		t.Fatalf("error %v, want a *command.Error", err)
	}
	msg := err.Error()
	keep := filepath.Join(root, c.Name, c.Version+".failed-build.log")
	for _, want := range []string{"sh -c '" + script + "'", "exit status 1", "err 100", "full log: " + keep} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Count(msg, "err 100") != 1 || strings.Contains(msg, "err 50\n") {
		t.Errorf("error should carry the command's last %d lines once:\n%s", command.TailLines, msg)
	}
	kept, _ := os.ReadFile(keep)
	for _, want := range []string{"&& X='a b' sh -c", "err 1\n", "out 1\n", "out 100\n"} {
		if !strings.Contains(string(kept), want) {
			t.Errorf("kept log lacks %q", want)
		}
	}
}

func TestCheckBinary(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	if elfcheck.Executable(notELF) == nil {
		t.Error("a shell script passed as a binary")
	}
	if elfcheck.Executable(filepath.Join(dir, "missing")) == nil {
		t.Error("a missing file passed as a binary")
	}
	if _, err := os.Stat("/bin/sh"); err == nil && elfcheck.Static("/bin/sh") == nil {
		t.Error("/bin/sh passed as static")
	}
}

// kubernetes117GoMod is the shape of k8s.io/kubernetes v1.17.5's go.mod:
// every dependency pinned again by a replace.
const kubernetes117GoMod = `module k8s.io/kubernetes

go 1.12

require (
	github.com/mindprince/gonvml v0.0.0-20190828220739-9ebdce4bb989 // indirect
	github.com/modern-go/reflect2 v1.0.1 // indirect
	k8s.io/api v0.0.0
	vbom.ml/util v0.0.0-20160121211510-db5cfe13f5cc
)

replace (
	github.com/mindprince/gonvml => github.com/mindprince/gonvml v0.0.0-20190828220739-9ebdce4bb989
	github.com/modern-go/reflect2 => github.com/modern-go/reflect2 v1.0.1
	k8s.io/api => ./staging/src/k8s.io/api
	vbom.ml/util => vbom.ml/util v0.0.0-20160121211510-db5cfe13f5cc
)
`

func TestWrapperGoModKubelet117(t *testing.T) {
	local, err := stagingReplace("v1.17.5")
	if err != nil {
		t.Fatal(err)
	}
	data, err := wrapperGoMod([]byte(kubernetes117GoMod), "v1.17.5", local)
	if err != nil {
		t.Fatal(err)
	}
	f := parseWrapper(t, data)
	reps := map[string]string{}
	for _, r := range f.Replace {
		reps[r.Old.Path+" "+r.Old.Version] = r.New.Path + " " + r.New.Version
	}
	want := map[string]string{
		"github.com/mindprince/gonvml ":  "github.com/mindprince/gonvml v0.0.0-20190828220739-9ebdce4bb989",
		"github.com/modern-go/reflect2 ": "github.com/modern-go/reflect2 " + versions.Reflect2Fixed,
		"k8s.io/api ":                    "k8s.io/api v0.17.5",
		"vbom.ml/util ":                  "github.com/fvbommel/util v0.0.0-20160121211510-db5cfe13f5cc",
	}
	if fmt.Sprint(reps) != fmt.Sprint(want) {
		t.Errorf("replaces:\n got %v\nwant %v", reps, want)
	}
	cgo, err := needsCgo([]byte(kubernetes117GoMod))
	if err != nil || !cgo {
		t.Errorf("needsCgo(kubernetes 1.17) = %v, %v; want true (gonvml)", cgo, err)
	}
}

func TestApplySwaps(t *testing.T) {
	for _, c := range []struct {
		name, goMod string
		want        map[string]string // old path -> new "path version"; absent: no replace
	}{
		{"required only: a replace is added",
			"module m\n\nrequire github.com/modern-go/reflect2 v1.0.1\n",
			map[string]string{reflect2Module: reflect2Module + " " + versions.Reflect2Fixed}},
		{"another version: left alone",
			"module m\n\nrequire github.com/modern-go/reflect2 v1.0.3-0.20250322232337-35a7c28c31ee\n",
			map[string]string{}},
		{"a version-specific replace is swapped for one that wins",
			"module m\n\nrequire vbom.ml/util v0.0.0-1\n\nreplace vbom.ml/util v0.0.0-1 => vbom.ml/util v0.0.0-2\n",
			map[string]string{"vbom.ml/util": "github.com/fvbommel/util v0.0.0-2"}},
		{"replaced by a fork: the fork is upstream's choice",
			"module m\n\nrequire vbom.ml/util v0.0.0-1\n\nreplace vbom.ml/util => example.com/fork v1.0.0\n",
			map[string]string{"vbom.ml/util": "example.com/fork v1.0.0"}},
	} {
		f, err := modfile.Parse("go.mod", []byte(c.goMod), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := applySwaps(f); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		f.Cleanup()
		// What counts is the written go.mod.
		if f, err = modfile.Parse("go.mod", modfile.Format(f.Syntax), nil); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range f.Replace {
			if r.Old.Version != "" {
				t.Errorf("%s: version-specific replace %s %s left", c.name, r.Old.Path, r.Old.Version)
			}
			got[r.Old.Path] = r.New.Path + " " + r.New.Version
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: replaces %v, want %v", c.name, got, c.want)
		}
	}
	if cgo, err := needsCgo([]byte(kubernetesGoMod)); err != nil || cgo {
		t.Errorf("needsCgo(kubernetes 1.34) = %v, %v; want false", cgo, err)
	}
}

func TestLegacy(t *testing.T) {
	for tag, want := range map[string][]Component{
		versions.CRIO117: {{CRIO, versions.CRIO117}, {Pinns, versions.CRIO117}, {Kubelet, versions.KubeletLegacy}},
		versions.CRIO116: {{CRIO, versions.CRIO116}, {Kubelet, versions.KubeletLegacy}},
	} {
		got, err := Legacy(tag)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Legacy(%s) = %v, %v; want %v", tag, got, err, want)
		}
		for _, c := range got {
			if _, ok := findRecipe(c); !ok {
				t.Errorf("Legacy(%s) lists %v, which has no recipe", tag, c)
			}
		}
	}
	if _, err := Legacy("v1.18.0"); err == nil || !strings.Contains(err.Error(), versions.CRIO116) {
		t.Errorf("Legacy(v1.18.0) = %v, want an error listing the pinned tags", err)
	}
	// Built from a source tree: the cache key carries the source's hash.
	s := versions.CRIOSources()[1]
	want := "/c/crio/" + s.Tag + "-src-" + s.TarSHA256[:12] + "/crio"
	if got := Path("/c", Component{CRIO, s.Tag}); got != want {
		t.Errorf("Path(crio %s) = %s, want %s", s.Tag, got, want)
	}
	if got := Path("/c", Component{Kubelet, versions.KubeletLegacy}); got != "/c/kubelet/"+versions.KubeletLegacy+"/kubelet" {
		t.Errorf("Path(kubelet %s) = %s", versions.KubeletLegacy, got)
	}
	if _, err := BuildComponent(context.Background(), t.TempDir(), Component{CRIO, "v1.18.0"}, nil); err == nil || !strings.Contains(err.Error(), "crio "+versions.CRIO116) {
		t.Errorf("BuildComponent(crio v1.18.0) = %v, want an error listing the known versions", err)
	}
}

func TestKnownHasEveryDefault(t *testing.T) {
	for _, c := range All() {
		if !slices.Contains(Known(), c) {
			t.Errorf("All() has %v, Known() does not", c)
		}
	}
}
