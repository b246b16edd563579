package crionode

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/pidreuse/pidreuse/images/components"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/scenarios"
)

// Runtime is the CRI runtime a node profile runs under kubelet.
type Runtime string

const (
	// RuntimeCRIO is CRI-O built from source, with Debian's conmon and runc.
	RuntimeCRIO Runtime = "cri-o"
	// RuntimeDocker is Debian's Docker (docker.io) behind cri-dockerd
	// built from source: kubelet's dockershim moved out of tree.
	RuntimeDocker Runtime = "docker"
	// RuntimeContainerd is Debian's containerd with its CRI plugin.
	RuntimeContainerd Runtime = "containerd"
)

// Profile is what a Kubernetes node carries: the runtime and its version,
// the kubelet, the cgroup mode, and how the runtime references a sandbox's
// netns — which decides whether the write-up's bug can happen on it.
type Profile struct {
	Name string
	// Runtime is the CRI runtime: CRI-O, or Docker through cri-dockerd.
	Runtime Runtime
	// CRIDockerd is built from source on the Docker profiles.
	CRIDockerd components.Component
	// CRIO, Pinns, Kubelet and Crictl are built from source (Pinns and
	// Crictl have an empty Version when the profile has none).
	CRIO, Pinns, Kubelet, Crictl components.Component
	// CgroupV1 boots the guest with the legacy cgroup hierarchy
	// (kubelet < 1.19 cannot run on cgroup v2), and both CRI-O and
	// kubelet use the cgroupfs driver.
	CgroupV1 bool
	// CRIAPI is the CRI version kubelet and the runtime speak.
	CRIAPI string
	// PinSwitch is CRI-O's setting that turns namespace pinning on or off;
	// empty when this CRI-O has none (it always pins).
	PinSwitch string
	// DropInDir says CRI-O reads /etc/crio/crio.conf.d (1.17 and later);
	// CRI-O 1.16 reads only /etc/crio/crio.conf.
	DropInDir bool
	// DelPath says, in words, what netns path the runtime hands CNI DEL of
	// an old sandbox after a reboot with its default configuration.
	DelPath string
	// PIDFloor, when set, makes the guest hand out PIDs from there on
	// before CRI-O starts: the pods of the first boot get PIDs far above
	// what a fresh boot reaches, so after the reboot only the PIDs the
	// scenario takes on purpose are taken (one ordinary pod, SparePod, is
	// left alone to show the runtime's DEL on a missing path).
	PIDFloor int
	// Loopback, when set, is the CNI plugins version whose loopback
	// replaces Debian's in CRI-O's plugin dir: the bug's era ran v0.8.x,
	// whose DEL on a missing netns path fails with the write-up's `failed
	// to Statfs "<path>": no such file or directory` (Debian's 1.1.1
	// ignores it).
	Loopback string
}

// Profile names.
const (
	CRIO134 = "crio-1.34"
	CRIO117 = "crio-1.17"
	CRIO116 = "crio-1.16"
	// CRIDockerd is kubelet 1.34 on Debian's Docker 20.10 through
	// cri-dockerd: the stop race lives there today.
	CRIDockerd = "cri-dockerd"
	// Containerd is kubelet 1.34 on Debian's containerd 1.6.20: the
	// namespace join of containerd#5630 lives there (and, the same code,
	// in containerd 2.x).
	Containerd = "containerd"
	// DefaultProfile is today's CRI-O.
	DefaultProfile = CRIO134
)

// legacyPIDFloor is far above the ~600 PIDs a TCG guest has handed out
// when CRI-O starts, and under the default pid_max of 32768 (QEMU's guest
// has 2 vCPUs: pid_max is 32768).
const legacyPIDFloor = 20000

// legacyLoopback is the CNI plugins release of the bug's era in the
// matrix (images/versions.CNIPlugins).
const legacyLoopback = "v0.8.7"

// Profiles lists the node profiles, default first.
func Profiles() []Profile {
	return []Profile{
		{
			Name: CRIO134, Runtime: RuntimeCRIO,
			CRIO:    components.Component{Name: components.CRIO, Version: versions.CRIO},
			Pinns:   components.Component{Name: components.Pinns, Version: versions.CRIO},
			Kubelet: components.Component{Name: components.Kubelet, Version: versions.Kubelet},
			Crictl:  components.Component{Name: components.Crictl, Version: versions.Crictl},
			CRIAPI:  "v1", DropInDir: true,
			DelPath: "/var/run/netns/<uuid>, always pinned: gone after a reboot, DEL runs with an empty netns",
		},
		{
			Name: CRIO117, Runtime: RuntimeCRIO,
			CRIO:     components.Component{Name: components.CRIO, Version: versions.CRIO117},
			Pinns:    components.Component{Name: components.Pinns, Version: versions.CRIO117},
			Kubelet:  components.Component{Name: components.Kubelet, Version: versions.KubeletLegacy},
			CgroupV1: true, CRIAPI: "v1alpha2", PinSwitch: "manage_ns_lifecycle", DropInDir: true,
			DelPath:  "/proc/<old infra pid>/ns/net (manage_ns_lifecycle=false, the default); with true a pin under /var/run/netns, gone after a reboot",
			PIDFloor: legacyPIDFloor, Loopback: legacyLoopback,
		},
		{
			Name: CRIO116, Runtime: RuntimeCRIO,
			CRIO:     components.Component{Name: components.CRIO, Version: versions.CRIO116},
			Kubelet:  components.Component{Name: components.Kubelet, Version: versions.KubeletLegacy},
			CgroupV1: true, CRIAPI: "v1alpha2", PinSwitch: "manage_network_ns_lifecycle",
			DelPath:  "/proc/<old infra pid>/ns/net, unchecked: `failed to Statfs` when the PID is gone (manage_network_ns_lifecycle=false, the default)",
			PIDFloor: legacyPIDFloor, Loopback: legacyLoopback,
		},
		{
			Name: CRIDockerd, Runtime: RuntimeDocker,
			CRIDockerd: components.Component{Name: components.CRIDockerd, Version: versions.CRIDockerd},
			Kubelet:    components.Component{Name: components.Kubelet, Version: versions.Kubelet},
			Crictl:     components.Component{Name: components.Crictl, Version: versions.Crictl},
			CRIAPI:     "v1",
			// Read in cri-dockerd v0.4.3: StopPodSandbox (core/sandbox_stop.go)
			// calls TearDownPod (network/cni/cni.go), which asks GetNetNS
			// (core/sandbox_port_forward.go) → docker inspect →
			// getNetworkNamespace (core/helpers_linux.go) for
			// /proc/<State.Pid>/ns/net and runs its built-in loopback
			// network's DEL on it first, then the pod network's.
			DelPath: "/proc/<pause pid>/ns/net from docker inspect at StopPodSandbox, never pinned; Docker says Pid 0 for an exited container, so after a reboot DEL gets no path",
		},
		{
			Name: Containerd, Runtime: RuntimeContainerd,
			Kubelet: components.Component{Name: components.Kubelet, Version: versions.Kubelet},
			Crictl:  components.Component{Name: components.Crictl, Version: versions.Crictl},
			CRIAPI:  "v1",
			// Read in containerd 1.6.20 (pkg/cri/server/sandbox_stop.go) and
			// v2.2.9 (internal/cri/server/sandbox_stop.go): teardownPodNetwork
			// hands DEL sandbox.NetNSPath, the pin, emptied when the pin is
			// gone. Containers join the sandbox by /proc/<sandbox pid>/ns/*
			// (WithPodNamespaces in pkg/cri/opts/spec_linux.go, 1.6.20;
			// internal/cri/opts/spec_opts.go, v2.2.9): the join-race.
			DelPath: "/var/run/netns/cni-<uuid>, always pinned: gone after a reboot, DEL runs with an empty netns; containers join the sandbox by /proc/<sandbox pid>/ns/{net,ipc,uts}",
		},
	}
}

// Lookup finds a profile by name.
func Lookup(name string) (Profile, error) {
	var names []string
	for _, p := range Profiles() {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return Profile{}, fmt.Errorf("unknown node %q: choose one of %s (pidreuse nodes lists them)", name, strings.Join(names, ", "))
}

// Legacy says whether the profile is of the bug's era: its kubelet takes
// the runtime endpoint as a flag and its CRI-O a full crio.conf.
func (p Profile) Legacy() bool { return p.CgroupV1 }

// IsCRIO says whether the node runs CRI-O.
func (p Profile) IsCRIO() bool { return p.Runtime == RuntimeCRIO }

// CRISocket is the runtime's CRI endpoint, as kubelet and crictl name it.
func (p Profile) CRISocket() string {
	switch p.Runtime {
	case RuntimeDocker:
		return crioguest.CRIDockerdSocket
	case RuntimeContainerd:
		return crioguest.ContainerdSocket
	}
	return crioguest.CRISocket
}

// RuntimeUnits are the node's runtime services, the one kubelet talks to
// last: the harness times readiness and blames failures by them.
func (p Profile) RuntimeUnits() []string {
	switch p.Runtime {
	case RuntimeDocker:
		return []string{crioguest.DockerUnit, crioguest.CRIDockerdUnit}
	case RuntimeContainerd:
		return []string{crioguest.ContainerdUnit}
	}
	return []string{crioguest.CRIOUnit}
}

// GatePlugin is the plugin the runtime runs first at a sandbox's CNI DEL,
// which the stop-race scenario holds at its start: cri-dockerd runs its
// built-in loopback network's DEL before the pod network's, and
// containerd's go-cni lists its loopback network first too; CRI-O 1.34
// brings lo up itself (ocicni) and runs the pod network list reversed,
// portmap first; the bug-era CRI-O lists loopback last, so first at DEL.
func (p Profile) GatePlugin() string {
	if p.Runtime == RuntimeCRIO && !p.Legacy() {
		return "portmap"
	}
	return "loopback"
}

// Components lists what the profile builds from source, in install order.
func (p Profile) Components() []components.Component {
	var cs []components.Component
	for _, c := range []components.Component{p.Kubelet, p.CRIO, p.Pinns, p.CRIDockerd, p.Crictl} {
		if c.Version != "" {
			cs = append(cs, c)
		}
	}
	return cs
}

// CheckSources says whether the source trees of p's components built from
// a pinned CRI-O release are at hand, before anything is built or booted:
// nil, a *components.NoSourceError (skip the node, say why) or another
// error (a source that is there but cannot be used).
func (p Profile) CheckSources(ctx context.Context) error {
	if err := components.CheckSources(ctx, p.Components()); err != nil {
		return fmt.Errorf("node %s: %w", p.Name, err)
	}
	return nil
}

// KernelArgs are what the profile adds to the guest's kernel command line.
func (p Profile) KernelArgs() []string {
	if p.CgroupV1 {
		// Honoured by Debian 12's systemd 252.
		return []string{"systemd.unified_cgroup_hierarchy=0"}
	}
	return nil
}

// PinningDropIn is where a run's forced pinning setting goes on a CRI-O
// that reads drop-ins.
const PinningDropIn = "/etc/crio/crio.conf.d/90-pidreuse-pinning.conf"

// PinningFile returns the file (guest path and content) that forces CRI-O's
// namespace pinning on or off on this profile: a drop-in where CRI-O reads
// them, else the whole crio.conf with the switch set. An error when the
// profile's CRI-O has no such switch.
func (p Profile) PinningFile(on bool) (string, []byte, error) {
	switch {
	case !p.IsCRIO():
		return "", nil, fmt.Errorf("node %s runs %s, which has no namespace pinning switch: force pinning on a CRI-O node that has one (%s)", p.Name, p.Runtime, strings.Join(profilesWithSwitch(), ", "))
	case p.PinSwitch == "":
		return "", nil, fmt.Errorf("node %s: CRI-O %s has no namespace pinning switch (it always pins): force pinning on a node whose CRI-O has one (%s)", p.Name, p.CRIO.Version, strings.Join(profilesWithSwitch(), ", "))
	case p.DropInDir:
		return PinningDropIn, []byte(fmt.Sprintf("# Written by pidreuse for this run only.\n[crio.runtime]\n%s = %v\n", p.PinSwitch, on)), nil
	}
	data, err := p.ConfigFile("/etc/crio/crio.conf", on)
	return "/etc/crio/crio.conf", data, err
}

func profilesWithSwitch() []string {
	var names []string
	for _, p := range Profiles() {
		if p.PinSwitch != "" {
			names = append(names, p.Name)
		}
	}
	return names
}

// Pods are the static pods' container names on the profile's node.
func (p Profile) Pods() []string {
	pods := []string{crioguest.WebPod, crioguest.SDNPod}
	if s := p.SparePod(); s != "" {
		pods = append(pods, s)
	}
	return pods
}

// SparePod is the ordinary pod whose old PIDs no host process takes after
// the reboot, or "" when the profile has none.
func (p Profile) SparePod() string {
	if p.PIDFloor > 0 {
		return crioguest.SparePod
	}
	return ""
}

// Refuses says why the profile's node cannot play sc ("" when it can):
// the CRI-O scenarios read CRI-O's configuration and journal; join-race
// needs a runtime that joins containers by /proc/<pause pid>/ns/*.
func (p Profile) Refuses(sc scenarios.Scenario) string {
	switch {
	case sc.NeedsCRIO() && !p.IsCRIO():
		return fmt.Sprintf("it reads CRI-O's configuration and journal, and node %s runs %s (try --node crio-1.34)", p.Name, p.Runtime)
	case sc.RuntimeReboot && p.IsCRIO():
		return fmt.Sprintf("crio-kubelet-reboot plays this story on CRI-O, reading CRI-O's own journal (node %s runs CRI-O)", p.Name)
	case sc.JoinRace && p.Runtime != RuntimeContainerd:
		return fmt.Sprintf("it needs a runtime that joins containers to their sandbox by /proc/<pause pid>/ns/*, and node %s runs %s (try --node %s)", p.Name, p.Runtime, Containerd)
	}
	return ""
}
