// Package agentapi holds the JSON documents the node agent prints, one per
// step. The harness (outside the node) and the agent (inside it) share these
// types so that both tiers decode exactly the same shapes.
package agentapi

import "time"

// NetnsMode says how a sandbox's network namespace is referenced.
type NetnsMode string

const (
	// Ephemeral references the netns through its holder's /proc/<pid>/ns/net,
	// which names whatever process owns that PID at the time of use.
	Ephemeral NetnsMode = "ephemeral"
	// Pinned bind-mounts the netns at /run/netns/<id>; the path dies with /run.
	Pinned NetnsMode = "pinned"
)

// Sandbox is the record `sandbox create` keeps in the state dir. It survives
// a reboot because the state dir is on disk.
type Sandbox struct {
	ID         string    `json:"id"`
	Mode       NetnsMode `json:"mode"`
	NetnsPath  string    `json:"netnsPath"`
	HolderPID  int       `json:"holderPID"`
	NetnsInode uint64    `json:"netnsInode"`
	BootID     string    `json:"bootID"`
	CreatedAt  time.Time `json:"createdAt"`
}

// NetnsTarget classifies what a netns path named at the moment it was used.
type NetnsTarget string

const (
	TargetMissing NetnsTarget = "missing" // the path does not exist
	TargetHost    NetnsTarget = "host"    // the node's own (host) netns: the dangerous case
	TargetOther   NetnsTarget = "other"   // some other netns, e.g. the live sandbox
	TargetNotNS   NetnsTarget = "not-netns"
	TargetEmpty   NetnsTarget = "empty" // no path at all
)

// CNIResult is printed by `cni add` and `cni del`.
type CNIResult struct {
	ID          string      `json:"id"`
	Command     string      `json:"command"` // ADD or DEL
	NetnsPath   string      `json:"netnsPath"`
	NetnsTarget NetnsTarget `json:"netnsTarget"` // what the path named just before the plugins ran
	PluginDirs  []string    `json:"pluginDirs"`
	NetworkName string      `json:"networkName"`
	Plugins     []string    `json:"plugins"`
	Error       string      `json:"error,omitempty"`
	Result      any         `json:"result,omitempty"`
	StartedAt   time.Time   `json:"startedAt"`
	DurationMs  int64       `json:"durationMs"`
}

// PIDReuse is printed by `pid reuse`.
type PIDReuse struct {
	PID            int    `json:"pid"`
	Attempts       int    `json:"attempts"`
	NetnsInode     uint64 `json:"netnsInode"`
	HostNetnsInode uint64 `json:"hostNetnsInode"`
	IsHostNetns    bool   `json:"isHostNetns"`
	DurationMs     int64  `json:"durationMs"`
	// HeldBy is set when a host process already had the PID and no new
	// one was needed (`pid squat` only): boot-time processes get PIDs in
	// the same range the previous boot's containers had.
	HeldBy string `json:"heldBy,omitempty"`
	// WaitedFor names the task that had the PID when the first try
	// came, which the agent waited out ("pid is in use by a thread of
	// process 1123 (\"runc\")"); empty when the PID was free.
	WaitedFor string `json:"waitedFor,omitempty"`
}

// PIDStatus is printed by `pid status`: who, if anyone, owns a PID now.
// Squat is printed by `pid squat`: host processes taking a list of PIDs
// (the previous boot's container PIDs) in one go, before a runtime starts.
type Squat struct {
	Taken  []PIDReuse  `json:"taken"`
	Missed []SquatMiss `json:"missed,omitempty"`
	// LastPIDRestored is where the kernel's PID counter was put back after
	// the squat (0: it could not be).
	LastPIDRestored int `json:"lastPIDRestored,omitempty"`
}

// SquatMiss is a PID that no host process could take, and why.
type SquatMiss struct {
	PID   int    `json:"pid"`
	Error string `json:"error"`
}

type PIDStatus struct {
	PID         int         `json:"pid"`
	Exists      bool        `json:"exists"`
	Comm        string      `json:"comm,omitempty"`
	NetnsTarget NetnsTarget `json:"netnsTarget"`
}

// Link is printed by `link show` and `link set`.
type Link struct {
	Name       string `json:"name"`
	Up         bool   `json:"up"`
	Flags      string `json:"flags"`
	NetnsInode uint64 `json:"netnsInode"`
}

// Probe is printed by `probe`: can the node reach an address of its own?
type Probe struct {
	Addr       string `json:"addr"`
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	DurationMs int64  `json:"durationMs"`
	// LoDropped is how many packets lo dropped while the probe waited
	// (its tx_dropped statistic): a down lo drops the probe's SYN, which
	// is how the probe knows, without waiting out its timeout, that no
	// answer will come.
	LoDropped uint64 `json:"loDropped,omitempty"`
}

// Boot is printed by `boot id`.
type Boot struct {
	BootID     string `json:"bootID"`
	Hostname   string `json:"hostname"`
	NetnsInode uint64 `json:"netnsInode"`
}
