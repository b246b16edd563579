package crionode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/cniplugins"
	"github.com/pidreuse/pidreuse/images/components"
	"github.com/pidreuse/pidreuse/internal/flock"
	"github.com/pidreuse/pidreuse/internal/nodebin"
)

// BuildImage builds (or loads from the cache) the image of profile p: the
// plain node image of images.BuildNode plus the profile's components
// built from source (cached by version: a cold kubelet takes ~8 minutes
// here) and the pod image. agentDir holds the node-side binaries
// (internal/nodebin), built static (`make build`).
func BuildImage(ctx context.Context, p Profile, agentDir string, progress func(string)) (*images.Image, error) {
	return withInputs(ctx, p, agentDir, progress, func(extend func(images.Inputs) (images.Inputs, error)) (*images.Image, error) {
		return images.BuildNode(ctx, agentDir, extend, func(s string) { progress(p.Name + " " + s) })
	})
}

// ImageHash is the input hash of p's image (what BuildImage would build or
// find in the cache) without building the image: it still builds (or
// finds cached) what the image is made of, the components included.
func ImageHash(ctx context.Context, p Profile, agentDir string, progress func(string)) (string, error) {
	var hash string
	_, err := withInputs(ctx, p, agentDir, progress, func(extend func(images.Inputs) (images.Inputs, error)) (*images.Image, error) {
		in, err := images.NodeImageInputs(ctx, agentDir, extend, progress)
		if err != nil {
			return nil, err
		}
		hash, err = in.Hash()
		return nil, err
	})
	return hash, err
}

// withInputs gets p's components and stage dir ready and hands use the
// function that turns the plain node's inputs into p's; the stage dir
// lives until use returns.
func withInputs(ctx context.Context, p Profile, agentDir string, progress func(string), use func(extend func(images.Inputs) (images.Inputs, error)) (*images.Image, error)) (*images.Image, error) {
	if progress == nil {
		progress = func(string) {}
	}
	podserver, nodecri := filepath.Join(agentDir, nodebin.PodServer), filepath.Join(agentDir, nodebin.NodeCRI)
	for _, p := range []string{podserver, nodecri} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("crio node: %s missing: run `make build`", p)
		}
	}
	croot, err := components.CacheRoot()
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for _, c := range p.Components() {
		progress(fmt.Sprintf("%s: component %s %s", p.Name, c.Name, c.Version))
		if paths[c.Name], err = components.BuildComponent(ctx, croot, c, progress); err != nil {
			return nil, fmt.Errorf("crio node %s: %w", p.Name, err)
		}
	}
	var loopback string
	if p.Loopback != "" {
		root, err := cniplugins.CacheRoot()
		if err != nil {
			return nil, err
		}
		dir, err := cniplugins.Dir(ctx, root, p.Loopback, progress)
		if err != nil {
			return nil, fmt.Errorf("crio node %s: %w", p.Name, err)
		}
		loopback = filepath.Join(dir, "loopback")
	}
	// Locked while the image is built from it, against `pidreuse clean`.
	stage, lock, err := flock.CreateTempDir("", "pidreuse-crionode-", 0o700)
	if err != nil {
		return nil, fmt.Errorf("crio node: %w", err)
	}
	defer lock.Release()
	defer os.RemoveAll(stage)
	return use(func(base images.Inputs) (images.Inputs, error) {
		return p.Inputs(base, Components{
			Kubelet: paths[components.Kubelet], CRIO: paths[components.CRIO], Pinns: paths[components.Pinns],
			Crictl: paths[components.Crictl], CRIDockerd: paths[components.CRIDockerd], PodServer: podserver, Loopback: loopback, NodeCRI: nodecri,
		}, stage)
	})
}
