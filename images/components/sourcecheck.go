package components

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/shell"
)

// pinnedTree is a checked, extracted source tree of a pinned release.
type pinnedTree struct {
	dir        string
	commitTime time.Time
}

// extractCRIOSource checks the source at loc against pin and extracts it
// under dst, returning the tree. Nothing unchecked is written: a tarball's
// sha256 is checked before it is unpacked, a clone's archive is hashed
// once before it is unpacked and again while it is.
func (w *workspace) extractCRIOSource(ctx context.Context, pin versions.CRIOSource, loc Source, dst string) (pinnedTree, error) {
	var (
		meta tarMeta
		err  error
	)
	switch loc.kind {
	case fromTarball:
		meta, err = w.extractTarball(pin, loc.Path, dst)
	case fromClone:
		meta, err = w.extractClone(ctx, pin, loc.Path, dst)
	default:
		err = fmt.Errorf("unknown source kind %d", loc.kind)
	}
	if err != nil {
		return pinnedTree{}, fmt.Errorf("CRI-O %s source %s: %w", pin.Tag, loc.Path, err)
	}
	if meta.comment != pin.Commit {
		return pinnedTree{}, fmt.Errorf("CRI-O %s source %s: its archive names commit %q, pinned %s", pin.Tag, loc.Path, meta.comment, pin.Commit)
	}
	return pinnedTree{dir: filepath.Join(dst, tarPrefix(pin.Tag)), commitTime: meta.modTime}, nil
}

// tarPrefix is the top dir of a release tarball, as `git archive
// --prefix` names it.
func tarPrefix(tag string) string { return "cri-o-" + tag + "/" }

// extractTarball checks the file's sha256, then unpacks it, checking the
// uncompressed stream's sha256 too.
func (w *workspace) extractTarball(pin versions.CRIOSource, path, dst string) (tarMeta, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return tarMeta{}, err
	}
	if sum != pin.TarballSHA256 {
		return tarMeta{}, fmt.Errorf("sha256 %s, pinned %s: not the release tarball (replace it, or remove it to let the search go on)", sum, pin.TarballSHA256)
	}
	fmt.Fprintf(w.log, "\n# %s: sha256 %s matches the pin\n", path, sum)
	f, err := os.Open(path)
	if err != nil {
		return tarMeta{}, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return tarMeta{}, fmt.Errorf("gunzip: %w", err)
	}
	h := sha256.New()
	meta, err := untar(io.TeeReader(zr, h), dst, tarPrefix(pin.Tag))
	if err != nil {
		return meta, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != pin.TarSHA256 {
		return meta, fmt.Errorf("uncompressed sha256 %s, pinned %s", got, pin.TarSHA256)
	}
	return meta, nil
}

// extractClone checks a git clone against the pin: the tag, when the clone
// has it, must name the pinned commit; the commit must be there; and `git
// archive` of it must hash to the pinned uncompressed tarball. The build
// uses that archive, not the clone's work tree, so local edits or a
// different checkout cannot slip into a pinned build.
func (w *workspace) extractClone(ctx context.Context, pin versions.CRIOSource, repo, dst string) (tarMeta, error) {
	tagged, err := w.git(ctx, repo, "rev-parse", "--verify", "-q", "refs/tags/"+pin.Tag+"^{commit}")
	if err == nil && tagged != pin.Commit {
		return tarMeta{}, fmt.Errorf("tag %s names commit %s, pinned %s: not the upstream tag", pin.Tag, tagged, pin.Commit)
	}
	if _, err := w.git(ctx, repo, "cat-file", "-e", pin.Commit+"^{commit}"); err != nil {
		return tarMeta{}, fmt.Errorf("no commit %s (tag %s) in this clone: `git -C %s fetch origin tag %s`", pin.Commit, pin.Tag, repo, pin.Tag)
	}
	sum, err := w.gitArchive(ctx, pin, repo, func(r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if err != nil {
		return tarMeta{}, err
	}
	if sum != pin.TarSHA256 {
		return tarMeta{}, fmt.Errorf("`git archive` of %s hashes to %s, pinned %s (the release tarball, uncompressed): "+
			"the clone's .gitattributes or git version may differ; use the release tarball", pin.Commit, sum, pin.TarSHA256)
	}
	fmt.Fprintf(w.log, "\n# %s: commit %s, archive sha256 %s match the pin\n", repo, pin.Commit, sum)
	var meta tarMeta
	sum, err = w.gitArchive(ctx, pin, repo, func(r io.Reader) error {
		meta, err = untar(r, dst, tarPrefix(pin.Tag))
		return err
	})
	if err != nil {
		return meta, err
	}
	if sum != pin.TarSHA256 {
		return meta, fmt.Errorf("second `git archive` of %s hashes to %s, pinned %s", pin.Commit, sum, pin.TarSHA256)
	}
	return meta, nil
}

// archiveArgs is the `git archive` that reproduces a release tarball,
// uncompressed. The -c options pin what a user's config or the clone could
// change: line endings, the umask of the entries, and the length of the
// hashes that export-subst files get (see versions.CRIOArchiveAbbrev).
func archiveArgs(pin versions.CRIOSource) []string {
	return []string{"-c", "core.autocrlf=false", "-c", "core.eol=lf", "-c", "tar.umask=0002",
		"-c", fmt.Sprintf("core.abbrev=%d", versions.CRIOArchiveAbbrev),
		"archive", "--format=tar", "--prefix=" + tarPrefix(pin.Tag), pin.Commit}
}

// gitArchive streams `git archive` of the pinned commit to consume and
// returns the stream's sha256.
func (w *workspace) gitArchive(ctx context.Context, pin versions.CRIOSource, repo string, consume func(io.Reader) error) (string, error) {
	args := append([]string{"-C", repo}, archiveArgs(pin)...)
	fmt.Fprintf(w.log, "\n$ %s\n", shell.Join(append([]string{"git"}, args...)))
	cmd := groupCommand(ctx, "git", args...)
	cmd.Stderr = w.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("git archive: %w", err)
	}
	h := sha256.New()
	cerr := consume(io.TeeReader(out, h))
	// Drain what consume left, so git is not stuck writing to a full pipe.
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if cerr != nil {
		return "", cerr
	}
	if werr != nil {
		return "", fmt.Errorf("git archive: %w", werr)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// git runs git in repo and returns its trimmed stdout.
func (w *workspace) git(ctx context.Context, repo string, args ...string) (string, error) {
	out, err := w.runOut(ctx, repo, nil, "git", append([]string{"-C", repo}, args...)...)
	return strings.TrimSpace(string(out)), err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
