package scenarios

import (
	"golang.org/x/mod/semver"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// CheckKind says what a failed check means.
type CheckKind string

const (
	// Timeline checks say the scenario's story happened as scripted: a real
	// reboot between ADD and DEL, a host process holding the old PID, DEL
	// naming what it should. When one fails, the run did not reproduce the
	// timeline, so it cannot judge the component: `pidreuse bisect` answers
	// 125 (skip), never 0 or 1.
	Timeline CheckKind = "timeline"
	// Outcome checks are what the component under test did besides the
	// host lo state: its error lines, the symptom, the recovery.
	Outcome CheckKind = "outcome"
)

// Check is one expectation a scenario has besides the host lo state.
type Check struct {
	// ID is stable: reports, tests and the runner key on it.
	ID   string
	Kind CheckKind
	// What is the expectation as a sentence.
	What string
}

// The checks. A runner records each one a scenario has (see Checks) with
// what it saw; a result passes only when every one holds.
var (
	CheckRealReboot = Check{"real-reboot", Timeline,
		"the node rebooted between ADD and DEL (new boot id)"}
	CheckPIDTakenByHost = Check{"pid-taken-by-host", Timeline,
		"when DEL (or the join) runs, a host process (host netns) holds the holder's old PID"}
	CheckPIDNotTaken = Check{"pid-not-taken", Timeline,
		"at DEL time no process holds the holder's old PID"}
	CheckDelNamesHost = Check{"del-names-host-netns", Timeline,
		"DEL's netns path names the host's netns"}
	CheckDelNamesNothing = Check{"del-names-nothing", Timeline,
		"DEL's netns path names nothing (it is gone)"}
	CheckFirstDelFails = Check{"first-del-fails", Timeline,
		"the first DEL fails, so a runtime retries it"}
	CheckStatfsLine = Check{"statfs-error-line", Outcome,
		"loopback v0.8.0-v1.0.1: DEL on the missing path fails with the write-up's `failed to Statfs \"<path>\": no such file or directory`"}
	CheckMissingPathIgnored = Check{"missing-path-ignored", Outcome,
		"loopback v1.1.0 and later: DEL on the missing path succeeds"}
	CheckOwnAddrUnreachable = Check{"own-address-unreachable", Outcome,
		"with host lo DOWN the node cannot reach its own address"}
	CheckLoUpRestores = Check{"lo-up-restores", Outcome,
		"`ip link set lo up` makes the node reach its own address again"}

	// CRI-O and kubelet (harness/kubescenario).
	CheckCRIONetns = Check{"crio-netns-as-configured", Outcome,
		"CRI-O references each sandbox's netns as its configuration says: a pin under /var/run/netns, or /proc/<infra pid>/ns/net"}
	CheckPinGone = Check{"pin-gone", Outcome,
		"after the reboot CRI-O finds each old sandbox's pinned netns gone"}
	CheckDelNoStalePath = Check{"del-no-stale-path", Outcome,
		"no CNI DEL of an old sandbox names a /proc path (CRI-O 1.19+ runs it with an empty netns, 1.17 drops the sandbox without one)"}
	CheckDelStalePath = Check{"del-stale-path", Outcome,
		"CRI-O runs CNI DEL for the old sandbox with /proc/<old infra pid>/ns/net, which a host process now holds"}
	CheckCRIOStatfs = Check{"crio-statfs-line", Outcome,
		"CRI-O 1.16.0-1.16.2: DEL of the old sandbox whose PID nobody took logs the write-up's `failed to Statfs \"/proc/N/ns/net\": no such file or directory`"}
	CheckProbesAnswered = Check{"sdn-probes-answered", Outcome,
		"after the DEL, kubelet's liveness probes of the node's own address reach the hostNetwork sdn pod (two answered, as its log says)"}
	CheckSDNNotRestarted = Check{"sdn-not-restarted", Outcome,
		"the hostNetwork sdn pod keeps running, not restarted"}
	CheckNoLivenessFailure = Check{"no-liveness-failure", Outcome,
		"kubelet logs no failed liveness probe"}
	CheckLivenessRestart = Check{"liveness-restart", Outcome,
		"while host lo is DOWN kubelet fails the sdn pod's liveness probe and restarts it"}
	CheckLivenessRecovers = Check{"liveness-recovers", Outcome,
		"once lo is up again the sdn pod answers kubelet's probes (two, as its log says) and kubelet stops restarting it"}

	// The stop race (harness/kubescenario/stoprace.go).
	CheckDelHeld = Check{"del-held-at-gate", Timeline,
		"the runtime's own CNI DEL of the stopped pod's sandbox reached the gated plugin and waited there"}
	CheckPauseGone = Check{"pause-gone-before-del", Timeline,
		"the sandbox's pause process was gone (and its PID free) while the runtime's call waited at the gate"}
	CheckDelProcPathHost = Check{"del-proc-path-names-host", Outcome,
		"DEL's netns path is /proc/<pause pid>/ns/net, which named the host's netns when DEL ran"}
	CheckDelPathNotHost = Check{"del-path-not-host", Outcome,
		"DEL's netns path did not name the host's netns, although a host process held the pause's PID"}

	// The reboot on other runtimes (harness/kubescenario/reboot.go).
	CheckOldRefGone = Check{"old-netns-ref-gone", Outcome,
		"after the reboot each old sandbox's netns reference names nothing: Docker reports Pid 0 for its pause, containerd's pin is gone"}
	CheckOldDelRecorded = Check{"old-sandbox-del-recorded", Outcome,
		"the runtime ran CNI DEL for each old pod-network sandbox after the reboot (recorded at the gate)"}

	// The join race (harness/kubescenario/joinrace.go).
	CheckCreateHeld = Check{"create-held-at-gate", Timeline,
		"the runtime's start of the restarted container reached `runc create` with a spec joining the pod's pause by /proc/<pid>/ns/*, and waited there"}
	CheckJoinedHost = Check{"joined-host-namespaces", Outcome,
		"the container got the host holder's net, ipc and uts namespaces, not its pod's (containerd#5630)"}
	CheckNoForeignJoin = Check{"no-foreign-join", Outcome,
		"the container did not start, or got only its own pod's namespaces"}
)

// Checks lists what sc expects besides the host lo state when it runs on
// tier with the loopback plugin of pluginVersion (a tag, "debian", or a
// user's dir, whose version is unknown): the one place that says which
// check applies where.
func (s Scenario) Checks(pluginVersion, tier string) []Check {
	var out []Check
	add := func(c ...Check) { out = append(out, c...) }
	if s.DeleteBy == NodeRuntime && s.RuntimeReboot {
		return []Check{CheckRealReboot, CheckPIDTakenByHost, CheckOldRefGone, CheckOldDelRecorded, CheckDelNoStalePath, CheckProbesAnswered, CheckSDNNotRestarted, CheckNoLivenessFailure}
	}
	if s.DeleteBy == NodeRuntime && s.JoinRace {
		// What the runtime does depends on the runtime: JoinRaceChecks.
		return []Check{CheckCreateHeld, CheckPauseGone, CheckPIDTakenByHost}
	}
	if s.DeleteBy == NodeRuntime {
		// What the runtime does depends on the runtime: StopRaceChecks.
		return []Check{CheckDelHeld, CheckPauseGone, CheckPIDTakenByHost}
	}
	add(CheckRealReboot)
	if s.DeleteBy == CRIO {
		// What CRI-O does depends on the CRI-O under test: CRIOChecks.
		return append(out, CheckPIDTakenByHost)
	}
	if s.RetryDEL {
		add(CheckFirstDelFails)
	}
	if s.ReusePID {
		add(CheckPIDTakenByHost)
	} else {
		add(CheckPIDNotTaken)
	}
	missing := s.Netns == agentapi.Pinned || !s.ReusePID
	if missing {
		add(CheckDelNamesNothing)
		switch LoopbackFailsOnMissingPath(pluginVersion) {
		case Yes:
			add(CheckStatfsLine)
		case No:
			add(CheckMissingPathIgnored)
		}
	} else {
		add(CheckDelNamesHost)
	}
	if !s.ExpectLoUp {
		add(CheckOwnAddrUnreachable, CheckLoUpRestores)
	}
	if s.NeedsKubelet && tier == TierVM && !s.ExpectLoUp {
		add(CheckLivenessRestart, CheckLivenessRecovers)
	}
	return out
}

// CRIORuntime is what a CRI-O scenario learned of the CRI-O under test
// before the reboot.
type CRIORuntime struct {
	// Version is what CRI-O says of itself over CRI ("1.17.5").
	Version string
	// Pins: its configuration pins namespaces.
	Pins bool
	// SparePod: the node has an ordinary pod whose old PID is not taken.
	SparePod bool
}

// CRIOChecks lists what a CRI-O scenario expects of the CRI-O under test,
// besides the host lo state that follows from rt.Pins: with pinning, the
// pins are gone after the reboot and nothing stale is entered, the
// hostNetwork pod stays healthy; without, DEL enters the stale path, the
// node cannot reach itself, kubelet fails the sdn pod's probe and
// restarts it until lo is set up again.
func (s Scenario) CRIOChecks(rt CRIORuntime) []Check {
	out := append(s.Checks("", TierVM), CheckCRIONetns)
	if rt.Pins {
		return append(out, CheckPinGone, CheckDelNoStalePath, CheckProbesAnswered, CheckSDNNotRestarted, CheckNoLivenessFailure)
	}
	out = append(out, CheckDelStalePath, CheckOwnAddrUnreachable, CheckLivenessRestart, CheckLoUpRestores, CheckLivenessRecovers)
	if rt.SparePod && crioLogsStatfs(rt.Version) {
		out = append(out, CheckCRIOStatfs)
	}
	return out
}

// StopRaceChecks lists what the stop race expects of the runtime under
// test, whose DEL either gets the pause's /proc path (the host's netns once
// a host process holds that PID: lo DOWN, the node cannot reach itself,
// kubelet restarts the hostNetwork pod until lo is up) or a pin that still
// names the pod's netns (lo UP, the hostNetwork pod untouched).
func (s Scenario) StopRaceChecks(procPath bool) []Check {
	out := s.Checks("", TierVM)
	if procPath {
		return append(out, CheckDelProcPathHost, CheckOwnAddrUnreachable, CheckLivenessRestart, CheckLoUpRestores, CheckLivenessRecovers)
	}
	return append(out, CheckDelPathNotHost, CheckProbesAnswered, CheckSDNNotRestarted, CheckNoLivenessFailure)
}

// JoinRaceChecks lists what the join race expects of the runtime under
// test: a container that joins by /proc/<pause pid>/ns/* lands in the
// host holder's namespaces; one that joins by pins (or refuses to start)
// gets nothing foreign.
func (s Scenario) JoinRaceChecks(procJoin bool) []Check {
	if procJoin {
		return append(s.Checks("", TierVM), CheckJoinedHost)
	}
	return append(s.Checks("", TierVM), CheckNoForeignJoin)
}

// crioLogsStatfs says whether CRI-O version passes a missing
// /proc/<pid>/ns/net to CNI DEL unchecked (1.16.0 to 1.16.2; 1.16.3 and
// later stat it first and pass an empty path).
func crioLogsStatfs(version string) bool {
	v := "v" + version
	return semver.IsValid(v) && semver.Compare(v, "v1.16.0") >= 0 && semver.Compare(v, "v1.16.3") < 0
}

// Answer is yes, no, or unknown.
type Answer int

const (
	Unknown Answer = iota
	Yes
	No
)

// DebianLoopbackVersion is the upstream release Debian 12's
// containernetworking-plugins (1.1.1+ds1) packages.
const DebianLoopbackVersion = "v1.1.1"

// LoopbackFailsOnMissingPath says whether the loopback plugin of version
// fails DEL when the netns path does not exist: v0.8.0 to v1.0.1 return
// `failed to Statfs "<path>": no such file or directory` (the write-up's
// line); v1.1.0 made DEL ignore a missing netns. v0.7.x fails too, but
// differently. A user's plugin dir ("custom:…") is Unknown.
func LoopbackFailsOnMissingPath(version string) Answer {
	if version == "debian" {
		version = DebianLoopbackVersion
	}
	if !semver.IsValid(version) {
		return Unknown
	}
	switch {
	case semver.Compare(version, "v0.8.0") < 0:
		return Unknown
	case semver.Compare(version, "v1.1.0") < 0:
		return Yes
	default:
		return No
	}
}
