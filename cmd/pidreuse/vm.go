package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/tier"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/images/layer"
	"github.com/pidreuse/pidreuse/scenarios"
)

// nodeImage builds (or loads from the cache) the node image with the
// agent next to agentPath and every CNI plugin version of the matrix, so
// the image does not change with the version a run picks.
func nodeImage(ctx context.Context, agentPath string, progress func(string)) (*images.Image, error) {
	return images.BuildNode(ctx, filepath.Dir(agentPath), nil, progress)
}

func cmdImage(ctx context.Context, args []string) (int, error) {
	const usage = "usage: pidreuse image build|hash [--node NAME] [--agent PATH]"
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		printCommandHelp(os.Stdout, "image", nil)
		return exitGood, nil
	}
	if len(args) == 0 || (args[0] != "build" && args[0] != "hash") {
		return exitUsage, usageErr{usage}
	}
	c, err := parseImageFlags("image "+args[0], args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return exitGood, nil
	}
	if err != nil {
		return exitUsage, err
	}
	agentPath, err := findAgent(c.agentPath)
	if err != nil {
		return exitNoVerdict, err
	}
	// Without --node: the plain node image (the legacy runtime's
	// scenarios); with it, that CRI-O node's.
	var profile *crionode.Profile
	if c.nodeSet {
		p, err := crionode.Lookup(c.node)
		if err != nil {
			return exitNoVerdict, fmt.Errorf("--node: %w", err)
		}
		if err := p.CheckSources(ctx); err != nil {
			return exitNoVerdict, err
		}
		profile = &p
	}
	if args[0] == "hash" {
		hash, err := imageHash(ctx, profile, agentPath)
		if err != nil {
			return exitNoVerdict, err
		}
		fmt.Println(hash)
		return exitGood, nil
	}
	var img *images.Image
	if profile != nil {
		img, err = crionode.BuildImage(ctx, *profile, filepath.Dir(agentPath), progressLine)
	} else {
		img, err = nodeImage(ctx, agentPath, progressLine)
	}
	if err != nil {
		return exitNoVerdict, err
	}
	fmt.Printf("image %s\n  dir      %s\n  base     %s (%d MiB)\n  kernel   %s\n  packages %d\n",
		img.Manifest.InputHash, img.Dir, img.BaseDisk, img.Manifest.BaseDisk.Size>>20, img.Manifest.KernelVersion, len(img.Manifest.Packages))
	return exitGood, nil
}

// imageConfig is what `image build|hash` takes: which image, and where
// the node-side binaries it carries are.
type imageConfig struct {
	node      string
	nodeSet   bool // --node given: a CRI-O node's image, else the plain one
	agentPath string
}

func parseImageFlags(name string, args []string) (imageConfig, error) {
	var c imageConfig
	fs := newFlagSet(name)
	fs.StringVar(&c.node, "node", "", "build the image of this CRI-O node profile ("+strings.Join(profileNames(), ", ")+") instead of the plain node's")
	fs.StringVar(&c.agentPath, "agent", "", "nodeagent binary (default: next to this binary, or $PIDREUSE_NODEAGENT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageErr{fmt.Sprintf("%s: %v", name, err)}
	}
	if fs.NArg() > 0 {
		return c, usageErr{fmt.Sprintf("%s: unexpected argument %q", name, fs.Arg(0))}
	}
	c.nodeSet = c.node != ""
	return c, nil
}

// imageHash is the input hash of the plain node image (profile nil) or of
// a CRI-O node's, without building the image: a CI cache key. It builds
// what is not cached of what the image is made of: the CNI plugin
// versions (seconds each) and, for a CRI-O node, its components (minutes
// when cold: the same builds the run would make). Progress goes to
// stderr, the hash alone to stdout.
func imageHash(ctx context.Context, profile *crionode.Profile, agentPath string) (string, error) {
	if profile != nil {
		return crionode.ImageHash(ctx, *profile, filepath.Dir(agentPath), progressLine)
	}
	in, err := images.NodeImageInputs(ctx, filepath.Dir(agentPath), nil, progressLine)
	if err != nil {
		return "", err
	}
	return in.Hash()
}

func progressLine(msg string) { fmt.Fprintf(os.Stderr, "pidreuse: %s\n", msg) }

// runVMTier plays scs on VM nodes and returns the results and the inputs
// the user laid over the image (for the report).
func runVMTier(ctx context.Context, c runConfig, scs []scenarios.Scenario, art *artifactDirs, progress func(string)) (_ []runner.Result, inputs []string, err error) {
	agentPath, err := findAgent(c.agentPath)
	if err != nil {
		return nil, nil, err
	}
	kube := needsCRIONode(scs)
	lay, err := c.layer(ctx, kube)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range lay.Binaries {
		inputs = append(inputs, fmt.Sprintf("%s: `%s` sha256 %s (%s)", b.Name, b.Src, b.SHA256, orDash(b.Version)))
	}
	if lay.CNIDir != "" {
		inputs = append(inputs, fmt.Sprintf("CNI plugins: `%s`", lay.CNIDir))
	}
	// Fail fast: no point building an image for a libvirtd that is not there.
	lv, err := libvirt.ConnectURI(ctx, c.libvirtURI, c.libvirtSocket)
	if err != nil {
		return nil, nil, err
	}
	lv.Close()
	sets, err := resolvePlugins(ctx, c, progress)
	if err != nil {
		return nil, nil, err
	}
	if lay.CNIDir != "" {
		// Bring-your-own plugins go in with the layer: no image rebuild.
		sets[0].GuestDir = layer.GuestCNIDir
	}
	r := c.tierRun(scs, sets, agentPath, art, progress)
	r.Layer = lay
	if kube {
		profile, err := crionode.Lookup(c.node)
		if err != nil {
			return nil, nil, err
		}
		r.Profile = profile
	}
	results, err := tier.VM(ctx, r)
	return results, inputs, err
}

// layer collects --crio, --kubelet, --pinns, --cri-dockerd, --containerd
// and --cni-bin-dir into the layer laid over the node image, checking each
// binary first.
func (c runConfig) layer(ctx context.Context, kubeScenarios bool) (layer.Layer, error) {
	var l layer.Layer
	for _, b := range c.binaries() {
		if b.path == "" {
			continue
		}
		if !kubeScenarios {
			return l, usageErr{fmt.Sprintf("--%s only matters to the scenarios that run CRI-O and kubelet (%s): name one with --scenario", b.name, strings.Join(scenarios.CRIONodeNames(), ", "))}
		}
		abs, err := filepath.Abs(b.path)
		if err != nil {
			return l, err
		}
		bin := layer.Binary{Name: b.name, Src: abs}
		if err := layer.Check(ctx, &bin); err != nil {
			return l, err
		}
		l.Binaries = append(l.Binaries, bin)
	}
	if c.cniBinDir != "" {
		abs, err := filepath.Abs(c.cniBinDir)
		if err != nil {
			return l, err
		}
		l.CNIDir = abs
	}
	return l, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
