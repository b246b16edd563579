package components

import (
	"context"
	"fmt"
	"time"

	"github.com/pidreuse/pidreuse/images/versions"
)

// Legacy lists the components of a bug-era node whose CRI-O is crioTag,
// one of versions.CRIOSources: crio, its pinns when that release has one
// (1.17 on), and kubelet versions.KubeletLegacy. BuildComponent builds or
// finds each; Path says where each is cached.
func Legacy(crioTag string) ([]Component, error) {
	var tags []string
	for _, s := range versions.CRIOSources() {
		if s.Tag != crioTag {
			tags = append(tags, s.Tag)
			continue
		}
		cs := []Component{{CRIO, s.Tag}}
		if s.Pinns {
			cs = append(cs, Component{Pinns, s.Tag})
		}
		return append(cs, Component{Kubelet, versions.KubeletLegacy}), nil
	}
	return nil, fmt.Errorf("no pinned CRI-O source %q: want one of %v", crioTag, tags)
}

// sourceRecipes build crio and pinns of each pinned bug-era release from
// its checked source tree. Their cache key carries the source's hash, so a
// re-pinned tree (same tag, other bytes) never passes for the old build.
func sourceRecipes() []recipe {
	var rs []recipe
	for _, s := range versions.CRIOSources() {
		key := s.Tag + "-src-" + s.TarSHA256[:12]
		rs = append(rs, recipe{Component{CRIO, s.Tag}, key, 5 * time.Minute, buildPinnedCRIO(s)})
		if s.Pinns {
			rs = append(rs, recipe{Component{Pinns, s.Tag}, key, 10 * time.Second, buildPinnedPinns(s)})
		}
	}
	return rs
}

func buildPinnedCRIO(s versions.CRIOSource) func(context.Context, *workspace) error {
	return func(ctx context.Context, w *workspace) error {
		t, src, err := w.pinnedCRIOTree(ctx, s)
		if err != nil {
			return err
		}
		return w.compileCRIO(ctx, t, crioStamp{commit: s.Commit, date: src.commitTime}, w.out)
	}
}

func buildPinnedPinns(s versions.CRIOSource) func(context.Context, *workspace) error {
	return func(ctx context.Context, w *workspace) error {
		t, _, err := w.pinnedCRIOTree(ctx, s)
		if err != nil {
			return err
		}
		return w.compilePinns(ctx, t, w.out)
	}
}

// pinnedCRIOTree finds the source of s (FindCRIOSource), checks it
// against the pin, extracts it into the workspace and reads it.
func (w *workspace) pinnedCRIOTree(ctx context.Context, s versions.CRIOSource) (*crioTree, pinnedTree, error) {
	loc, err := FindCRIOSource(ctx, s)
	if err != nil {
		return nil, pinnedTree{}, err
	}
	w.progress(fmt.Sprintf("checking and unpacking %s", loc.Path))
	src, err := w.extractCRIOSource(ctx, s, loc, w.src)
	if err != nil {
		return nil, pinnedTree{}, err
	}
	t, err := w.readCRIOTree(src.dir)
	return t, src, err
}
