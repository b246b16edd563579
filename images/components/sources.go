package components

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/images/cachedir"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/flock"
)

// SourcesEnv names the variable that lists the dirs (colon-separated)
// searched first for CRI-O source tarballs and clones.
const SourcesEnv = "PIDREUSE_CRIO_SOURCES"

// UpstreamEnv overrides Upstream, the repository a pinned tag is fetched
// from into the cached clone (a mirror, or a local clone in tests).
const UpstreamEnv = "PIDREUSE_CRIO_UPSTREAM"

// Upstream is CRI-O's public repository.
const Upstream = "https://github.com/cri-o/cri-o"

// upstreamDeadline bounds one fetch of a tag into the cached clone: a
// tag's tree with its vendor/ is ~100 MiB. A network that cannot reach
// upstream fails in well under a second (no route, no name); one that
// stalls is cut by git's low-speed limit (fetchArgs) long before this.
const upstreamDeadline = 15 * time.Minute

// cloneName is the cached clone's dir under the "sources" cache dir: bare,
// so no work tree is ever checked out (the build reads `git archive` of
// the pinned commit, never a work tree).
const cloneName = "cri-o.git"

// Source is where one pinned CRI-O release's source was found.
type Source struct {
	kind sourceKind
	Path string
}

// NoSourceError says a pinned CRI-O release's source is nowhere to be had:
// not a failure of the node, a reason to skip it (the suites) or to give no
// verdict (the CLI).
type NoSourceError struct {
	Tag   string
	Tried []string // each place looked at, with what was there
}

func (e *NoSourceError) Error() string {
	return fmt.Sprintf("CRI-O %s source not available: tried %s. To run this node, set %s to a dir holding a clone of upstream CRI-O as cri-o/ (see docs/crio-nodes.md)",
		e.Tag, strings.Join(e.Tried, "; "), SourcesEnv)
}

// IsNoSource says whether err is (or wraps) a NoSourceError.
func IsNoSource(err error) bool {
	var ns *NoSourceError
	return errors.As(err, &ns)
}

// CheckSources finds the source of every component of cs built from a
// pinned CRI-O source tree, and returns the first NoSourceError (or other
// error) it meets; nil when every such source is at hand. Callers use it
// before anything is built or booted, so a missing source is said at once.
func CheckSources(ctx context.Context, cs []Component) error {
	for _, c := range cs {
		pin, ok := pinnedSource(c)
		if !ok {
			continue
		}
		if _, err := FindCRIOSource(ctx, pin); err != nil {
			return err
		}
	}
	return nil
}

// pinnedSource returns the pin c is built from, when it is built from a
// CRI-O source tree rather than the module proxy.
func pinnedSource(c Component) (versions.CRIOSource, bool) {
	if c.Name != CRIO && c.Name != Pinns {
		return versions.CRIOSource{}, false
	}
	for _, s := range versions.CRIOSources() {
		if s.Tag == c.Version {
			return s, true
		}
	}
	return versions.CRIOSource{}, false
}

// FindCRIOSource finds pin's source, in order: the dirs of
// $PIDREUSE_CRIO_SOURCES (each: cri-o-<tag>.tar.gz, cri-o-<tag>/, cri-o/);
// else pidreuse's own bare clone in the cache dir, fetching the pinned tag
// into it from upstream when it lacks the commit. The first candidate that
// exists is the one used: one that then fails its check is an error, never
// a reason to look further. Nothing found anywhere is a *NoSourceError.
func FindCRIOSource(ctx context.Context, pin versions.CRIOSource) (Source, error) {
	var tried []string
	env := os.Getenv(SourcesEnv)
	if env == "" {
		tried = append(tried, SourcesEnv+" (unset)")
	} else {
		loc, ok := locateCRIOSource(pin.Tag, filepath.SplitList(env))
		if ok {
			return loc, nil
		}
		tried = append(tried, fmt.Sprintf("%s=%s (no %s in it)", SourcesEnv, env, strings.Join(candidateNames(pin.Tag), ", ")))
	}
	root, err := cachedir.Dir("sources")
	if err != nil {
		return Source{}, err
	}
	clone, err := cachedClone(ctx, root, upstream(), pin)
	if err == nil {
		return Source{fromClone, clone}, nil
	}
	var ns *NoSourceError
	if !errors.As(err, &ns) {
		return Source{}, err
	}
	return Source{}, &NoSourceError{Tag: pin.Tag, Tried: append(tried, ns.Tried...)}
}

// upstream is $PIDREUSE_CRIO_UPSTREAM, else Upstream.
func upstream() string {
	if u := os.Getenv(UpstreamEnv); u != "" {
		return u
	}
	return Upstream
}

// locateCRIOSource returns the first candidate for tag that exists in dirs.
func locateCRIOSource(tag string, dirs []string) (Source, bool) {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		for _, c := range candidates(tag) {
			p := filepath.Join(d, c.name)
			if _, err := os.Stat(p); err == nil {
				return Source{c.kind, p}, true
			}
		}
	}
	return Source{}, false
}

// cachedClone returns the cached bare clone under root once it holds
// pin's commit, fetching pin's tag from url into it when it does not. The
// clone is made under a temporary name and renamed into place, so a failed
// first fetch leaves nothing; the lock keeps two processes from fetching
// at once (the second finds the commit the first fetched).
func cachedClone(ctx context.Context, root, url string, pin versions.CRIOSource) (string, error) {
	clone := filepath.Join(root, cloneName)
	if hasCommit(ctx, clone, pin.Commit) {
		return clone, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("CRI-O source cache: %w", err)
	}
	lock, err := flock.Wait(ctx, filepath.Join(root, ".lock-"+cloneName), nil)
	if err != nil {
		return "", fmt.Errorf("CRI-O source cache: %w", err)
	}
	defer lock.Release()
	if hasCommit(ctx, clone, pin.Commit) {
		return clone, nil
	}
	target, fresh := clone, false
	if _, err := os.Stat(clone); err != nil {
		if target, err = os.MkdirTemp(root, cloneName+".new-"); err != nil {
			return "", fmt.Errorf("CRI-O source cache: %w", err)
		}
		defer os.RemoveAll(target) // gone after the rename
		fresh = true
		if _, err := git(ctx, "", "init", "-q", "--bare", target); err != nil {
			return "", fmt.Errorf("CRI-O source cache: %w", err)
		}
	}
	if _, err := git(ctx, target, fetchArgs(url, pin.Tag)...); err != nil {
		what := "absent"
		if !fresh {
			what = "without commit " + pin.Commit[:12]
		}
		return "", &NoSourceError{Tag: pin.Tag, Tried: []string{
			fmt.Sprintf("the cached clone %s (%s)", clone, what),
			fmt.Sprintf("fetching tag %s from %s (%s)", pin.Tag, url, firstLine(err)),
		}}
	}
	if !hasCommit(ctx, target, pin.Commit) {
		return "", fmt.Errorf("CRI-O %s: tag fetched from %s does not name the pinned commit %s: not the upstream tag", pin.Tag, url, pin.Commit)
	}
	if fresh {
		if err := os.Rename(target, clone); err != nil {
			return "", fmt.Errorf("CRI-O source cache: %w", err)
		}
	}
	return clone, nil
}

// fetchArgs fetches one tag, shallow: `git archive` needs the commit's
// tree only, and its export-subst hashes are pinned to a fixed length
// (versions.CRIOArchiveAbbrev), not to what the clone's size would give.
// A transfer slower than 1 KiB/s for 60 s is cut off.
func fetchArgs(url, tag string) []string {
	return []string{"-c", "http.lowSpeedLimit=1024", "-c", "http.lowSpeedTime=60",
		"fetch", "-q", "--no-tags", "--depth=1", url, "+refs/tags/" + tag + ":refs/tags/" + tag}
}

// hasCommit says whether repo holds commit.
func hasCommit(ctx context.Context, repo, commit string) bool {
	if _, err := os.Stat(repo); err != nil {
		return false
	}
	_, err := git(ctx, repo, "cat-file", "-e", commit+"^{commit}")
	return err == nil
}

// git runs git (in repo when set) under upstreamDeadline, never asking
// for credentials (a private mirror that wants them fails, not waits).
func git(ctx context.Context, repo string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, upstreamDeadline)
	defer cancel()
	if repo != "" {
		args = append([]string{"-C", repo}, args...)
	}
	cmd := groupCommand(ctx, "git", args...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true")
	var out strings.Builder
	cmd.Stdout = &out
	err := command.Run(ctx, cmd)
	if ctx.Err() == context.DeadlineExceeded {
		return "", fmt.Errorf("timed out: git %s after %s", args[len(args)-1], upstreamDeadline)
	}
	return strings.TrimSpace(out.String()), err
}

// firstLine is err's text up to its first line break, with git's "fatal: "
// taken off: what one line of a skip message can carry.
func firstLine(err error) string {
	var ce *command.Error
	s := err.Error()
	if errors.As(err, &ce) && strings.TrimSpace(ce.Output) != "" {
		s = ce.Output
	}
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimPrefix(s, "fatal: ")
}

// sourceKind says how a located source is read and checked.
type sourceKind int

const (
	fromTarball sourceKind = iota // cri-o-<tag>.tar.gz
	fromClone                     // a git clone, bare or not
)

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

func candidateNames(tag string) []string {
	var names []string
	for _, c := range candidates(tag) {
		names = append(names, c.name)
	}
	return names
}
