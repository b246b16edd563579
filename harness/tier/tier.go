// Package tier plays a run's scenarios on the nodes of one tier: the
// sandbox (one namespace node per scenario, all at once) or the VM (one
// legacy-runtime VM for the plain scenarios, one CRI-O/kubelet VM per
// pinning setting). The CLI and the suites hand it a Run; it starts the
// nodes, plays, keeps what a failed run needs and tears every node down.
package tier

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/harness/kubescenario"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/sandbox"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/images/layer"
	"github.com/pidreuse/pidreuse/scenarios"
)

// Keep policies: whether a run's nodes outlive it, for a look inside.
const (
	KeepNever     = "never"
	KeepOnFailure = "on-failure"
	KeepAlways    = "always"
)

// PluginSet is one set of CNI plugins the matrix runs with.
type PluginSet struct {
	Version string // a pinned tag, "debian", or "custom:<dir>"
	Dir     string // on this machine
	// GuestDir is where a VM node finds the set (default: the image's
	// copy of Version).
	GuestDir string
}

// Guest is where a VM node finds the set.
func (s PluginSet) Guest() string {
	if s.GuestDir != "" {
		return s.GuestDir
	}
	return images.GuestPluginDir(s.Version)
}

// Run is one run's scenarios and everything its nodes are made of. Its
// inputs are checked by the caller before it is handed over.
type Run struct {
	ID        string // names every node, domain and dir of the run
	Dir       string // the run's locked work dir
	Tier      string
	Scenarios []scenarios.Scenario
	Plugins   []PluginSet
	AgentPath string // nodeagent, with failonce (and the node-side binaries) next to it
	// VM tier only.
	Profile       crionode.Profile // the CRI-O node the CRI-O scenarios play on
	Layer         layer.Layer      // the user's binaries laid over the images
	LibvirtURI    string
	LibvirtSocket string
	RebootMode    string
	Keep          string // KeepNever, KeepOnFailure, KeepAlways
	// Bisect judges lo, not the expectation: a mismatch is then an
	// answer, not a failure worth keeping a node for.
	Bisect   bool
	Progress func(string)
	// Announce is called once, as the first node is about to start.
	Announce func()
	// OnArtifacts, if set, is told each dir where a failed run kept a
	// node's artifacts (for the report). Called from the nodes'
	// goroutines: it must be safe for concurrent use.
	OnArtifacts func(dir string)
}

func (r *Run) progress(s string) {
	if r.Progress != nil {
		r.Progress(s)
	}
}

func (r *Run) announce() {
	if r.Announce != nil {
		r.Announce()
	}
}

// Sandbox plays the run on sandbox nodes, one per scenario, all at once:
// a node's scenarios run one after another (they share its lo and its
// reboot), but nodes share nothing, so the matrix takes about as long as
// its slowest scenario rather than the sum.
func Sandbox(ctx context.Context, r Run) ([]runner.Result, error) {
	r.announce()
	var pl []runner.Plugins
	for _, s := range r.Plugins {
		pl = append(pl, runner.Plugins{Dir: s.Dir, Version: s.Version})
	}
	perScenario := make([][]runner.Result, len(r.Scenarios))
	errs := make([]error, len(r.Scenarios))
	var wg sync.WaitGroup
	for i, sc := range r.Scenarios {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("sb%d", i)
			node, err := sandbox.Start(ctx, sandbox.Options{
				Name:      "pidreuse-" + r.ID + "-" + name,
				Dir:       filepath.Join(r.Dir, name),
				AgentPath: r.AgentPath,
				Keep:      r.Keep == KeepAlways,
			})
			if err != nil {
				errs[i] = err
				return
			}
			perScenario[i] = runner.RunMatrix(ctx, node, []scenarios.Scenario{sc}, pl, runner.Options{Tier: r.Tier})
			errs[i] = r.finishNode(ctx, node, filepath.Join(r.Dir, "artifacts", name), perScenario[i], node.Keep)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Every node says it was interrupted: once is enough.
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return PluginMajor(perScenario, len(pl)), nil
}

// PluginMajor merges one node's results per scenario (each in plugin
// order) into RunMatrix's order: every scenario for the first plugin set,
// then every scenario for the next.
func PluginMajor(perScenario [][]runner.Result, plugins int) []runner.Result {
	var results []runner.Result
	for p := range plugins {
		for _, rs := range perScenario {
			results = append(results, rs[p])
		}
	}
	return results
}

// VM plays the run on VM nodes: the legacy runtime's scenarios on one VM
// of the plain image, sharing its boot and reboot; the scenarios that
// need CRI-O and kubelet on the profile's image, one VM per pinning
// setting.
func VM(ctx context.Context, r Run) ([]runner.Result, error) {
	var plain, kube []scenarios.Scenario
	for _, sc := range r.Scenarios {
		if sc.NeedsCRIONode() {
			kube = append(kube, sc)
		} else {
			plain = append(plain, sc)
		}
	}
	var results []runner.Result
	if len(plain) > 0 {
		res, err := r.legacyVM(ctx, plain)
		results = append(results, res...)
		if err != nil {
			return results, err
		}
	}
	if len(kube) > 0 {
		res, err := r.kubeVMs(ctx, kube)
		results = append(results, res...)
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// legacyVM plays scs, the legacy runtime's scenarios, with every plugin
// set on one VM of the plain node image.
func (r *Run) legacyVM(ctx context.Context, scs []scenarios.Scenario) ([]runner.Result, error) {
	r.announce()
	img, err := images.BuildNode(ctx, filepath.Dir(r.AgentPath), nil, r.Progress)
	if err != nil {
		return nil, err
	}
	opts := r.vmOptions("vm0", filepath.Join(r.Dir, "vm0"), img, layer.Layer{CNIDir: r.Layer.CNIDir})
	opts.FailureConsole = filepath.Join(r.Dir, "artifacts", "console.log")
	node, err := vm.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	var sets []runner.Plugins
	for _, s := range r.Plugins {
		sets = append(sets, runner.Plugins{Dir: s.Guest(), Version: s.Version})
	}
	results := runner.RunMatrix(ctx, node, scs, sets, runner.Options{
		Tier: r.Tier, OnStep: func(sc, step string) { r.progress(sc + ": " + step) },
	})
	return results, r.finishNode(ctx, node, filepath.Join(r.Dir, "artifacts"), results, node.KeepRunning)
}

// Group is the CRI-O scenarios that can share one VM: those that set
// CRI-O's namespace pinning the same way (it must be in place before the
// first pod starts, so each setting gets its own boot).
type Group struct {
	Pinning   scenarios.Pinning
	Scenarios []scenarios.Scenario
}

// GroupByPinning groups scs by pinning setting, in order of first use.
func GroupByPinning(scs []scenarios.Scenario) []Group {
	var groups []Group
	index := map[scenarios.Pinning]int{}
	for _, sc := range scs {
		p := sc.Pinning
		if p == "" {
			p = scenarios.PinningDefault // legacy-symptom: CRI-O as configured
		}
		i, ok := index[p]
		if !ok {
			i = len(groups)
			index[p] = i
			groups = append(groups, Group{Pinning: p})
		}
		groups[i].Scenarios = append(groups[i].Scenarios, sc)
	}
	return groups
}

// PinningLayer is the file that forces pinning p on profile's CRI-O (none
// for the default), laid over its image: it must be in place before the
// first pod.
func PinningLayer(profile crionode.Profile, p scenarios.Pinning) ([]layer.File, error) {
	if p == scenarios.PinningDefault || p == "" {
		return nil, nil
	}
	path, data, err := profile.PinningFile(p == scenarios.PinningOn)
	if err != nil {
		return nil, err
	}
	return []layer.File{{Path: path, Data: data, Mode: 0o644}}, nil
}

// KubeNode is what kubescenario needs to know of a profile.
func KubeNode(p crionode.Profile) kubescenario.Node {
	return kubescenario.Node{
		Profile: p.Name, Pods: p.Pods(), SparePod: p.SparePod(),
		Runtime: string(p.Runtime), RuntimeUnits: p.RuntimeUnits(), GatePlugin: p.GatePlugin(),
		ProcNetns: p.Runtime == crionode.RuntimeDocker, ProcJoin: p.Runtime == crionode.RuntimeContainerd,
	}
}

// kubeVMs boots the CRI-O/kubelet node of the run's profile, with the
// run's own binaries laid over it, and plays scs one after the other
// (each reboots the node); one VM per pinning setting.
func (r *Run) kubeVMs(ctx context.Context, scs []scenarios.Scenario) ([]runner.Result, error) {
	groups := GroupByPinning(scs)
	// A forced setting the profile cannot make is bad input: refuse it
	// before any image is built.
	files := make([][]layer.File, len(groups))
	for i, g := range groups {
		var err error
		if files[i], err = PinningLayer(r.Profile, g.Pinning); err != nil {
			return nil, fmt.Errorf("%s: %w", g.Scenarios[0].Name, err)
		}
	}
	r.announce()
	img, err := crionode.BuildImage(ctx, r.Profile, filepath.Dir(r.AgentPath), r.Progress)
	if err != nil {
		return nil, err
	}
	var results []runner.Result
	index := 0
	for gi, g := range groups {
		gl := r.Layer
		gl.Files = append(append([]layer.File{}, r.Layer.Files...), files[gi]...)
		name := fmt.Sprintf("crio%d", gi)
		opts := r.vmOptions(name, filepath.Join(r.Dir, "crio", name), img, gl)
		opts.Artifacts = r.Profile.Artifacts()
		opts.FailureConsole = filepath.Join(r.Dir, "crio", "artifacts", name, "console.log")
		node, err := vm.Start(ctx, opts)
		if err != nil {
			return results, err
		}
		var groupResults []runner.Result
		for _, sc := range g.Scenarios {
			// The node's runtime uses its own plugin dir: one run. The
			// legacy runtime runs once per plugin set.
			runs := r.Plugins
			if sc.DeleteBy != scenarios.LegacyEmulator {
				runs = r.Plugins[:1]
			}
			for _, s := range runs {
				opts := kubescenario.Options{
					Plugins: runner.Plugins{Dir: s.Guest(), Version: s.Version}, Index: index,
					Node:   KubeNode(r.Profile),
					OnStep: func(sc, step string) { r.progress(sc + ": " + step) }, Progress: r.Progress,
				}
				if len(groupResults) == 0 {
					opts.Started, opts.SSHUp = node.Timing.Started, node.Timing.SSHUp
				}
				res := kubescenario.Run(ctx, node, sc, opts)
				groupResults = append(groupResults, res)
				index++
				if ctx.Err() != nil {
					break
				}
			}
			if ctx.Err() != nil {
				break
			}
		}
		teardown := time.Now()
		err = r.finishNode(ctx, node, filepath.Join(r.Dir, "crio", "artifacts", name), groupResults, node.KeepRunning)
		if len(groupResults) > 0 {
			groupResults[len(groupResults)-1].Teardown(node.Name(), teardown, time.Now())
		}
		results = append(results, groupResults...)
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

func (r *Run) vmOptions(name, dir string, img *images.Image, l layer.Layer) vm.Options {
	return vm.Options{
		Name: "pidreuse-" + r.ID + "-" + name, Dir: dir, Image: img, URI: r.LibvirtURI, Socket: r.LibvirtSocket,
		RebootMode: r.RebootMode, Keep: r.Keep == KeepAlways, MayKeep: r.Keep != KeepNever, Progress: r.Progress, Layer: l,
	}
}

// finishNode ends a run's node: it collects the artifacts of a run worth
// keeping into art (and keeps the node itself with KeepOnFailure), and
// closes the node (which removes its own dir unless kept, so art must lie
// outside it); the run's work dir goes at the end of the run, when nothing
// in it is kept. An interrupted run (SIGINT, SIGTERM) keeps nothing unless
// KeepAlways.
func (r *Run) finishNode(ctx context.Context, node harness.Node, art string, results []runner.Result, keep func()) error {
	interrupted := ctx.Err() != nil
	kept := r.Keep == KeepAlways
	// Teardown runs after a Ctrl-C too (ctx is done then), with deadlines
	// of its own: a node that stopped answering must not hold the run.
	teardown := context.WithoutCancel(ctx)
	if !interrupted && r.WorthKeeping(results) {
		err := deadline.Run(teardown, "collecting the artifacts of "+node.Name(), deadline.Teardown, func(ctx context.Context) error {
			return node.CollectArtifacts(ctx, art)
		})
		if err != nil {
			r.progress("collect artifacts: " + err.Error())
		}
		r.progress("artifacts of the failed run: " + art)
		if r.OnArtifacts != nil {
			r.OnArtifacts(art)
		}
		if r.Keep == KeepOnFailure {
			keep()
			kept = true
		}
	}
	err := deadline.Run(teardown, "tearing down "+node.Name(), deadline.Teardown, func(ctx context.Context) error {
		return node.Close(ctx)
	})
	if err != nil {
		r.progress(err.Error())
	}
	// A kept VM prints its ssh line itself; a sandbox node's processes die
	// with the run, its dir stays: say where.
	if d, ok := node.(interface{ Dir() string }); ok && kept {
		r.progress(fmt.Sprintf("kept node %s: its dir %s (console.log, state/); remove it with pidreuse clean --run %s", node.Name(), d.Dir(), r.ID))
	}
	if interrupted {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return nil
}

// WorthKeeping says whether a run's node and artifacts are worth keeping:
// a run without a verdict always is (a broken timeline is none either); a
// mismatch is, except in bisect mode, where "lo went down" is an answer,
// not a failure of the harness.
func (r *Run) WorthKeeping(results []runner.Result) bool {
	for _, res := range results {
		if res.Error != "" || (!r.Bisect && !res.Pass) || len(res.TimelineBroken()) > 0 {
			return true
		}
	}
	return false
}
