package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/pidreuse/pidreuse/harness/kubescenario"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/images/layer"
	"github.com/pidreuse/pidreuse/scenarios"
)

// kubeGroup is the CRI-O scenarios that can share one VM: those that set
// CRI-O's namespace pinning the same way (it must be in place before the
// first pod starts, so each setting gets its own boot).
type kubeGroup struct {
	pinning scenarios.Pinning
	scs     []scenarios.Scenario
}

func groupByPinning(scs []scenarios.Scenario) []kubeGroup {
	var groups []kubeGroup
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
			groups = append(groups, kubeGroup{pinning: p})
		}
		groups[i].scs = append(groups[i].scs, sc)
	}
	return groups
}

// runKubeScenarios boots the CRI-O/kubelet node of the run's profile, with
// the run's own binaries laid over it, and plays the scenarios that need
// it one after the other (each reboots the node); one VM per pinning
// setting.
func runKubeScenarios(ctx context.Context, c runConfig, agentPath string, scs []scenarios.Scenario, sets []pluginSet, lay layer.Layer, workDir string, announce func(), progress func(string)) ([]runner.Result, error) {
	profile, err := crionode.Lookup(c.node)
	if err != nil {
		return nil, err
	}
	groups := groupByPinning(scs)
	// A forced setting the profile cannot make is bad input: refuse it
	// before any image is built.
	for _, g := range groups {
		if g.pinning != scenarios.PinningDefault {
			if _, _, err := profile.PinningFile(g.pinning == scenarios.PinningOn); err != nil {
				return nil, fmt.Errorf("%s: %w", g.scs[0].Name, err)
			}
		}
	}
	announce()
	img, err := crionode.BuildImage(ctx, profile, filepath.Dir(agentPath), progress)
	if err != nil {
		return nil, err
	}
	var results []runner.Result
	index := 0
	for gi, g := range groups {
		gl := lay
		if g.pinning != scenarios.PinningDefault {
			path, data, _ := profile.PinningFile(g.pinning == scenarios.PinningOn)
			gl.Files = append(append([]layer.File{}, lay.Files...), layer.File{Path: path, Data: data, Mode: 0o644})
		}
		name := fmt.Sprintf("crio%d", gi)
		node, err := vm.Start(ctx, vm.Options{
			Name: "pidreuse-" + c.runID + "-" + name, Dir: filepath.Join(workDir, name), Image: img, URI: c.libvirtURI, Socket: c.libvirtSocket,
			RebootMode: c.rebootMode, Keep: c.keep == "always", MayKeep: c.keep != "never", Progress: progress, Layer: gl,
			Artifacts: crionode.Artifacts,
		})
		if err != nil {
			return results, err
		}
		var groupResults []runner.Result
		for _, sc := range g.scs {
			// CRI-O uses its own plugin_dirs: one run. The legacy runtime
			// runs once per plugin set.
			runs := sets
			if sc.DeleteBy == scenarios.CRIO {
				runs = sets[:1]
			}
			for _, s := range runs {
				res := kubescenario.Run(ctx, node, sc, kubescenario.Options{
					Plugins: runner.Plugins{Dir: s.guest(), Version: s.version}, Index: index,
					Node:   kubeNode(profile),
					OnStep: func(sc, step string) { progress(sc + ": " + step) }, Progress: progress,
				})
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
		results = append(results, groupResults...)
		if err := finishNode(ctx, c, node, filepath.Join(workDir, "artifacts", name), groupResults, node.KeepRunning, progress); err != nil {
			return results, err
		}
	}
	return results, nil
}

// kubeNode is what kubescenario needs to know of the node's profile.
func kubeNode(p crionode.Profile) kubescenario.Node {
	return kubescenario.Node{Profile: p.Name, Pods: p.Pods(), SparePod: p.SparePod()}
}

// cmdNodes lists the node profiles.
func cmdNodes(_ context.Context, args []string) (int, error) {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		printCommandHelp(os.Stdout, "nodes", nil)
		return exitGood, nil
	}
	if len(args) > 0 {
		return exitUsage, usageErr{"usage: pidreuse nodes"}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCRI-O\tPINNS\tKUBELET\tCGROUP\tCRI\tPINNING SWITCH\tDEL PATH AFTER A REBOOT (DEFAULT CONFIG)")
	for _, p := range crionode.Profiles() {
		cg := "v2 (systemd)"
		if p.CgroupV1 {
			cg = "v1 (cgroupfs)"
		}
		name := p.Name
		if name == crionode.DefaultProfile {
			name += " (default)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, p.CRIO.Version, orDash(p.Pinns.Version), p.Kubelet.Version, cg, p.CRIAPI, orDash(p.PinSwitch), p.DelPath)
	}
	return exitGood, tw.Flush()
}
