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
