package components

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/internal/elfcheck"
	"github.com/pidreuse/pidreuse/internal/flock"
)

// TreeBuild is what BuildCRIOTree wrote into its out dir.
type TreeBuild struct {
	CRIO  string // path of crio
	Pinns string // path of pinns; "" when the tree has no pinns/
	// Tree describes the tree as the build saw it (version, go, vendor,
	// reflect2, tags, version variables).
	Tree string
}

// BuildCRIOTree builds any CRI-O source tree (v1.16 to today) at src the
// way the node image builds its CRI-O, and writes crio, and pinns when the
// tree has pinns/, into outDir. src is never modified: the build runs on a
// copy without .git (the reflect2 swap edits vendor/). When src is a git
// work tree its HEAD, dirtiness and commit date are stamped, as CRI-O's
// Makefile would. outDir gets each binary whole or not at all: they are
// written next to it and renamed in once both are built. A failed build's
// error carries the tail of its log, and names where the full log is kept.
func BuildCRIOTree(ctx context.Context, src, outDir string, progress func(string)) (TreeBuild, error) {
	if progress == nil {
		progress = func(string) {}
	}
	// Locked for the build's life: `pidreuse clean` must not remove a
	// live build's tree (it goes by the pidreuse- prefix, not by age).
	tmp, lock, err := flock.CreateTempDir("", "pidreuse-build-crio-", 0o700)
	if err != nil {
		return TreeBuild{}, err
	}
	defer lock.Release()
	defer os.RemoveAll(tmp)
	logPath := filepath.Join(tmp, "build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return TreeBuild{}, err
	}
	defer logFile.Close()
	w := &workspace{src: tmp, log: logFile, progress: progress}
	res, err := w.buildAnyTree(ctx, src, filepath.Join(tmp, "out"), outDir)
	if err != nil {
		if ctx.Err() != nil {
			// "signal: killed" from the compiler would hide why.
			err = fmt.Errorf("stopped (%v): %w", context.Cause(ctx), err)
		}
		return TreeBuild{}, keepFailedLog(logFile, logPath, tmp+".log", err)
	}
	return res, nil
}

func (w *workspace) buildAnyTree(ctx context.Context, src, stage, outDir string) (TreeBuild, error) {
	st := w.gitStamp(ctx, src)
	w.progress("copying " + src)
	tree := filepath.Join(w.src, "cri-o")
	if err := copyTree(ctx, src, tree); err != nil {
		return TreeBuild{}, fmt.Errorf("copy %s: %w", src, err)
	}
	t, err := w.readCRIOTree(tree)
	if err != nil {
		return TreeBuild{}, err
	}
	if err := os.Mkdir(stage, 0o755); err != nil {
		return TreeBuild{}, err
	}
	built := map[string]string{CRIO: filepath.Join(stage, CRIO)}
	if err := w.compileCRIO(ctx, t, st, built[CRIO]); err != nil {
		return TreeBuild{}, err
	}
	if err := elfcheck.Executable(built[CRIO]); err != nil {
		return TreeBuild{}, err
	}
	if t.pinns != "" {
		built[Pinns] = filepath.Join(stage, Pinns)
		if err := w.compilePinns(ctx, t, built[Pinns]); err != nil {
			return TreeBuild{}, err
		}
	}
	paths, err := installAll(ctx, built, outDir)
	if err != nil {
		return TreeBuild{}, err
	}
	w.progress(fmt.Sprintf("wrote %s", strings.Join(sortedValues(paths), " and ")))
	return TreeBuild{CRIO: paths[CRIO], Pinns: paths[Pinns], Tree: t.String()}, nil
}

// gitStamp reads commit, dirtiness and commit date from src when it is a
// git work tree; otherwise the commit is unknown and the date is
// SOURCE_DATE_EPOCH's, or now, as CRI-O's Makefile would have it.
func (w *workspace) gitStamp(ctx context.Context, src string) crioStamp {
	st := crioStamp{date: time.Now()}
	if epoch, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		st.date = time.Unix(epoch, 0)
	}
	head, err := w.git(ctx, src, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return st
	}
	st.commit = head
	if status, err := w.git(ctx, src, "status", "--porcelain", "--untracked-files=no"); err == nil && status != "" {
		st.dirty = true
	}
	if ct, err := w.git(ctx, src, "log", "-1", "--format=%ct", "HEAD"); err == nil {
		if secs, err := strconv.ParseInt(ct, 10, 64); err == nil && !st.dirty {
			st.date = time.Unix(secs, 0)
		}
	}
	return st
}

// copyTree copies the tree at src to dst, which must not exist, keeping
// file modes and symlinks. It leaves out .git (history the build does not
// read, often larger than the tree) and what CRI-O's .gitignore calls
// build output in every release: /bin, /_output, /build and *.o, so a
// checkout where `make` ran copies fast and no stale object file stands in
// for a changed source in pinns' make.
func copyTree(ctx context.Context, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if skipInCopy(rel, d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(p, target, info.Mode().Perm()|0o200)
		}
		return nil // sockets, fifos: nothing a build reads
	})
}

func skipInCopy(rel, name string) bool {
	switch {
	case rel == ".":
		return false
	case name == ".git", strings.HasSuffix(name, ".o"):
		return true
	}
	return rel == "bin" || rel == "_output" || rel == "build"
}

// installAll copies each built file (name -> path) into outDir under its
// name: first all to temporary names in outDir, then renames, so outDir
// never holds a partial file and, short of a failing rename, gets all of
// them or none.
func installAll(ctx context.Context, built map[string]string, outDir string) (map[string]string, error) {
	tmps := map[string]string{}
	defer func() {
		for _, t := range tmps {
			os.Remove(t)
		}
	}()
	for name, path := range built {
		f, err := os.CreateTemp(outDir, "."+name+".pidreuse-")
		if err != nil {
			return nil, err
		}
		tmps[name] = f.Name()
		in, err := os.Open(path)
		if err == nil {
			_, err = io.Copy(f, in)
			in.Close()
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(f.Name(), 0o755)
		}
		if err != nil {
			return nil, fmt.Errorf("write %s into %s: %w", name, outDir, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name, t := range tmps {
		dst := filepath.Join(outDir, name)
		if err := os.Rename(t, dst); err != nil {
			return nil, fmt.Errorf("move %s into %s: %w", name, outDir, err)
		}
		delete(tmps, name)
		out[name] = dst
	}
	return out, nil
}

func sortedValues(m map[string]string) []string {
	var v []string
	for _, k := range []string{CRIO, Pinns} {
		if p, ok := m[k]; ok {
			v = append(v, p)
		}
	}
	return v
}
