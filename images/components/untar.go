package components

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// tarMeta is what untar learnt from the archive besides its files.
type tarMeta struct {
	// comment is the pax global header's comment: `git archive` of a
	// commit writes the commit id there.
	comment string
	// modTime is the time of the prefix dir: `git archive` stamps every
	// entry with the commit time.
	modTime time.Time
}

// untar writes the tar stream r under dst. Every entry must sit under
// prefix (e.g. "cri-o-v1.17.5/") and be a dir, a regular file or a
// symlink; nothing is written through a symlink the archive made. It
// reads r to its end, padding included, so a hash of r covers it all.
func untar(r io.Reader, dst, prefix string) (tarMeta, error) {
	var meta tarMeta
	links := map[string]bool{} // symlinks made so far, slash-separated
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return meta, fmt.Errorf("read tar: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			meta.comment = h.PAXRecords["comment"]
			continue
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !strings.HasPrefix(h.Name, prefix) && h.Name != prefix {
			return meta, fmt.Errorf("tar entry %q is not under %s", h.Name, prefix)
		}
		if !filepath.IsLocal(name) || path.Clean(name) != name {
			return meta, fmt.Errorf("tar entry %q is not a plain relative path", h.Name)
		}
		for p := path.Dir(name); p != "."; p = path.Dir(p) {
			if links[p] {
				return meta, fmt.Errorf("tar entry %q lies under symlink %s", h.Name, p)
			}
		}
		target := filepath.Join(dst, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return meta, err
			}
			if name+"/" == prefix {
				meta.modTime = h.ModTime
			}
		case tar.TypeReg:
			if err := writeFile(target, tr, h.FileInfo().Mode()); err != nil {
				return meta, err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return meta, err
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return meta, err
			}
			links[name] = true
		default:
			return meta, fmt.Errorf("tar entry %q has type %q: only dirs, files and symlinks are expected", h.Name, h.Typeflag)
		}
	}
	// The end-of-archive blocks and the record padding are part of what
	// was hashed.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return meta, fmt.Errorf("read tar: %w", err)
	}
	return meta, nil
}

// writeFile writes r to a new file at path, executable if mode says so.
func writeFile(path string, r io.Reader, mode os.FileMode) error {
	perm := os.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
