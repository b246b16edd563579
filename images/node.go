package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/pidreuse/pidreuse/images/cachedir"
	"github.com/pidreuse/pidreuse/images/cniplugins"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/nodebin"
)

// Where the node image keeps our files.
const (
	GuestAgentPath     = "/usr/local/bin/nodeagent"
	GuestFailoncePath  = "/usr/local/bin/failonce"
	GuestPluginDirRoot = "/opt/pidreuse/cni"
)

// SSHListensLine is what every image writes to its serial console once
// its sshd listens (after the network is online): the harness dials SSH
// when it reads it.
const SSHListensLine = "pidreuse: sshd listens"

// GuestPluginDir is where a CNI plugin version lives inside the node.
func GuestPluginDir(version string) string {
	if version == versions.DebianCNIPlugins {
		return versions.DebianCNIPluginDir
	}
	return filepath.Join(GuestPluginDirRoot, version)
}

// NodeInputs are the inputs of the node image: the base Debian system, our
// node agent and fault-injecting plugin (agentDir holds both, built
// static), every CNI plugin version of the matrix (version → host dir) and
// Debian's own plugins.
func NodeInputs(agentDir string, pluginDirs map[string]string) (Inputs, error) {
	in, err := DefaultInputs()
	if err != nil {
		return in, err
	}
	in.Packages = append(in.Packages, "containernetworking-plugins")
	// A slice, not a map: the image hash covers the order of Files.
	for _, f := range []struct{ name, dst string }{{nodebin.Agent, GuestAgentPath}, {nodebin.Failonce, GuestFailoncePath}} {
		name, dst := f.name, f.dst
		src := filepath.Join(agentDir, name)
		if _, err := os.Stat(src); err != nil {
			return in, fmt.Errorf("node image input %s missing: run `make build`", src)
		}
		in.Files = append(in.Files, File{Src: src, Dst: dst, Mode: 0o755})
	}
	var names []string
	for v := range pluginDirs {
		names = append(names, v)
	}
	sort.Strings(names) // the hash covers order-independent sets, but keep manifests stable
	for _, v := range names {
		if v == versions.DebianCNIPlugins {
			continue // installed by the package
		}
		in.Files = append(in.Files, File{Src: pluginDirs[v], Dst: GuestPluginDir(v)})
	}
	return in, nil
}

// CacheRoot is where images are cached (see cachedir).
func CacheRoot() (string, error) { return cachedir.Dir("images") }

// NodeImageInputs are the inputs of the node image BuildNode builds: the
// agent and failonce in agentDir, every pinned CNI plugin version (built
// here first when not cached: seconds each, from the Go module proxy), and
// whatever extend adds (the CRI-O/kubelet node).
func NodeImageInputs(ctx context.Context, agentDir string, extend func(Inputs) (Inputs, error), progress func(string)) (Inputs, error) {
	plugins, err := cniplugins.All(ctx, progress)
	if err != nil {
		return Inputs{}, err
	}
	in, err := NodeInputs(agentDir, plugins)
	if err != nil {
		return Inputs{}, err
	}
	if extend != nil {
		if in, err = extend(in); err != nil {
			return Inputs{}, err
		}
	}
	return in, nil
}

// BuildNode builds or loads the node image of NodeImageInputs. progress,
// if set, gets one line per build stage.
func BuildNode(ctx context.Context, agentDir string, extend func(Inputs) (Inputs, error), progress func(string)) (*Image, error) {
	in, err := NodeImageInputs(ctx, agentDir, extend, progress)
	if err != nil {
		return nil, err
	}
	cache, err := CacheRoot()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	img, err := Build(ctx, in, cache, func(stage string, elapsed time.Duration) {
		if progress == nil {
			return
		}
		if elapsed == 0 {
			progress(fmt.Sprintf("image: %s… (%s so far)", stage, time.Since(start).Round(time.Second)))
		} else {
			progress(fmt.Sprintf("image: %s done in %s", stage, elapsed.Round(100*time.Millisecond)))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("build node image: %w", err)
	}
	return img, nil
}
