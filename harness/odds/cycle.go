// Package odds measures how often the write-up's bug happens by itself:
// one CRI-O/kubelet VM, N real reboots without any forced PID reuse, and
// for each the old sandboxes' infra PIDs, who (if anyone) held each when
// CRI-O's DEL ran, what that DEL entered, and what the node then showed
// (host lo, the sdn pod's liveness). The recording CNI plugin
// (cmd/cnirecord) supplies the "when the DEL ran"; CRI-O's journal the DEL
// lines; this package judges each cycle from both (judge.go, pure), plays
// the cycles (play.go, run.go), and writes the rate with its Wilson
// interval, a table and a plot (report.go, plot.go).
package odds

import "github.com/pidreuse/pidreuse/node/agentapi"

// Sandbox is one pod-network sandbox of the boot that is about to end: the
// PID through which an ephemeral netns path would name it.
type Sandbox struct {
	Pod string `json:"pod"`
	ID  string `json:"id"`
	PID int    `json:"pid"`
	// PIDSource is "infra" (the pause process: CRI-O 1.16/1.17), or
	// "container" where the runtime runs no infra process (CRI-O 1.34
	// drops it) and the pod's own process stands in.
	PIDSource string `json:"pidSource"`
}

// What a DEL's netns path named when the recorder ran.
const (
	EnteredHost    = "host"    // the host's netns: lo goes down
	EnteredOther   = "other"   // a live task in some other netns (a new pod's)
	EnteredGone    = "gone"    // /proc/<pid>/ns/net whose task had exited
	EnteredNothing = "nothing" // an empty path
	EnteredPin     = "pin"     // a pinned path (/var/run/netns/…)
)

// JournalDel is one DEL line of CRI-O's journal (harness/kube.ParseCNIOps).
type JournalDel struct {
	Time   string `json:"time"`
	Netns  string `json:"netns"`
	Issuer string `json:"issuer"`
	Error  string `json:"error,omitempty"`
}

// SandboxOutcome is what became of one old sandbox in the new boot.
type SandboxOutcome struct {
	Sandbox
	// Dels counts the DELs the recorder saw for it in the new boot.
	Dels int `json:"dels"`
	// The DEL that decides (the first whose path named a live task, else
	// the first): its path, when it ran, and the kernel's PID counters
	// then.
	DelNetns     string  `json:"delNetns"`
	DelUptimeSec float64 `json:"delUptimeSec,omitempty"`
	NsLastPID    int     `json:"nsLastPID,omitempty"`
	Forks        int     `json:"forks,omitempty"`
	// Held: a task of the new boot had the old PID when that DEL ran, and
	// Holder is who (comm, process, netns, start time since boot).
	Held   bool                `json:"held"`
	Holder *agentapi.PIDHolder `json:"holder,omitempty"`
	// Entered is what the DEL's path named (EnteredHost, …); Hit is
	// Entered == EnteredHost: the bug.
	Entered string `json:"entered"`
	Hit     bool   `json:"hit"`
	// Journal are CRI-O's own DEL lines for the sandbox.
	Journal []JournalDel `json:"journal,omitempty"`
}

// Symptom is what the harness saw of the node after the DELs.
type Symptom struct {
	// LoUp is host lo after every old sandbox's DEL ran.
	LoUp bool `json:"loUp"`
	// LoSetUp: lo was down and the harness set it up again (so the next
	// cycle starts clean); OwnAddressAfter says the node then reached its
	// own address.
	LoSetUp         bool `json:"loSetUp"`
	OwnAddressAfter bool `json:"ownAddressAfter,omitempty"`
	// LivenessFailed: kubelet logged a failed liveness probe of the sdn
	// pod in this boot; SDNRestarts is how often it restarted the
	// container (its attempt number).
	LivenessFailed bool     `json:"livenessFailed"`
	LivenessLines  []string `json:"livenessLines,omitempty"`
	SDNRestarts    int      `json:"sdnRestarts"`
}

// Cycle is one reboot of the run.
type Cycle struct {
	Index  int    `json:"index"`
	BootID string `json:"bootID"`
	// RebootSec is wall time from `systemctl reboot` to SSH on the new
	// boot; DurationSec the whole cycle.
	RebootSec   float64          `json:"rebootSec"`
	DurationSec float64          `json:"durationSec"`
	Sandboxes   []SandboxOutcome `json:"sandboxes"`
	// Hit: some old sandbox's DEL entered the host's netns.
	Hit bool `json:"hit"`
	// Held counts the old PIDs a task of the new boot had at their DEL.
	Held int `json:"held"`
	// FirstDelSec and LastDelSec are the seconds from boot to the first
	// and last recorded DEL of an old sandbox.
	FirstDelSec float64 `json:"firstDelSec,omitempty"`
	LastDelSec  float64 `json:"lastDelSec,omitempty"`
	// NsLastPIDMin and NsLastPIDMax bound the highest PID the new boot had
	// handed out at those DELs; PIDMax is the guest's pid_max.
	NsLastPIDMin int `json:"nsLastPIDMin,omitempty"`
	NsLastPIDMax int `json:"nsLastPIDMax,omitempty"`
	PIDMax       int `json:"pidMax,omitempty"`
	// ForksMax is how many tasks the new boot had created by the last
	// old-sandbox DEL; Wrapped says the PID counter had passed pid_max by
	// then (and started again at 300), so ns_last_pid is no bound on the
	// PIDs handed out.
	ForksMax int  `json:"forksMax,omitempty"`
	Wrapped  bool `json:"wrapped,omitempty"`
	// LoDownAtDel: the recorder saw host lo DOWN at one of the DELs.
	LoDownAtDel bool    `json:"loDownAtDel"`
	Symptom     Symptom `json:"symptom"`
	// OtherDels counts DELs of sandboxes that were not the old boot's.
	OtherDels int `json:"otherDels,omitempty"`
	// Notes are what did not add up (a DEL never recorded, lo down without
	// a hit, the journal and the recorder disagreeing).
	Notes []string `json:"notes,omitempty"`
	// Error ends the run: the cycle could not be measured.
	Error string `json:"error,omitempty"`
}
