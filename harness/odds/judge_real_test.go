package odds

import (
	"os"
	"testing"
)

// One real cycle of `pidreuse odds --node crio-1.17 --pid-max 1024`
// (testdata: the recorder's lines of the new boot, and CRI-O's journal of
// it cut to the lines ParseCNIOps reads). The previous boot's five pods had
// infra PIDs 808 to 986; kubelet stopped them 133.7 to 137.9 s into the new
// boot, when it had handed out PIDs up to 676–731: none was reached, CRI-O
// found each /proc/<pid>/ns/net missing and ran DEL with an empty netns.
func TestJudgeDelsOnARealCycle(t *testing.T) {
	recData, err := os.ReadFile("testdata/cnirecord-1.17-odds-cycle.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	journal, err := os.ReadFile("testdata/crio-1.17-odds-cycle.journal")
	if err != nil {
		t.Fatal(err)
	}
	const boot = "43fbd2e9-4ade-43f5-8515-e37c21db579b"
	recs, skipped := ParseRecords(string(recData), boot)
	if len(recs) != 15 || skipped != 0 || Adds(recs) != 5 {
		t.Fatalf("%d records (%d ADDs), %d skipped", len(recs), Adds(recs), skipped)
	}
	old := []Sandbox{
		{Pod: "odds-1", ID: "b5e7a14b4067005d9d0f71f928289e1677f6a25cfc9ced9c0d6831e22e2adf66", PID: 808, PIDSource: "infra"},
		{Pod: "batch", ID: "c465714aeb3609f59318804e40d788c13a6cbf723782d4fe58e899b3be3e1318", PID: 831, PIDSource: "infra"},
		{Pod: "web", ID: "18ba0708ed7bf1cce383398547fef9289afa84e0a9250a18e27309aa92bce7fa", PID: 852, PIDSource: "infra"},
		{Pod: "odds-3", ID: "711783c9467cc0b145609446ffdab45256ae2161a20abbca6da2522bcdb960b7", PID: 920, PIDSource: "infra"},
		{Pod: "odds-2", ID: "072f89d314e5b766cd647907ed654a19ce8c62eedcc8c2e87db8823088bae2bb", PID: 986, PIDSource: "infra"},
	}
	out := JudgeDels(old, recs, string(journal))
	for _, o := range out {
		if o.Dels != 1 || o.DelNetns != "" || o.Held || o.Hit || o.Entered != EnteredNothing || o.NsLastPID >= o.PID {
			t.Errorf("%s: %+v", o.Pod, o)
		}
		if len(o.Journal) != 1 || o.Journal[0].Netns != "" || o.Journal[0].Issuer != "kubelet's StopPodSandbox through CRI-O" {
			t.Errorf("%s: CRI-O's DEL lines %+v", o.Pod, o.Journal)
		}
		// ocicni's own loopback teardown in the empty path failed first.
		if o.Journal[0].Error == "" {
			t.Errorf("%s: the loopback teardown error is not attached to its DEL", o.Pod)
		}
	}
	c := NewCycle(1, boot, out, recs, Symptom{LoUp: true})
	if c.Hit || c.Held != 0 || c.NsLastPIDMin != 676 || c.NsLastPIDMax != 731 || c.PIDMax != 1024 || c.Wrapped || c.LoDownAtDel || c.OtherDels != 0 {
		t.Errorf("cycle: %+v", c)
	}
	if c.FirstDelSec != 133.66 || c.LastDelSec != 137.91 {
		t.Errorf("boot to DELs: %.2f–%.2f s", c.FirstDelSec, c.LastDelSec)
	}
	if len(c.Notes) != 0 {
		t.Errorf("notes: %q", c.Notes)
	}
}
