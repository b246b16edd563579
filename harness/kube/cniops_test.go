package kube

import (
	"os"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// CRI-O 1.17.5 after a reboot, the first boot's pods at PIDs from 20000
// on, host processes holding web's and sdn's old infra PIDs: kubelet
// stops each old sandbox; web's DEL enters /proc/20689/ns/net (the
// host's netns), batch's (PID not taken) gets an empty path.
func TestParseCNIOps117(t *testing.T) {
	ops := ParseCNIOps(readTestdata(t, "crio-1.17-after-reboot.journal"))
	web := DelsOf(ops, "dcb147f70b81e73f1d2e06261dc20031b3237b1d558579d3956ff20e8a36b57b")
	if len(web) != 1 || web[0].NetNS != "/proc/20689/ns/net" || web[0].By != "StopPodSandbox" || web[0].Pod != "web-pidreuse-node" ||
		web[0].Issuer() != "kubelet's StopPodSandbox through CRI-O" {
		t.Fatalf("web's DEL: %+v", web)
	}
	batch := DelsOf(ops, "30fbc3896e3b1412063b05bd24342e4994a332cf539faa5b0ddda0402d2f3cb3")
	if len(batch) != 1 || batch[0].NetNS != "" || batch[0].By != "StopPodSandbox" {
		t.Fatalf("batch's DEL: %+v", batch)
	}
	// At start-up CRI-O only CHECKs the restored sandbox, on its own.
	var checks int
	for _, o := range ops {
		if o.Op == "CHECK" && o.SandboxID == web[0].SandboxID {
			checks++
			if o.By != "" {
				t.Errorf("start-up check attributed to %q", o.By)
			}
		}
	}
	if checks == 0 {
		t.Errorf("no start-up CHECK of web: %+v", ops)
	}
}

// CRI-O 1.34.0 after a reboot: the pins are gone; CRI-O deletes the old
// web sandbox from CNI with an empty netns, on its own at start-up.
func TestParseCNIOps134(t *testing.T) {
	journal := readTestdata(t, "crio-1.34-after-reboot.journal")
	ops := ParseCNIOps(journal)
	web := DelsOf(ops, "c1f188a34eceb55bba9dd60ac9f487d0d31639c6eb642c90593cdbebb5d1c56a")
	if len(web) != 1 || web[0].NetNS != "" || web[0].By != "" || web[0].Op != "DEL" {
		t.Fatalf("web's DEL: %+v", web)
	}
	// That journal is at info level: no CRI request shows, so whose DEL
	// it was is not measured.
	if web[0].Issuer() != "unknown (CRI-O's log level shows no CRI requests)" {
		t.Errorf("issuer %q", web[0].Issuer())
	}
	line := RestoreFailedLine(journal, "02b5206bd2e1502d14ef10f81b999567724cb46868ae1eeea27a43dd97629cac", "/var/run/netns/51a455e8-a58e-4720-bf23-8ef55ff2eb82")
	if line == "" {
		t.Error("the sdn sandbox's restore failure is in the journal")
	}
	if !DeletedWithEmptyNetns(journal, "default", "web-pidreuse-node", web[0].SandboxID) {
		t.Error("web deleted with an empty netns")
	}
}

func TestLivenessFailures(t *testing.T) {
	if got := LivenessFailures(readTestdata(t, "kubelet-1.34-liveness.journal"), "sdn"); len(got) < 3 {
		t.Errorf("kubelet 1.34: %d failures", len(got))
	}
	if got := LivenessFailures(readTestdata(t, "kubelet-1.17-after-reboot.journal"), "sdn"); len(got) < 3 {
		t.Errorf("kubelet 1.17: %d failures", len(got))
	}
	if got := LivenessFailures(readTestdata(t, "kubelet-1.17-after-reboot.journal"), "web"); len(got) != 0 {
		t.Errorf("kubelet 1.17, web: %v", got)
	}
}

// CRI-O 1.17.5 with manage_ns_lifecycle=true after a reboot: the pins are
// gone, each old sandbox is dropped without any CNI DEL.
func TestRestoreFailed117Pinned(t *testing.T) {
	journal := readTestdata(t, "crio-1.17-pinned-after-reboot.journal")
	web := "2ab5b11f752f80f9d5dc0588522eaa99968e4e5e09a4bd43a5b972f0803a7616"
	line := RestoreFailedLine(journal, web, "")
	if !strings.Contains(line, `/var/run/netns/6eb3ff07-d1fe-400f-8ae6-a8a348943ec5`) {
		t.Errorf("web's restore failure: %q", line)
	}
	if RestoreFailedLine(journal, web, "/var/run/netns/other") != "" {
		t.Error("a named pin must match exactly")
	}
	if dels := DelsOf(ParseCNIOps(journal), web); len(dels) != 0 {
		t.Errorf("1.17 dropped the pinned sandbox without a DEL, parsed %+v", dels)
	}
}

// CRI-O 1.34.0 at debug level after a reboot: its CRI requests show, and
// the old web sandbox's DEL (empty netns) ran before any of them: CRI-O
// on its own, at start-up.
func TestParseCNIOps134Debug(t *testing.T) {
	ops := ParseCNIOps(readTestdata(t, "crio-1.34-debug-after-reboot.journal"))
	web := DelsOf(ops, "4543685b5c81d89290254c88b2ca3663ee350a583cfe9b3697732eff65c378dd")
	if len(web) != 1 || web[0].NetNS != "" || !web[0].RequestsLogged || web[0].By != "" {
		t.Fatalf("web's DEL: %+v", web)
	}
	if web[0].Issuer() != "CRI-O itself (no CRI request for the sandbox in flight)" {
		t.Errorf("issuer %q", web[0].Issuer())
	}
}

// Kubelet stops sandboxes in parallel, and CRI-O's two lines per DEL then
// interleave (a two-reboot odds run on crio-1.17 logged Got A, Got B, del,
// del). Real lines of a CRI-O 1.17.5 journal in that order: each sandbox
// keeps its own DEL, issued by kubelet's StopPodSandbox, with its netns.
func TestParseCNIOpsParallelDels(t *testing.T) {
	ops := ParseCNIOps(readTestdata(t, "crio-1.17-parallel-dels.journal"))
	if len(ops) != 2 {
		t.Fatalf("want 2 DELs, got %+v", ops)
	}
	for _, id := range []string{
		"b5e7a14b4067005d9d0f71f928289e1677f6a25cfc9ced9c0d6831e22e2adf66", // odds-1
		"711783c9467cc0b145609446ffdab45256ae2161a20abbca6da2522bcdb960b7", // odds-3
	} {
		dels := DelsOf(ops, id)
		if len(dels) != 1 || dels[0].NetNS != "" || dels[0].By != "StopPodSandbox" {
			t.Errorf("%s: %+v", id[:12], dels)
		}
	}
}

// Real lines of a CRI-O 1.16.2 journal (an e2e run of crio-kubelet-reboot):
// kubelet stops batch (its old PID free) and web (its old PID held by a
// host process) at once; both DELs start, then batch's DEL logs its
// Statfs error after web's DEL began. The error is batch's: it quotes
// batch's netns path.
func TestParseCNIOpsErrorGoesToTheDELWhosePathItNames(t *testing.T) {
	ops := ParseCNIOps(readTestdata(t, "crio-1.16-parallel-dels.journal"))
	batch := DelsOf(ops, "bddd59efeb48bd415e76f0bb4f207258c640282a14cc559df9b4786592680126")
	web := DelsOf(ops, "6f3e076281c986c477847e16f973b6ea2eb5c565c401635ef4ccdcbe02b5e436")
	if len(batch) != 1 || batch[0].NetNS != "/proc/20333/ns/net" || !strings.Contains(batch[0].Error, `failed to Statfs "/proc/20333/ns/net": no such file or directory`) {
		t.Errorf("batch's DEL: %+v", batch)
	}
	if len(web) != 1 || web[0].NetNS != "/proc/20323/ns/net" || web[0].Error != "" {
		t.Errorf("web's DEL (its path named a live process): %+v", web)
	}
}
