// Package scenarios is the reproduction written as data: how a sandbox's
// netns is referenced, who issues CNI DEL, whether a host process takes the
// holder's PID after the reboot, which CNI network list runs, and what the
// host's lo must look like afterwards.
package scenarios

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// Deleter is who issues CNI DEL after the reboot.
type Deleter string

const (
	// LegacyEmulator is the node agent playing a runtime that recorded the
	// netns path at ADD and replays it at DEL (CRI-O before the fix).
	LegacyEmulator Deleter = "legacy-emulator"
	// CRIO is a real CRI-O driven by kubelet.
	CRIO Deleter = "crio"
	// NodeRuntime is the node's own CRI runtime, whichever it is (CRI-O,
	// cri-dockerd), driven by kubelet, with no reboot.
	NodeRuntime Deleter = "runtime"
)

// Tier names where a scenario can run.
const (
	TierSandbox = "sandbox"
	TierVM      = "vm"
)

// Scenario is one reproduction.
type Scenario struct {
	Name        string
	Description string
	// Netns is how the runtime references the sandbox netns.
	Netns agentapi.NetnsMode
	// DeleteBy issues the DEL after the reboot.
	DeleteBy Deleter
	// ReusePID makes a host process take the holder's old PID before DEL.
	ReusePID bool
	// RetryDEL runs a first DEL before the PID is reused, which fails, and
	// retries it after, as a runtime retries a failed StopPodSandbox.
	RetryDEL bool
	// Plugins is the CNI network list in ADD order (DEL runs it reversed).
	Plugins []string
	// ExpectLoUp is the host lo state that means the scenario behaved as
	// this matrix says: false for the ones that reproduce the bug.
	ExpectLoUp bool
	// Tiers lists where the scenario runs.
	Tiers []string
	// NeedsKubelet: the node runs CRI-O and kubelet (the crio node image).
	NeedsKubelet bool
	// JoinRace: the race is a container joining the sandbox's namespaces
	// (join-race), not a CNI DEL; host lo is not its symptom.
	JoinRace bool
	// RuntimeReboot: crio-kubelet-reboot's story on a node whose runtime
	// is not CRI-O (kubelet-reboot), its DELs read at a pass-through gate.
	RuntimeReboot bool
	// Pinning, for the scenarios CRI-O plays, says how the run sets CRI-O's
	// namespace pinning: PinningDefault leaves CRI-O's own configuration,
	// and the expectation then comes from what that configuration says
	// (ExpectLoUp is not used); the others force it with a setting of
	// their own, and 125 where the CRI-O under test has no such switch.
	Pinning Pinning
}

// Pinning is how a CRI-O scenario sets CRI-O's namespace pinning.
type Pinning string

const (
	PinningDefault Pinning = "default"
	PinningOff     Pinning = "off"
	PinningOn      Pinning = "on"
)

// ExpectFromRuntime says the expected host lo comes from the runtime under
// test (does it pin namespaces?), not from the scenario.
func (s Scenario) ExpectFromRuntime() bool {
	return (s.DeleteBy == CRIO || s.DeleteBy == NodeRuntime) && s.Pinning == PinningDefault
}

// NeedsCRIONode says whether the scenario needs a Kubernetes node (the
// CRI-O/kubelet node images, whatever their runtime).
func (s Scenario) NeedsCRIONode() bool {
	return s.DeleteBy == CRIO || s.DeleteBy == NodeRuntime || s.NeedsKubelet
}

// NeedsCRIO says whether the scenario needs CRI-O itself, not just a
// Kubernetes node: it reads CRI-O's configuration and journal.
func (s Scenario) NeedsCRIO() bool {
	return s.DeleteBy == CRIO || (s.NeedsKubelet && s.DeleteBy != NodeRuntime)
}

// Reproduces says whether the scenario is expected to take host lo down.
func (s Scenario) Reproduces() bool { return !s.ExpectLoUp }

// RunsOn says whether the scenario runs on tier.
func (s Scenario) RunsOn(tier string) bool {
	for _, t := range s.Tiers {
		if t == tier {
			return true
		}
	}
	return false
}

var legacyTiers = []string{TierSandbox, TierVM}

// All returns the scenario matrix, in a stable order.
func All() []Scenario {
	return []Scenario{
		{
			Name:        "ephemeral-reused",
			Description: "ADD with the holder's /proc/PID/ns/net; after the reboot a host process has PID; DEL enters the host netns and sets lo down",
			Netns:       agentapi.Ephemeral, DeleteBy: LegacyEmulator, ReusePID: true,
			Plugins: []string{"loopback"}, ExpectLoUp: false, Tiers: legacyTiers,
		},
		{
			Name:        "ephemeral-not-reused",
			Description: "as ephemeral-reused, but no process has PID at DEL time: the path is gone and DEL touches nothing (v0.8.x-v1.0.1 fail with `failed to Statfs`)",
			Netns:       agentapi.Ephemeral, DeleteBy: LegacyEmulator, ReusePID: false,
			Plugins: []string{"loopback"}, ExpectLoUp: true, Tiers: legacyTiers,
		},
		{
			Name:        "pinned-reused",
			Description: "netns bind-mounted at /run/netns/ID; the reboot wipes /run, so DEL names nothing even though a host process has the holder's PID",
			Netns:       agentapi.Pinned, DeleteBy: LegacyEmulator, ReusePID: true,
			Plugins: []string{"loopback"}, ExpectLoUp: true, Tiers: legacyTiers,
		},
		{
			Name:        "del-retry",
			Description: "the first DEL fails while PID is gone; a host process takes PID; the runtime's retry enters the host netns and sets lo down",
			Netns:       agentapi.Ephemeral, DeleteBy: LegacyEmulator, ReusePID: true, RetryDEL: true,
			// failonce sits before loopback so DEL (reversed) runs loopback
			// first and then fails once, whatever the loopback version.
			Plugins: []string{"failonce", "loopback"}, ExpectLoUp: false, Tiers: legacyTiers,
		},
		{
			Name:        "crio-kubelet-reboot",
			Description: "real CRI-O and kubelet with CRI-O's own configuration; after the reboot host processes take the old PIDs before crio starts. Expected: what that configuration says — lo UP when CRI-O pins namespaces (1.34: always; the pin is gone after the reboot and DEL runs with an empty netns), DOWN when it does not (1.16, 1.17: DEL enters /proc/<old infra pid>/ns/net, the host's)",
			Netns:       agentapi.Pinned, DeleteBy: CRIO, ReusePID: true, Pinning: PinningDefault,
			Plugins: []string{"bridge"}, ExpectLoUp: true, Tiers: []string{TierVM},
		},
		{
			Name:        "crio-unpinned-reboot",
			Description: "crio-kubelet-reboot with namespace pinning forced off by a CRI-O setting (manage_ns_lifecycle, manage_network_ns_lifecycle on 1.16): DEL enters the host netns through /proc/<old infra pid>/ns/net and takes host lo down",
			Netns:       agentapi.Ephemeral, DeleteBy: CRIO, ReusePID: true, Pinning: PinningOff,
			Plugins: []string{"bridge", "portmap", "loopback"}, ExpectLoUp: false, Tiers: []string{TierVM},
		},
		{
			Name:        "crio-pinned-reboot",
			Description: "crio-kubelet-reboot with namespace pinning forced on by a CRI-O setting: the pins are gone after the reboot, the old sandboxes are dropped, host lo stays UP although host processes hold the old PIDs",
			Netns:       agentapi.Pinned, DeleteBy: CRIO, ReusePID: true, Pinning: PinningOn,
			Plugins: []string{"bridge", "portmap", "loopback"}, ExpectLoUp: true, Tiers: []string{TierVM},
		},
		{
			Name:        "stop-race",
			Description: "no reboot: kubelet stops a pod; the runtime's StopPodSandbox reads the sandbox's netns path and runs CNI DEL, held at its start by a gate in the plugin dir; the pause dies and a host process takes its PID; the gate opens. Expected: what the runtime under test hands DEL — host lo DOWN where it is /proc/<pause pid>/ns/net (cri-dockerd), UP where it is a pin (CRI-O 1.34)",
			Netns:       agentapi.Ephemeral, DeleteBy: NodeRuntime, ReusePID: true, Pinning: PinningDefault,
			Plugins: []string{"loopback"}, ExpectLoUp: false, Tiers: []string{TierVM}, NeedsKubelet: true,
		},
		{
			Name:        "join-race",
			Description: "no reboot: kubelet restarts a pod's container; the runtime's StartContainer reaches `runc create`, held at its start by a gate over runc; the pause dies and a host process takes its PID; the gate opens. Expected: what the runtime under test writes into the spec — a container that joins the sandbox by /proc/<pause pid>/ns/{net,ipc,uts} lands in the host holder's namespaces (containerd 1.6.20 and 2.x, containerd#5630); bisect: 1 when it did",
			Netns:       agentapi.Ephemeral, DeleteBy: NodeRuntime, ReusePID: true, Pinning: PinningDefault, JoinRace: true,
			ExpectLoUp: true, Tiers: []string{TierVM}, NeedsKubelet: true,
		},
		{
			Name:        "kubelet-reboot",
			Description: "crio-kubelet-reboot's story on the cri-dockerd and containerd nodes, the negative control of their live variants: after the reboot host processes take the old pauses' PIDs before the runtime starts; the runtime's DELs of the old sandboxes (recorded at a pass-through CNI gate) name nothing stale — Docker reports Pid 0 for an exited container, containerd's pin is gone: host lo UP",
			Netns:       agentapi.Pinned, DeleteBy: NodeRuntime, ReusePID: true, RuntimeReboot: true, Pinning: PinningDefault,
			ExpectLoUp: true, Tiers: []string{TierVM}, NeedsKubelet: true,
		},
		{
			Name:        "legacy-symptom",
			Description: "the legacy emulator's ephemeral sandbox next to CRI-O and kubelet: after reboot and PID reuse its DEL takes host lo down, and kubelet fails the hostNetwork pod's liveness probe and restarts it",
			Netns:       agentapi.Ephemeral, DeleteBy: LegacyEmulator, ReusePID: true,
			Plugins: []string{"loopback"}, ExpectLoUp: false, Tiers: []string{TierVM}, NeedsKubelet: true,
		},
	}
}

// Names lists every scenario name.
func Names() []string {
	var names []string
	for _, s := range All() {
		names = append(names, s.Name)
	}
	return names
}

// Select resolves "all" or a comma-separated list of names for a tier.
func Select(spec, tier string) ([]Scenario, error) {
	byName := map[string]Scenario{}
	for _, s := range All() {
		byName[s.Name] = s
	}
	var out []Scenario
	if spec == "" || spec == "all" {
		for _, s := range All() {
			if s.RunsOn(tier) {
				out = append(out, s)
			}
		}
		return out, nil
	}
	seen := map[string]bool{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		// A scenario named twice would run twice under one result file
		// name: refused rather than merged, so the run is what was typed.
		if seen[name] {
			return nil, fmt.Errorf("scenario %q is named twice in %q: name each once", name, spec)
		}
		seen[name] = true
		s, ok := byName[name]
		if !ok {
			names := Names()
			sort.Strings(names)
			return nil, fmt.Errorf("unknown scenario %q: choose one of %s, or all", name, strings.Join(names, ", "))
		}
		if !s.RunsOn(tier) {
			return nil, fmt.Errorf("scenario %q does not run on the %s tier (tiers: %s)", s.Name, tier, strings.Join(s.Tiers, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

// CRIONodeNames lists the scenarios that need the CRI-O/kubelet node.
func CRIONodeNames() []string {
	var names []string
	for _, s := range All() {
		if s.NeedsCRIONode() {
			names = append(names, s.Name)
		}
	}
	return names
}
