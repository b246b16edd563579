package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/pidreuse/pidreuse/images/crionode"
)

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
	fmt.Fprintln(tw, "NODE\tRUNTIME\tPINNS\tKUBELET\tCGROUP\tCRI\tPINNING SWITCH\tDEL PATH (DEFAULT CONFIG)")
	for _, p := range crionode.Profiles() {
		cg := "v2 (systemd)"
		if p.CgroupV1 {
			cg = "v1 (cgroupfs)"
		}
		name := p.Name
		if name == crionode.DefaultProfile {
			name += " (default)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, runtimeName(p), orDash(p.Pinns.Version), p.Kubelet.Version, cg, p.CRIAPI, orDash(p.PinSwitch), p.DelPath)
	}
	return exitGood, tw.Flush()
}

// runtimeName says what runs the pods: CRI-O, or Debian's Docker behind
// cri-dockerd, with the versions built here.
func runtimeName(p crionode.Profile) string {
	switch p.Runtime {
	case crionode.RuntimeDocker:
		return "cri-dockerd " + p.CRIDockerd.Version + " + Debian docker.io"
	case crionode.RuntimeContainerd:
		return "Debian containerd"
	}
	return "cri-o " + p.CRIO.Version
}
