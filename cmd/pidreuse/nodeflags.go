package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/harness/tier"
	"github.com/pidreuse/pidreuse/harness/vm"
)

// nodeFlags are the flags of every command that starts nodes (run,
// bisect, odds), registered and checked in one place so each means the
// same everywhere; each takes its default from its environment variable.
type nodeFlags struct {
	libvirtURI    string
	libvirtSocket string
	rebootMode    string
	reportDir     string
	keep          string
	workDir       string
	agentPath     string
	timeout       timeoutScaleFlag
	timeoutScale  float64
	set           map[string]bool // flags given on the command line
}

func (n *nodeFlags) register(fs *flag.FlagSet, report string) {
	fs.StringVar(&n.libvirtURI, "libvirt-uri", envOr("PIDREUSE_LIBVIRT_URI", libvirt.LocalURI), "libvirt host `URI`: qemu:///system, qemu+ssh://user@host[:port]/system[?keyfile=K&known_hosts=F] or qemu+tcp://127.0.0.1/system")
	fs.StringVar(&n.libvirtSocket, "libvirt-socket", envOr("PIDREUSE_LIBVIRT_SOCKET", libvirt.DefaultSocket), "libvirtd's socket `PATH`, for a local --libvirt-uri")
	fs.StringVar(&n.rebootMode, "reboot", vm.RebootDestroyStart, "vm reboot `MODE`: "+vm.RebootDestroyStart+" (guest reboot, domain restarted) or "+vm.RebootReset+" (in place)")
	fs.StringVar(&n.reportDir, "report-dir", envOr("PIDREUSE_REPORT_DIR", "reports"), "write the report ("+report+") under `DIR`/<run id>")
	fs.StringVar(&n.keep, "keep", envOr("PIDREUSE_KEEP", tier.KeepNever), "keep nodes for a look inside, `WHEN`: never, on-failure or always (a kept VM prints its ssh line)")
	fs.StringVar(&n.workDir, "work-dir", "", "`DIR` where nodes keep their files (default: a new dir under $TMPDIR, removed at the end)")
	fs.StringVar(&n.agentPath, "agent", "", "nodeagent binary `PATH`, the other node-side binaries next to it (default: next to this binary, or $PIDREUSE_NODEAGENT)")
	n.timeout.register(fs)
}

// check validates the values after fs.Parse; a value taken from the
// environment is named by its variable.
func (n *nodeFlags) check(fs *flag.FlagSet) error {
	n.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { n.set[f.Name] = true })
	var err error
	if n.timeoutScale, err = n.timeout.scale(); err != nil {
		return err
	}
	switch n.keep {
	case tier.KeepNever, tier.KeepOnFailure, tier.KeepAlways:
	default:
		return usageErr{fmt.Sprintf("%s %q: use never, on-failure or always", n.source("keep", "PIDREUSE_KEEP"), n.keep)}
	}
	switch n.rebootMode {
	case vm.RebootDestroyStart, vm.RebootReset:
	default:
		return usageErr{fmt.Sprintf("--reboot %q: use %s or %s", n.rebootMode, vm.RebootDestroyStart, vm.RebootReset)}
	}
	if _, err := libvirt.ParseURI(n.libvirtURI); err != nil {
		return usageErr{fmt.Sprintf("%s: %v", n.source("libvirt-uri", "PIDREUSE_LIBVIRT_URI"), err)}
	}
	if n.agentPath == "" && os.Getenv("PIDREUSE_NODEAGENT") != "" {
		if err := checkAgentFile("PIDREUSE_NODEAGENT", os.Getenv("PIDREUSE_NODEAGENT")); err != nil {
			return usageErr{err.Error()}
		}
	}
	return nil
}

// source names where a value came from: the flag, or its variable.
func (n *nodeFlags) source(flagName, env string) string {
	if !n.set[flagName] && os.Getenv(env) != "" {
		return env
	}
	return "--" + flagName
}

// timeoutScaleFlag is --timeout-scale, shared by the commands that run
// nodes: it multiplies every step's deadline (harness/deadline).
type timeoutScaleFlag struct{ value string }

func (t *timeoutScaleFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&t.value, "timeout-scale", "", "multiply every step's deadline by `X` (agent calls, plugin runs, boots, pod waits), e.g. 3 on a slow or busy host (default 1, or $"+deadline.ScaleEnv+")")
}

// scale is the flag's value, else the variable's, else 1; a bad value is
// a usage error naming where it came from.
func (t *timeoutScaleFlag) scale() (float64, error) {
	if t.value == "" {
		s, err := deadline.ScaleFromEnv()
		if err != nil {
			return 0, usageErr{err.Error()}
		}
		return s, nil
	}
	s, err := deadline.ParseScale(t.value)
	if err != nil {
		return 0, usageErr{fmt.Sprintf("--timeout-scale: %v", err)}
	}
	return s, nil
}
