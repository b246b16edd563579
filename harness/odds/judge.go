package odds

import (
	"fmt"
	"strings"

	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/node/cnirecord"
)

// JudgeDels says what became of each old sandbox in the new boot, from the
// recorder's records of that boot and CRI-O's journal of it: whether a
// task of the new boot held the old PID when the sandbox's DEL ran, who,
// and what the DEL's path entered. A pure function of the recorded lines.
func JudgeDels(old []Sandbox, recs []agentapi.CNIRecord, crioJournal string) []SandboxOutcome {
	ops := kube.ParseCNIOps(crioJournal)
	var out []SandboxOutcome
	for _, sb := range old {
		o := SandboxOutcome{Sandbox: sb, Entered: EnteredNothing}
		for _, d := range kube.DelsOf(ops, sb.ID) {
			o.Journal = append(o.Journal, JournalDel{Time: d.Time, Netns: d.NetNS, Issuer: d.Issuer(), Error: d.Error})
		}
		dels := DelsOf(recs, sb.ID)
		o.Dels = len(dels)
		if len(dels) == 0 {
			out = append(out, o)
			continue
		}
		d := deciding(dels)
		o.DelNetns, o.DelUptimeSec, o.NsLastPID, o.Forks = d.Netns, d.UptimeSec, d.NsLastPID, d.Forks
		o.Holder = heldAt(d, sb.PID)
		o.Held = o.Holder != nil && o.Holder.Exists
		o.Entered = entered(d)
		o.Hit = o.Entered == EnteredHost
		out = append(out, o)
	}
	return out
}

// deciding picks the DEL that decides a sandbox's fate: the first whose
// path named a live task (it is the one that touched a netns), else the
// first.
func deciding(dels []agentapi.CNIRecord) agentapi.CNIRecord {
	for _, d := range dels {
		if d.Holder != nil && d.Holder.Exists && !isRecorder(d.Holder) {
			return d
		}
	}
	return dels[0]
}

// isRecorder: the recorder (or a thread of it) got the PID itself. It
// only exists because the DEL runs, so it is no holder the bug could
// meet; CRI-O checked the path before it started.
func isRecorder(h *agentapi.PIDHolder) bool {
	return h.TGIDComm == crioguest.CNIRecordPlugin || h.Comm == crioguest.CNIRecordPlugin
}

// heldAt is who held pid when the DEL record was made: from the path's
// holder when the path names pid, else from the watched PIDs; nil when the
// record says nothing of pid (no watch file).
func heldAt(d agentapi.CNIRecord, pid int) *agentapi.PIDHolder {
	var h *agentapi.PIDHolder
	if d.Holder != nil && d.Holder.PID == pid {
		h = d.Holder
	}
	for i := range d.Watched {
		if h == nil && d.Watched[i].PID == pid {
			h = &d.Watched[i]
		}
	}
	if h != nil && h.Exists && isRecorder(h) {
		return &agentapi.PIDHolder{PID: pid}
	}
	return h
}

func entered(d agentapi.CNIRecord) string {
	switch {
	case d.Netns == "":
		return EnteredNothing
	case cnirecord.NetnsPID(d.Netns) == 0:
		return EnteredPin
	case d.Holder == nil || !d.Holder.Exists:
		return EnteredGone
	case d.Holder.HostNetns:
		return EnteredHost
	}
	return EnteredOther
}

// NewCycle sums a cycle up from its sandboxes' outcomes, the records of
// the boot and what the harness saw, and notes what does not add up.
func NewCycle(index int, bootID string, outcomes []SandboxOutcome, recs []agentapi.CNIRecord, sym Symptom) Cycle {
	c := Cycle{Index: index, BootID: bootID, Sandboxes: outcomes, Symptom: sym}
	old := map[string]bool{}
	for _, o := range outcomes {
		old[o.ID] = true
		if o.Held {
			c.Held++
		}
		c.Hit = c.Hit || o.Hit
		if o.Dels == 0 {
			c.Notes = append(c.Notes, fmt.Sprintf("%s (%s): no DEL recorded in this boot", o.Pod, short(o.ID)))
			continue
		}
		if c.FirstDelSec == 0 || o.DelUptimeSec < c.FirstDelSec {
			c.FirstDelSec = o.DelUptimeSec
		}
		if o.DelUptimeSec > c.LastDelSec {
			c.LastDelSec = o.DelUptimeSec
		}
		if c.NsLastPIDMin == 0 || o.NsLastPID < c.NsLastPIDMin {
			c.NsLastPIDMin = o.NsLastPID
		}
		if o.NsLastPID > c.NsLastPIDMax {
			c.NsLastPIDMax = o.NsLastPID
		}
		if o.Forks > c.ForksMax {
			c.ForksMax = o.Forks
		}
		if want := fmt.Sprintf("/proc/%d/ns/net", o.PID); o.Entered != EnteredNothing && o.Entered != EnteredPin && o.DelNetns != want {
			c.Notes = append(c.Notes, fmt.Sprintf("%s: DEL named %s, not the old PID's %s", o.Pod, o.DelNetns, want))
		}
		if len(o.Journal) > 0 && o.Journal[0].Netns != o.DelNetns {
			c.Notes = append(c.Notes, fmt.Sprintf("%s: CRI-O's journal says DEL with netns %q, the recorder saw %q", o.Pod, o.Journal[0].Netns, o.DelNetns))
		}
	}
	for _, r := range recs {
		if r.PIDMax != 0 {
			c.PIDMax = r.PIDMax
		}
		if r.Command != "DEL" {
			continue
		}
		if !old[r.ContainerID] {
			c.OtherDels++
		}
		c.LoDownAtDel = c.LoDownAtDel || !r.HostLoUp
		if r.Error != "" {
			c.Notes = append(c.Notes, fmt.Sprintf("recorder at DEL of %s: %s", short(r.ContainerID), r.Error))
		}
	}
	if c.PIDMax > 0 && c.ForksMax >= c.PIDMax {
		c.Wrapped = true
		c.Notes = append(c.Notes, fmt.Sprintf("PIDs had wrapped at pid_max %d before the last DEL (%d tasks created): ns_last_pid is no bound", c.PIDMax, c.ForksMax))
	}
	switch {
	case c.Hit && sym.LoUp:
		c.Notes = append(c.Notes, "a DEL entered the host's netns, yet host lo was UP after the DELs")
	case !c.Hit && !sym.LoUp:
		c.Notes = append(c.Notes, "host lo was DOWN after the DELs, but no recorded DEL entered the host's netns")
	case sym.LoUp && sym.LivenessFailed:
		c.Notes = append(c.Notes, "the sdn liveness probe failed while host lo was UP: a slow node (TCG, load), not the bug")
	}
	return c
}

// Holders lists "PID → who" for the old PIDs held at their DEL.
func (c Cycle) Holders() []string {
	var out []string
	for _, o := range c.Sandboxes {
		if o.Held {
			out = append(out, fmt.Sprintf("%s %d → %s", o.Pod, o.PID, describeHolder(o.Holder)))
		}
	}
	return out
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// DelPaths counts the kinds of path the cycles' DELs named: what the run
// measured ("/proc/<pid>/ns/net" ×3, "empty" ×12, …).
func DelPaths(cycles []Cycle) string {
	counts := map[string]int{}
	var order []string
	for _, c := range cycles {
		for _, o := range c.Sandboxes {
			if o.Dels == 0 {
				continue
			}
			kind := "empty"
			switch {
			case cnirecord.NetnsPID(o.DelNetns) > 0:
				kind = "/proc/<old pid>/ns/net"
			case o.DelNetns != "":
				kind = pinKind(o.DelNetns)
			}
			if counts[kind] == 0 {
				order = append(order, kind)
			}
			counts[kind]++
		}
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
	}
	if len(parts) == 0 {
		return "no DEL recorded"
	}
	return strings.Join(parts, ", ")
}

func pinKind(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i+1] + "<id>"
	}
	return path
}
