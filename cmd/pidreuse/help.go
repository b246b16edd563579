package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// command is one subcommand as help shows it.
type command struct {
	name     string
	summary  string
	usage    []string
	examples []string
}

// commands lists the subcommands in the order help shows them.
var commands = []command{
	{"run", "play scenarios on a throw-away node and judge host lo and every check",
		[]string{"pidreuse run [--tier sandbox|vm] [--scenario NAME[,NAME…]|all] [--plugin-version V[,V…]|all | --cni-bin-dir DIR] [flags]"},
		[]string{"pidreuse run --tier sandbox", "pidreuse run --tier vm --node crio-1.17 --scenario crio-kubelet-reboot --json"}},
	{"bisect", "one `git bisect run` step: 0 host lo survived, 1 it went down, 125 no verdict",
		[]string{"pidreuse bisect --scenario NAME (--cni-bin-dir DIR | --crio BIN [--pinns BIN] | --kubelet BIN) [--tier sandbox|vm] [flags]"},
		[]string{"git bisect run sh -c 'go build -o /tmp/cni/loopback ./plugins/main/loopback || exit 125; pidreuse bisect --scenario ephemeral-reused --cni-bin-dir /tmp/cni'"}},
	{"odds", "measure how often real reboots reuse a pod's PID by themselves (no forced reuse)",
		[]string{"pidreuse odds --reboots N [--node crio-1.17|crio-1.34] [--pid-max P] [--pods K] [--json] [flags]"},
		[]string{"pidreuse odds --node crio-1.17 --reboots 20 --pid-max 1024"}},
	{"nodes", "list the CRI-O node profiles and what decides the bug on each",
		[]string{"pidreuse nodes"}, nil},
	{"image", "build (or find cached) a node image, or print its input hash",
		[]string{"pidreuse image build [--node NAME] [--agent PATH]", "pidreuse image hash [--node NAME] [--agent PATH]"},
		[]string{"pidreuse image build --node crio-1.34"}},
	{"build", "build crio (and pinns) from any CRI-O tree the way the image does",
		[]string{"pidreuse build crio --src DIR --out DIR"},
		[]string{"pidreuse build crio --src . --out /tmp/c"}},
	{"plugins", "build (or find cached) the pinned CNI plugin versions",
		[]string{"pidreuse plugins [--plugin-version V[,V…]|all]"}, nil},
	{"clean", "remove what crashed runs left (domains, disks, dirs), never a live run's",
		[]string{"pidreuse clean [--dry-run] [--older-than D] [--run ID] [--images-unused-for D] [--libvirt-uri URI]"},
		[]string{"pidreuse clean --dry-run", "pidreuse clean --run 1207-031522-a1b2c3"}},
}

// exitCodes is the one table of exit codes, for every command.
const exitCodes = `Exit codes:
  0    run: every scenario matched its expectation; bisect: host lo survived; others: done
  1    run: a mismatch (the failed checks are named); bisect: host lo went down
  2    usage: bad flags or values (bisect says 125 instead: git bisect run reads 2 as bad)
  125  no verdict: a missing source or binary, not root, no libvirtd, a node that did
       not boot, a step that timed out, a timeline that did not happen as scripted
`

// printHelp writes the overview: every command with one line, examples,
// the exit codes.
func printHelp(w io.Writer) {
	fmt.Fprintln(w, "pidreuse reproduces the CNI-DEL-after-reboot loopback bug on a throw-away node")
	fmt.Fprintln(w, "and says whether the host's lo survived.")
	fmt.Fprintln(w, "\nUsage: pidreuse COMMAND [flags]   (pidreuse help COMMAND, or COMMAND -h, for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nExamples:")
	for _, c := range commands {
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, exitCodes)
	fmt.Fprintln(w, "\nMore: README.md and docs/ in the source tree.")
}

// lookupCommand finds a command by name.
func lookupCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// commandNames lists the commands, for an error that names them.
func commandNames() string {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

// newFlagSet is a command's flag set whose -h prints, on stdout, its
// usage lines, its flags and its examples.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fs.SetOutput(os.Stdout)
		defer fs.SetOutput(os.Stderr)
		printCommandHelp(os.Stdout, name, fs)
	}
	return fs
}

// printCommandHelp writes one command's usage, flags and examples.
func printCommandHelp(w io.Writer, name string, fs *flag.FlagSet) {
	c, ok := lookupCommand(strings.Fields(name)[0])
	if ok {
		fmt.Fprintf(w, "%s\n\nUsage:\n", c.summary)
		for _, u := range c.usage {
			fmt.Fprintf(w, "  %s\n", u)
		}
	} else {
		fmt.Fprintf(w, "Usage: pidreuse %s [flags]\n", name)
	}
	if fs != nil {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if ok && len(c.examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}
