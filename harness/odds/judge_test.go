package odds

import (
	"os"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/node/agentapi"
)

// The old sandboxes of harness/kube/testdata/crio-1.17-after-reboot.journal,
// a real CRI-O 1.17.5 journal: web's DEL named /proc/20689/ns/net (a host
// process held it), batch's ran with an empty netns (its PID was free).
var (
	web   = Sandbox{Pod: "web", ID: "dcb147f70b81e73f1d2e06261dc20031b3237b1d558579d3956ff20e8a36b57b", PID: 20689, PIDSource: "infra"}
	batch = Sandbox{Pod: "batch", ID: "30fbc3896e3b1412063b05bd24342e4994a332cf539faa5b0ddda0402d2f3cb3", PID: 20712, PIDSource: "infra"}
)

func journal117(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../kube/testdata/crio-1.17-after-reboot.journal")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func kubeletThread(pid int) agentapi.PIDHolder {
	return agentapi.PIDHolder{PID: pid, Exists: true, Comm: "kubelet", TGID: 612, TGIDComm: "kubelet", StartSec: 23.4, HostNetns: true, NetnsInode: 4026531840, Cgroup: "/system.slice/kubelet.service"}
}

func TestJudgeDelsHitAndFree(t *testing.T) {
	holder := kubeletThread(20689)
	recs := []agentapi.CNIRecord{
		{BootID: "b2", Command: "ADD", ContainerID: "ab525e", Netns: "/proc/20325/ns/net", HostLoUp: true},
		{BootID: "b2", Command: "DEL", ContainerID: web.ID, Netns: "/proc/20689/ns/net", UptimeSec: 41.2, NsLastPID: 21950, Forks: 2100, PIDMax: 4194304,
			Holder: &holder, Watched: []agentapi.PIDHolder{holder, {PID: 20712}}},
		{BootID: "b2", Command: "DEL", ContainerID: batch.ID, Netns: "", UptimeSec: 42.0, NsLastPID: 21990, Forks: 2140, PIDMax: 4194304,
			Watched: []agentapi.PIDHolder{holder, {PID: 20712}}},
	}
	out := JudgeDels([]Sandbox{web, batch}, recs, journal117(t))
	if len(out) != 2 {
		t.Fatalf("want 2 outcomes, got %d", len(out))
	}
	w, b := out[0], out[1]
	if !w.Hit || !w.Held || w.Entered != EnteredHost || w.DelUptimeSec != 41.2 || w.NsLastPID != 21950 || w.Holder.Comm != "kubelet" {
		t.Errorf("web: %+v", w)
	}
	if len(w.Journal) != 1 || w.Journal[0].Netns != "/proc/20689/ns/net" || !strings.Contains(w.Journal[0].Issuer, "StopPodSandbox") {
		t.Errorf("web's journal DELs: %+v", w.Journal)
	}
	if b.Hit || b.Held || b.Entered != EnteredNothing || b.DelNetns != "" {
		t.Errorf("batch: %+v", b)
	}
	if len(b.Journal) != 1 || b.Journal[0].Netns != "" {
		t.Errorf("batch's journal DELs: %+v", b.Journal)
	}

	c := NewCycle(1, "b2", out, recs, Symptom{LoUp: false, LoSetUp: true, LivenessFailed: true, SDNRestarts: 1})
	if !c.Hit || c.Held != 1 || c.FirstDelSec != 41.2 || c.LastDelSec != 42.0 || c.NsLastPIDMin != 21950 || c.NsLastPIDMax != 21990 || c.PIDMax != 4194304 {
		t.Errorf("cycle: %+v", c)
	}
	if len(c.Notes) != 0 {
		t.Errorf("a consistent cycle has no notes: %q", c.Notes)
	}
	if h := c.Holders(); len(h) != 1 || !strings.Contains(h[0], "web 20689 → kubelet (thread of kubelet 612), host netns, started 23.4 s") {
		t.Errorf("holders: %q", h)
	}
}

// A PID held by a new pod's pause process: DEL enters that pod's netns,
// not the host's: held, no hit.
func TestJudgeDelsHeldInAPodNetns(t *testing.T) {
	pause := agentapi.PIDHolder{PID: 20689, Exists: true, Comm: "pause", TGID: 20689, TGIDComm: "pause", NetnsInode: 4026532600}
	recs := []agentapi.CNIRecord{{BootID: "b2", Command: "DEL", ContainerID: web.ID, Netns: "/proc/20689/ns/net", Holder: &pause, HostLoUp: true}}
	o := JudgeDels([]Sandbox{web}, recs, "")[0]
	if o.Hit || !o.Held || o.Entered != EnteredOther {
		t.Errorf("%+v", o)
	}
}

// The recorder may get the old PID itself: it exists only because the DEL
// runs, so it is no holder.
func TestJudgeDelsIgnoresTheRecorderItself(t *testing.T) {
	self := agentapi.PIDHolder{PID: 20712, Exists: true, Comm: "pidreuse-record", TGID: 20712, TGIDComm: "pidreuse-record", HostNetns: true}
	recs := []agentapi.CNIRecord{{BootID: "b2", Command: "DEL", ContainerID: batch.ID, Watched: []agentapi.PIDHolder{self}, HostLoUp: true}}
	o := JudgeDels([]Sandbox{batch}, recs, "")[0]
	if o.Held || o.Hit {
		t.Errorf("%+v", o)
	}
}

// What does not add up is said, not hidden.
func TestNewCycleNotes(t *testing.T) {
	out := JudgeDels([]Sandbox{web, batch}, []agentapi.CNIRecord{
		{BootID: "b2", Command: "DEL", ContainerID: web.ID, Netns: "", HostLoUp: true},
		{BootID: "b2", Command: "DEL", ContainerID: "0123456789abcdef", Netns: "", HostLoUp: true, Error: "read lo flags: nope"},
	}, journal117(t))
	c := NewCycle(2, "b2", out, []agentapi.CNIRecord{
		{BootID: "b2", Command: "DEL", ContainerID: web.ID, HostLoUp: true},
		{BootID: "b2", Command: "DEL", ContainerID: "0123456789abcdef", HostLoUp: true, Error: "read lo flags: nope"},
	}, Symptom{LoUp: false})
	notes := strings.Join(c.Notes, "\n")
	for _, want := range []string{
		"batch (30fbc3896e3b): no DEL recorded",
		`web: CRI-O's journal says DEL with netns "/proc/20689/ns/net", the recorder saw ""`,
		"recorder at DEL of 0123456789ab: read lo flags: nope",
		"host lo was DOWN after the DELs, but no recorded DEL entered the host's netns",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if c.OtherDels != 1 || c.Hit {
		t.Errorf("cycle: %+v", c)
	}
}

func TestParseRecordsKeepsOneBoot(t *testing.T) {
	data := `{"bootID":"b1","command":"ADD","containerID":"a"}
{"bootID":"b2","command":"DEL","containerID":"a","netns":""}
{"bootID":"b2","command":"DEL","contai` + "\n"
	recs, skipped := ParseRecords(data, "b2")
	if len(recs) != 1 || skipped != 1 || recs[0].Command != "DEL" {
		t.Errorf("recs %+v, skipped %d", recs, skipped)
	}
	if all, _ := ParseRecords(data, ""); len(all) != 2 || Adds(all) != 1 {
		t.Errorf("all: %+v", all)
	}
}

func TestDelPaths(t *testing.T) {
	cycles := []Cycle{{Sandboxes: []SandboxOutcome{
		{Dels: 1, DelNetns: "/proc/20689/ns/net"}, {Dels: 1}, {Dels: 1}, {Dels: 0},
	}}, {Sandboxes: []SandboxOutcome{{Dels: 1, DelNetns: "/var/run/netns/1b2c"}}}}
	if got := DelPaths(cycles); got != "/proc/<old pid>/ns/net ×1, empty ×2, /var/run/netns/<id> ×1" {
		t.Errorf("got %q", got)
	}
}

// Restarts count in the current boot's sandbox only: CRI-O still lists the
// sdn containers of earlier boots with their attempt numbers.
func TestRestartsThisBoot(t *testing.T) {
	// As a kept VM showed it after two reboots: the new sandbox's sdn
	// container starts at attempt 5, counting on from the old one's 4.
	sbs := []agentapi.CRISandbox{{ID: "old", State: "SANDBOX_NOTREADY"}, {ID: "new", State: "SANDBOX_READY"}}
	cs := []agentapi.CRIContainer{
		{Name: "sdn", SandboxID: "old", Attempt: 4}, {Name: "sdn", SandboxID: "new", Attempt: 5}, {Name: "web", SandboxID: "new", Attempt: 9},
	}
	if got := restartsThisBoot(sbs, cs, "sdn"); got != 0 {
		t.Errorf("got %d restarts, want 0", got)
	}
	cs = append(cs, agentapi.CRIContainer{Name: "sdn", SandboxID: "new", Attempt: 6})
	if got := restartsThisBoot(sbs, cs, "sdn"); got != 1 {
		t.Errorf("got %d restarts, want 1", got)
	}
	if got := restartsThisBoot(sbs, nil, "sdn"); got != 0 {
		t.Errorf("no container: got %d", got)
	}
}

func TestDelPath(t *testing.T) {
	for _, c := range []struct {
		p    kube.Pinning
		want string
	}{
		{kube.Pinning{Switch: "manage_ns_lifecycle", Pins: false}, "/proc/<old infra pid>/ns/net"},
		{kube.Pinning{Switch: "manage_ns_lifecycle", Pins: true}, "zero hits by construction"},
		{kube.Pinning{}, "zero hits by construction"}, // CRI-O 1.34: no switch, always pins
	} {
		if got := delPath(c.p); !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q", c.p, got)
		}
	}
}
