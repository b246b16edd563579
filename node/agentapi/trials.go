package agentapi

// A trial is one scenario on a node between its sandbox and its verdict.
// `nodeagent trials prepare|finish` plays a whole phase of several trials
// in one call: every step a scenario takes in the node (sandbox, ADD, the
// reads and the DEL after the reboot, lo restored) in one process, so a
// TCG guest pays for one process start and one round trip per phase
// instead of ~40 (see docs/speed.md).

// TrialSpec is one trial as the node plays it.
type TrialSpec struct {
	ID string `json:"id"`
	// Mode and HolderPID are the sandbox's (prepare); HolderPID is also
	// the PID the finish reads, reuses and DELs through.
	Mode      NetnsMode `json:"mode,omitempty"`
	HolderPID int       `json:"holderPID"`
	// PluginDirs are searched in order; Plugins is the network list.
	PluginDirs []string `json:"pluginDirs"`
	Plugins    []string `json:"plugins"`
	// BootIDBefore is the boot the sandbox was made in (finish): the
	// same boot ID after the reboot means there was none.
	BootIDBefore string `json:"bootIDBefore,omitempty"`
	// ReusePID: a host process takes HolderPID before the DEL.
	ReusePID bool `json:"reusePID,omitempty"`
	// RetryDEL: a DEL before the PID is reused (it meets a missing path),
	// and the DEL again after.
	RetryDEL bool `json:"retryDEL,omitempty"`
}

// TrialsRequest is the argument of `nodeagent trials prepare|finish`.
type TrialsRequest struct {
	Trials []TrialSpec `json:"trials"`
	// StepTimeoutMs bounds each step of each trial: a plugin that never
	// returns ends its trial as timed out, and no later trial is played.
	StepTimeoutMs int64 `json:"stepTimeoutMs"`
	// LeaveLoDown (finish) stops after the first trial whose DEL left
	// the node's lo down, without setting it up: the caller watches what
	// else fails meanwhile, restores lo (`lo restore`) and asks for the
	// rest. Without it the agent restores lo itself and goes on.
	LeaveLoDown bool `json:"leaveLoDown,omitempty"`
	// ProbeDownTimeoutMs and ProbeUpTimeoutMs bound the probes of the
	// node's own address while lo is down and after it is set up.
	ProbeDownTimeoutMs int64 `json:"probeDownTimeoutMs,omitempty"`
	ProbeUpTimeoutMs   int64 `json:"probeUpTimeoutMs,omitempty"`
}

// Marks of a trial's report: when each step began or ended, so the caller
// can place the trial's timeline on its own clock.
const (
	MarkSandboxCreate = "sandbox create" // before
	MarkCNIAdd        = "cni add"        // before
	MarkBoot          = "boot"           // after the boot ID was read
	MarkFirstDel      = "first del"      // before
	MarkReuse         = "pid reuse"      // before
	MarkDel           = "del"            // after
	MarkLo            = "lo"             // after lo was read, past the DEL
	MarkLoUp          = "lo up"          // after lo was set up and probed
)

// TrialMark is a point of a trial's play, in milliseconds since the
// request began in the node.
type TrialMark struct {
	Mark string `json:"mark"`
	AtMs int64  `json:"atMs"`
}

// LoRestore is printed by `lo restore` (and is part of a finish that set
// lo up itself): the node's own address probed while lo is down, lo set
// up, and probed again.
type LoRestore struct {
	Down Probe `json:"down"`
	Lo   Link  `json:"lo"`
	Up   Probe `json:"up"`
}

// TrialReport is what the node saw of one trial: every read and result in
// the order the steps ran, those not reached nil.
type TrialReport struct {
	ID string `json:"id"`
	// Prepare.
	Sandbox *Sandbox   `json:"sandbox,omitempty"`
	Add     *CNIResult `json:"add,omitempty"`
	// Finish.
	Boot      *Boot       `json:"boot,omitempty"`
	LoBefore  *Link       `json:"loBefore,omitempty"`
	PIDBefore *PIDStatus  `json:"pidBefore,omitempty"`
	FirstDel  *CNIResult  `json:"firstDel,omitempty"`
	Reuse     *PIDReuse   `json:"reuse,omitempty"`
	PIDAfter  *PIDStatus  `json:"pidAfter,omitempty"`
	Del       *CNIResult  `json:"del,omitempty"`
	LoAfter   *Link       `json:"loAfter,omitempty"`
	Restore   *LoRestore  `json:"restore,omitempty"`
	Marks     []TrialMark `json:"marks,omitempty"`
	// Error is why the trial stopped early, as the single step's error
	// would say it.
	Error string `json:"error,omitempty"`
	// TimedOut names the step that passed the step timeout
	// ("nodeagent cni del"); Error says so too.
	TimedOut string `json:"timedOut,omitempty"`
}

// TrialsReport is printed by `nodeagent trials prepare|finish`: a report
// for each trial played, in order (none for those after a timeout or
// after lo was left down).
type TrialsReport struct {
	Trials    []TrialReport `json:"trials"`
	ElapsedMs int64         `json:"elapsedMs"`
}
