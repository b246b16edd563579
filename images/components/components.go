// Package components builds the node's Kubernetes components (kubelet,
// CRI-O, pinns, crictl) from source at pinned versions, fetching the source
// through the Go module proxy or, for the CRI-O releases the proxy refuses,
// from a release tarball or git clone checked against its pin (SourceDirs),
// and caches each build by name and version so an image rebuild never
// rebuilds them.
//
// A cache entry is cacheRoot/<name>/<version>/ (<version>-src-<hash>/ for a
// build from a source tree), holding the binary <name> and the full
// build.log of the build that made it.
package components

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/images/cachedir"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/elfcheck"
	"github.com/pidreuse/pidreuse/internal/fileutil"
	"github.com/pidreuse/pidreuse/internal/flock"
)

// Component is one binary at one pinned version.
type Component struct {
	Name, Version string
}

// Names of the components, which are also their binaries' names.
const (
	Kubelet = "kubelet"
	CRIO    = "crio"
	Pinns   = "pinns"
	Crictl  = "crictl"
	// CRIDockerd is Mirantis' CRI shim for Docker, kubelet's dockershim
	// moved out of tree.
	CRIDockerd = "cri-dockerd"
)

// recipe builds one component's binary at out, writing every command and
// its output to w.log.
type recipe struct {
	Component
	// key names the cache entry under <name>/: the version, plus the
	// source's hash when the source is not the module proxy's.
	key string
	// expect is the cold build time measured on a 2-core machine, so the
	// progress line tells the user how long to wait.
	expect time.Duration
	build  func(ctx context.Context, w *workspace) error
}

// recipes is a function, not a package variable, so nothing can mutate it.
// The first recipe of each name is its default version (All, Build).
func recipes() []recipe {
	rs := []recipe{
		{Component{Kubelet, versions.Kubelet}, versions.Kubelet, 8 * time.Minute, buildKubelet},
		{Component{CRIO, versions.CRIO}, versions.CRIO, 4 * time.Minute, buildCRIO},
		// pinns is C in CRI-O's module, so it follows CRI-O's version.
		{Component{Pinns, versions.CRIO}, versions.CRIO, 5 * time.Second, buildPinns},
		{Component{Crictl, versions.Crictl}, versions.Crictl, 3 * time.Minute, buildCrictl},
		{Component{Kubelet, versions.KubeletLegacy}, versions.KubeletLegacy, 10 * time.Minute, buildKubelet},
		{Component{CRIDockerd, versions.CRIDockerd}, versions.CRIDockerd, 2 * time.Minute, buildCRIDockerd},
	}
	return append(rs, sourceRecipes()...)
}

// findRecipe returns the recipe of c; a c without a version is the
// default version of its name.
func findRecipe(c Component) (recipe, bool) {
	for _, r := range recipes() {
		if r.Name == c.Name && (c.Version == "" || r.Version == c.Version) {
			return r, true
		}
	}
	return recipe{}, false
}

// All lists every component with its pinned version, in install order.
func All() []Component {
	names := []string{Kubelet, CRIO, Pinns, Crictl, CRIDockerd}
	all := make([]Component, 0, len(names))
	for _, n := range names {
		r, _ := findRecipe(Component{Name: n})
		all = append(all, r.Component)
	}
	return all
}

// Known lists every component and version there is a recipe for.
func Known() []Component {
	var all []Component
	for _, r := range recipes() {
		all = append(all, r.Component)
	}
	return all
}

// CacheRoot is where builds are kept (see cachedir).
func CacheRoot() (string, error) { return cachedir.Dir("components") }

// Path is where c's binary is cached under cacheRoot, built or not.
func Path(cacheRoot string, c Component) string {
	return filepath.Join(entryDir(cacheRoot, c), c.Name)
}

func entryDir(cacheRoot string, c Component) string {
	key := c.Version
	if r, ok := findRecipe(c); ok && c.Version != "" {
		key = r.key
	}
	return filepath.Join(cacheRoot, c.Name, key)
}

// Build returns the cached binary of component name at its default
// pinned version, building it first if it is not cached. progress, if not
// nil, gets one line per step.
func Build(ctx context.Context, cacheRoot, name string, progress func(string)) (string, error) {
	return BuildComponent(ctx, cacheRoot, Component{Name: name}, progress)
}

// BuildComponent is Build for any version there is a recipe for (Known);
// an empty c.Version is the default one.
func BuildComponent(ctx context.Context, cacheRoot string, c Component, progress func(string)) (string, error) {
	r, ok := findRecipe(c)
	if !ok {
		return "", fmt.Errorf("unknown component %s %s: want one of %s", c.Name, c.Version, known())
	}
	c = r.Component
	path := Path(cacheRoot, c)
	if elfcheck.Executable(path) == nil {
		return path, nil
	}
	if progress == nil {
		progress = func(string) {}
	}
	// One build per cache entry at a time on this machine: minutes of two
	// cores each; a second process waits and takes the first one's result.
	unlock, err := lockEntry(ctx, cacheRoot, r, progress)
	if err != nil {
		return "", err
	}
	defer unlock()
	if elfcheck.Executable(path) == nil {
		return path, nil
	}
	// Holding the entry's lock, no live build of it exists: a temp dir
	// of it is a killed build's (its source tree: hundreds of MB).
	removeStaleBuilds(filepath.Join(cacheRoot, c.Name), r.key)
	progress(fmt.Sprintf("building %s %s from source (about %s)", c.Name, c.Version, r.expect))
	start := time.Now()
	if err := build(ctx, cacheRoot, r, progress); err != nil {
		return "", err
	}
	progress(fmt.Sprintf("built %s %s in %s", c.Name, c.Version, time.Since(start).Round(time.Second)))
	return path, nil
}

// lockEntry takes the lock of r's cache entry, <name>/.lock-<key>.
func lockEntry(ctx context.Context, cacheRoot string, r recipe, progress func(string)) (func(), error) {
	parent := filepath.Join(cacheRoot, r.Name)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("build %s %s: %w", r.Name, r.Version, err)
	}
	l, err := flock.Wait(ctx, filepath.Join(parent, ".lock-"+r.key), func(pid int) {
		progress(fmt.Sprintf("waiting for another build of %s %s (pid %d) to finish", r.Name, r.Version, pid))
	})
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", r.Name, r.Version, err)
	}
	return func() { l.Release() }, nil
}

// removeStaleBuilds removes the temp dirs .build-<key>-* under parent.
// Call it only holding the entry's lock: every build of key holds it, so
// none of those dirs belongs to a live build.
func removeStaleBuilds(parent, key string) {
	stale, _ := filepath.Glob(filepath.Join(parent, ".build-"+key+"-*"))
	for _, p := range stale {
		os.RemoveAll(p) // what cannot be removed now is tried again next time
	}
}

func known() string {
	var k []string
	for _, c := range Known() {
		k = append(k, c.Name+" "+c.Version)
	}
	return strings.Join(k, ", ")
}

// build makes the entry in a temporary dir inside cacheRoot and renames it
// into place only when complete, so an interrupted build never looks
// cached. The source tree and object files stay out of the entry.
func build(ctx context.Context, cacheRoot string, r recipe, progress func(string)) (err error) {
	c := r.Component
	fail := func(err error) error { return fmt.Errorf("build %s %s: %w", c.Name, c.Version, err) }
	dir := filepath.Join(cacheRoot, c.Name, r.key)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp(parent, ".build-"+r.key+"-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	logPath := filepath.Join(tmp, "build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fail(err)
	}
	defer logFile.Close()
	w := &workspace{
		src:      filepath.Join(tmp, "src"),
		out:      filepath.Join(tmp, c.Name),
		version:  c.Version,
		log:      logFile,
		progress: progress,
	}
	if err := os.Mkdir(w.src, 0o755); err != nil {
		return fail(err)
	}
	failedLog := filepath.Join(parent, r.key+".failed-build.log")
	if err := r.build(ctx, w); err != nil {
		return fail(keepFailedLog(logFile, logPath, failedLog, err))
	}
	if err := elfcheck.Executable(w.out); err != nil {
		return fail(keepFailedLog(logFile, logPath, failedLog, err))
	}
	if err := logFile.Close(); err != nil {
		return fail(err)
	}
	// The Go module cache marks its files read-only; RemoveAll copes, but
	// the source is not wanted in the cache entry anyway.
	if err := os.RemoveAll(w.src); err != nil {
		return fail(err)
	}
	// MkdirTemp made it 0700; the entry is shared with non-root readers.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	return install(tmp, dir, c.Name, failedLog)
}

// install renames the finished tmp entry to dir. If another process
// finished the same build first, its entry is kept and tmp is dropped.
func install(tmp, dir, name, failedLog string) error {
	if elfcheck.Executable(filepath.Join(dir, name)) == nil {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove incomplete cache entry: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move build into the cache: %w", err)
	}
	os.Remove(failedLog) // a stale failure would mislead whoever reads it
	return nil
}

// keepFailedLog copies the log of a failed build next to where the entry
// would be (the temporary dir is removed) and says where it is. A failed
// command's error already ends with the command's last lines, which is
// where the compiler or the module resolver says what broke; any other
// error gets the log's last lines.
func keepFailedLog(logFile *os.File, logPath, keep string, err error) error {
	fmt.Fprintf(logFile, "\nFAILED: %v\n", err)
	logFile.Close()
	where := "full log: " + keep
	if _, cerr := fileutil.Copy(logPath, keep, 0o644); cerr != nil {
		where = fmt.Sprintf("full log lost: %v", cerr)
	}
	var cmdErr *command.Error
	if errors.As(err, &cmdErr) {
		return fmt.Errorf("%w\n(%s)", err, where)
	}
	data, rerr := os.ReadFile(logPath)
	if rerr != nil {
		return fmt.Errorf("%w (and its log is unreadable: %v)", err, rerr)
	}
	return fmt.Errorf("%w\n--- last lines of the build log (%s) ---\n%s", err, where, command.LastLines(string(data), command.TailLines))
}

// workspace is one build in progress.
type workspace struct {
	src      string // scratch dir: wrapper module, copied sources
	out      string // where the binary must end up
	version  string
	log      io.Writer
	progress func(string)
}
