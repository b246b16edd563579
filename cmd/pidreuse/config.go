package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness/tier"
	"github.com/pidreuse/pidreuse/images/cniplugins"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/nodebin"
	"github.com/pidreuse/pidreuse/scenarios"
)

// runConfig is everything `run` and `bisect` take from the command line.
type runConfig struct {
	tier          string
	scenario      string
	pluginVersion string
	cniBinDir     string
	crio          string
	kubelet       string
	pinns         string
	criDockerd    string
	containerd    string
	json          bool
	node          string
	nodeSet       bool // --node given (image build: a CRI-O node's image)
	bisect        bool
	runID         string
	// runDir is the run's locked work dir (openRunDir), set by cmdRun.
	runDir string
	nodeFlags
}

func parseRunFlags(name string, args []string) (runConfig, error) {
	var c runConfig
	fs := newFlagSet(name)
	fs.StringVar(&c.tier, "tier", "sandbox", "where to run, `TIER`: sandbox (namespaces, seconds) or vm (libvirt, minutes)")
	fs.StringVar(&c.scenario, "scenario", "all", "scenario `NAME`, comma-separated names, or all")
	fs.StringVar(&c.pluginVersion, "plugin-version", versions.DefaultCNIPlugin, "CNI plugins to use, `V`: pinned tags ("+strings.Join(versions.CNIPlugins, ", ")+") or debian, comma-separated, or all")
	fs.StringVar(&c.cniBinDir, "cni-bin-dir", "", "use the loopback plugin in `DIR` instead of a pinned version (any other build)")
	fs.StringVar(&c.node, "node", envOr("PIDREUSE_NODE", crionode.DefaultProfile), "vm tier: the CRI-O node profile `NAME` the CRI-O scenarios run on ("+strings.Join(profileNames(), ", ")+"; pidreuse nodes lists them)")
	fs.StringVar(&c.crio, "crio", "", "vm tier: run this crio `BIN` instead of the image's (laid over the cached image, no rebuild)")
	fs.StringVar(&c.kubelet, "kubelet", "", "vm tier: run this kubelet `BIN` instead of the image's")
	fs.StringVar(&c.pinns, "pinns", "", "vm tier: give CRI-O this pinns `BIN` instead of the image's")
	fs.StringVar(&c.criDockerd, "cri-dockerd", "", "vm tier, --node cri-dockerd: run this cri-dockerd `BIN` instead of the image's")
	fs.StringVar(&c.containerd, "containerd", "", "vm tier, --node containerd: run this containerd `BIN` instead of Debian's (its shim and runc stay Debian's)")
	fs.BoolVar(&c.json, "json", false, "print one JSON object per scenario instead of a table")
	c.nodeFlags.register(fs, "summary.md, junit.xml, results/*.json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageErr{fmt.Sprintf("%s: %v", name, err)}
	}
	if err := c.nodeFlags.check(fs); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, usageErr{fmt.Sprintf("%s: unexpected argument %q", name, fs.Arg(0))}
	}
	set := c.nodeFlags.set
	c.nodeSet = set["node"]
	source := c.nodeFlags.source
	switch c.tier {
	case scenarios.TierSandbox, scenarios.TierVM:
	default:
		return c, usageErr{fmt.Sprintf("unknown tier %q: use sandbox or vm", c.tier)}
	}
	if _, err := crionode.Lookup(c.node); err != nil {
		return c, usageErr{fmt.Sprintf("%s: %v", source("node", "PIDREUSE_NODE"), err)}
	}
	if c.cniBinDir == "" {
		if _, err := cniplugins.ParseVersions(c.pluginVersion); err != nil {
			return c, usageErr{"--plugin-version: " + err.Error()}
		}
	} else if set["plugin-version"] {
		return c, usageErr{"--plugin-version and --cni-bin-dir: name one (--cni-bin-dir brings its own plugins)"}
	}
	if c.tier != scenarios.TierVM {
		for _, f := range c.binaries() {
			if f.path != "" {
				return c, usageErr{fmt.Sprintf("--%s applies to --tier vm: the %s tier runs no CRI-O or kubelet", f.name, c.tier)}
			}
		}
		// Flags that only a VM uses would be ignored here: refused, so a
		// script never believes it ran what it did not.
		for _, f := range []string{"libvirt-uri", "libvirt-socket", "reboot", "node"} {
			if set[f] {
				return c, usageErr{fmt.Sprintf("--%s applies to --tier vm: the %s tier boots no VM", f, c.tier)}
			}
		}
	}
	// A binary the node does not run would be laid over it and never run:
	// a bisect step would judge the image's own instead.
	p, _ := crionode.Lookup(c.node)
	for _, f := range c.binaries() {
		if f.path != "" && !f.runsOn(p) {
			return c, usageErr{fmt.Sprintf("--%s: node %s runs %s, not %s (pidreuse nodes lists the profiles)", f.name, p.Name, p.Runtime, f.name)}
		}
	}
	c.runID = newRunID()
	return c, nil
}

// binaryFlag is one of the flags that lay a binary of the user's over the
// node image.
type binaryFlag struct {
	name, path string
	// runsOn says whether a node of the profile runs it.
	runsOn func(crionode.Profile) bool
}

func (c runConfig) binaries() []binaryFlag {
	always := func(crionode.Profile) bool { return true }
	crio := func(p crionode.Profile) bool { return p.IsCRIO() }
	return []binaryFlag{
		{"crio", c.crio, crio}, {"kubelet", c.kubelet, always}, {"pinns", c.pinns, crio},
		{"cri-dockerd", c.criDockerd, func(p crionode.Profile) bool { return p.Runtime == crionode.RuntimeDocker }},
		{"containerd", c.containerd, func(p crionode.Profile) bool { return p.Runtime == crionode.RuntimeContainerd }},
	}
}

func profileNames() []string {
	var names []string
	for _, p := range crionode.Profiles() {
		names = append(names, p.Name)
	}
	return names
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// runIDPattern is the shape of newRunID's IDs.
var runIDPattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{6}-[0-9a-f]{6}$`)

// newRunID names everything one run creates, so `pidreuse clean` can find
// what a crashed run left.
func newRunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("0102-150405") + "-" + hex.EncodeToString(b)
}

// findAgent locates nodeagent and checks failonce (our fault-injecting CNI
// plugin) sits next to it, where the agent looks for it; the image
// builders check the other node-side binaries they take from that dir.
func findAgent(flagPath string) (string, error) {
	candidates := []string{flagPath, os.Getenv("PIDREUSE_NODEAGENT")}
	if self, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(self), nodebin.Agent))
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if err := checkAgentFile("--agent", p); err != nil {
			if p == flagPath {
				return "", fmt.Errorf("nodeagent %s is missing or not executable: run `make build`", p)
			}
			if p == os.Getenv("PIDREUSE_NODEAGENT") {
				return "", err
			}
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if err := nodebin.Check(filepath.Dir(abs), nodebin.Agent, nodebin.Failonce); err != nil {
			return "", err
		}
		return abs, nil
	}
	return "", errors.New("nodeagent not found next to pidreuse: run `make build` or pass --agent")
}

// checkAgentFile says whether path, given by source, is an executable file.
func checkAgentFile(source, path string) error {
	st, err := os.Stat(path)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: nodeagent %s is missing or not executable: run `make build`", source, path)
	}
	return nil
}

// resolvePlugins turns --cni-bin-dir / --plugin-version into plugin dirs,
// building released versions that are not cached yet.
func resolvePlugins(ctx context.Context, c runConfig, progress func(string)) ([]tier.PluginSet, error) {
	if c.cniBinDir != "" {
		abs, err := filepath.Abs(c.cniBinDir)
		if err != nil {
			return nil, err
		}
		if err := cniplugins.CheckDir(ctx, abs); err != nil {
			return nil, err
		}
		return []tier.PluginSet{{Version: "custom:" + abs, Dir: abs}}, nil
	}
	wanted, err := cniplugins.ParseVersions(c.pluginVersion)
	if err != nil {
		return nil, err
	}
	root, err := cniplugins.CacheRoot()
	if err != nil {
		return nil, err
	}
	var out []tier.PluginSet
	for _, v := range wanted {
		dir, err := cniplugins.Dir(ctx, root, v, progress)
		if err != nil {
			return nil, err
		}
		if err := cniplugins.CheckDir(ctx, dir); err != nil {
			return nil, err
		}
		out = append(out, tier.PluginSet{Version: v, Dir: dir})
	}
	return out, nil
}
