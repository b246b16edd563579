package agentapi

import "time"

// CNIRecord is one line the recording CNI plugin (cmd/cnirecord) appends
// for each CNI command a runtime runs through it: what the runtime asked,
// and the node as it was at that instant. Placed last in a network list,
// it runs first on DEL (libcni deletes in reverse order), so a DEL's
// record shows who held the netns path's PID when the runtime's DEL
// started, before any real plugin ran.
type CNIRecord struct {
	// At is the node's wall clock; UptimeSec the seconds since this boot
	// (/proc/uptime), which the harness uses for "boot to DEL".
	At        time.Time `json:"at"`
	UptimeSec float64   `json:"uptimeSec"`
	BootID    string    `json:"bootID"`
	// Command is ADD, DEL or CHECK (CNI_COMMAND).
	Command     string `json:"command"`
	ContainerID string `json:"containerID"`
	// Netns is CNI_NETNS as the runtime passed it ("" when it passed none).
	Netns  string `json:"netns"`
	IfName string `json:"ifName,omitempty"`
	// NsLastPID is /proc/sys/kernel/ns_last_pid: the last PID the kernel
	// handed out in the node's PID namespace. Forks is /proc/stat's
	// "processes", every task (threads too) created since boot: unlike
	// NsLastPID it keeps counting when PIDs wrap at PIDMax.
	NsLastPID int `json:"nsLastPID"`
	Forks     int `json:"forks"`
	PIDMax    int `json:"pidMax"`
	// HostLoUp is the node's own lo as the plugin saw it (the plugin runs
	// in the runtime's netns, the host's). CRI-O 1.17's ocicni sets lo down
	// in the DEL's netns before it runs any plugin, so a DEL that entered
	// the host's netns already shows it DOWN here.
	HostLoUp bool `json:"hostLoUp"`
	// Holder is whoever held the PID Netns names (/proc/<pid>/ns/net) at
	// that instant; nil when Netns names no PID.
	Holder *PIDHolder `json:"holder,omitempty"`
	// Watched are the PIDs listed in the plugin's watch file (the previous
	// boot's sandbox PIDs, written by the harness before the reboot), each
	// as it was at that instant: so a DEL whose runtime passed no path
	// still says whether the old PID was taken.
	Watched []PIDHolder `json:"watched,omitempty"`
	// Error says what the plugin could not read; it never fails the
	// runtime's command.
	Error string `json:"error,omitempty"`
}

// PIDHolder is one PID (or thread ID: /proc/<tid> resolves too, and
// threads take PIDs from the same counter) as /proc showed it.
type PIDHolder struct {
	PID    int  `json:"pid"`
	Exists bool `json:"exists"`
	// Comm is the task's own name (a thread's, when PID is a thread's ID);
	// TGID and TGIDComm name the process it belongs to.
	Comm     string `json:"comm,omitempty"`
	TGID     int    `json:"tgid,omitempty"`
	TGIDComm string `json:"tgidComm,omitempty"`
	PPID     int    `json:"ppid,omitempty"`
	// StartSec is when the task started, in seconds since boot (stat's
	// starttime over USER_HZ): how far into the new boot it took the PID.
	StartSec float64 `json:"startSec,omitempty"`
	// Netns is the task's netns (nsfs inode) and HostNetns whether it is
	// the node's own (PID 1's).
	NetnsInode uint64 `json:"netnsInode,omitempty"`
	HostNetns  bool   `json:"hostNetns"`
	// Cgroup is the task's systemd cgroup path (cgroup v1 name=systemd, or
	// the v2 path): a system service, or a pod's.
	Cgroup string `json:"cgroup,omitempty"`
}
