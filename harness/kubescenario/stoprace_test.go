package kubescenario

import (
	"testing"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

func TestNetnsTargetOf(t *testing.T) {
	for in, want := range map[string]agentapi.NetnsTarget{
		"4026531840 4026531840\n": agentapi.TargetHost,
		"4026531840 4026532301\n": agentapi.TargetOther,
		"4026531840 missing\n":    agentapi.TargetMissing,
	} {
		if got, err := NetnsTargetOf(in); err != nil || got != want {
			t.Errorf("NetnsTargetOf(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NetnsTargetOf("4026531840\n"); err == nil {
		t.Error("one field accepted")
	}
}

// The gate's own lines (images/crionode/rootfs/usr/local/lib/pidreuse/cni-gate).
func TestParseGate(t *testing.T) {
	h, err := ParseGateHeld([]byte(`{"at":"1796635804.103946447","gate_pid":1171,"plugin":"loopback","container_id":"27af8273dd265","netns":"/proc/780/ns/net","ifname":"eth0"}` + "\n"))
	if err != nil || h.NetNS != "/proc/780/ns/net" || h.Plugin != "loopback" || h.GatePID != 1171 || h.ContainerID != "27af8273dd265" {
		t.Errorf("held = %+v, %v", h, err)
	}
	d, err := ParseGateDone([]byte(`{"at":"1796635804.5","exit":3,"released":true}`))
	if err != nil || d.Exit != 3 || !d.Released {
		t.Errorf("done = %+v, %v", d, err)
	}
	if _, err := ParseGateHeld([]byte("")); err == nil {
		t.Error("empty record accepted")
	}
	if got, want := epochTime("1796635804.5"), "2026-12-07T09:30:04.5Z"; got != want {
		t.Errorf("epochTime = %q, want %q", got, want)
	}
	if got := epochTime("soon"); got != "soon" {
		t.Errorf("epochTime(soon) = %q", got)
	}
}

func TestJudgeJoins(t *testing.T) {
	pod := map[string]string{"net": "net:[1]", "ipc": "ipc:[2]", "uts": "uts:[3]"}
	host := map[string]string{"net": "net:[10]", "ipc": "ipc:[20]", "uts": "uts:[30]"}
	joins, foreign := JudgeJoins(pod, host, host)
	if !foreign || len(joins) != 3 || joins[0].Type != "net" || joins[0].Container != "net:[10]" || joins[0].Pod != "net:[1]" {
		t.Errorf("all the host's: %+v, foreign %v", joins, foreign)
	}
	if _, foreign := JudgeJoins(pod, host, pod); foreign {
		t.Error("the pod's own namespaces judged foreign")
	}
	none := map[string]string{"net": "none", "ipc": "none", "uts": "none"}
	if _, foreign := JudgeJoins(pod, host, none); foreign {
		t.Error("a container that never started judged foreign")
	}
	if _, foreign := JudgeJoins(pod, host, map[string]string{"net": "net:[10]", "ipc": "ipc:[2]", "uts": "uts:[3]"}); !foreign {
		t.Error("the host's netns alone is foreign too")
	}
}

func TestParseRunc(t *testing.T) {
	h, err := ParseRuncHeld([]byte(`{"at":"1.5","gate_pid":9,"container_id":"c1","bundle":"/b","joins":"/proc/4242/ns/net /proc/4242/ns/ipc"}`))
	if err != nil || h.Joins != "/proc/4242/ns/net /proc/4242/ns/ipc" || h.ContainerID != "c1" {
		t.Errorf("held = %+v, %v", h, err)
	}
	d, err := ParseRuncDone([]byte(`{"at":"2","exit":0,"released":true,"pid":77,"net":"net:[10]","ipc":"ipc:[20]","uts":"uts:[30]"}`))
	if err != nil || d.PID != 77 || d.Net != "net:[10]" || !d.Released {
		t.Errorf("done = %+v, %v", d, err)
	}
}

func TestParseGateRecord(t *testing.T) {
	dels, err := ParseGateRecord([]byte(`{"at":"1.5","plugin":"loopback","container_id":"a1","netns":""}
{"at":"2.5","plugin":"loopback","container_id":"b2","netns":"/var/run/netns/cni-1"}

`))
	if err != nil || len(dels) != 2 || dels[0].ContainerID != "a1" || dels[0].NetNS != "" || dels[1].NetNS != "/var/run/netns/cni-1" {
		t.Errorf("dels = %+v, %v", dels, err)
	}
	if _, err := ParseGateRecord([]byte("{\n")); err == nil {
		t.Error("a torn line accepted")
	}
}

func TestNewLines(t *testing.T) {
	seen := map[string]bool{"a": true, "c": true}
	if got := NewLines([]string{"a", "b", "c", "d"}, seen); len(got) != 2 || got[0] != "b" || got[1] != "d" {
		t.Errorf("NewLines = %v", got)
	}
	if got := NewLines([]string{"a"}, nil); len(got) != 1 {
		t.Errorf("NewLines without a baseline = %v", got)
	}
}
