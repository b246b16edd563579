package odds

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

func sampleReport() Report {
	holder := kubeletThread(1630)
	pause := agentapi.PIDHolder{PID: 1702, Exists: true, Comm: "pause", TGID: 1702, TGIDComm: "pause"}
	rep := Report{
		Node:    Node{Profile: "crio-1.17", Pods: []string{"web", "sdn", "batch", "odds-1"}, ExtraPods: 1},
		Runtime: "cri-o 1.17.5 (CRI v1alpha2)", Pinning: "manage_ns_lifecycle = false", DelPath: "/proc/<old infra pid>/ns/net",
		PIDMax: 4194304, Reboots: 3, Started: time.Unix(0, 0), Finished: time.Unix(600, 0),
		Cycles: []Cycle{
			{Index: 1, Sandboxes: []SandboxOutcome{
				{Sandbox: Sandbox{Pod: "web", PID: 1630}, Dels: 1, DelNetns: "/proc/1630/ns/net", NsLastPID: 1980, Held: true, Holder: &holder, Entered: EnteredHost, Hit: true,
					Journal: []JournalDel{{Time: "Nov 26 03:48:50.065997", Netns: "/proc/1630/ns/net", Issuer: "kubelet's StopPodSandbox through CRI-O"}}},
				{Sandbox: Sandbox{Pod: "batch", PID: 2230}, Dels: 1, NsLastPID: 2010, Entered: EnteredNothing},
			}, Hit: true, Held: 1, FirstDelSec: 40, LastDelSec: 44, NsLastPIDMin: 1980, NsLastPIDMax: 2010, Symptom: Symptom{LoUp: false, LoSetUp: true, LivenessFailed: true, SDNRestarts: 1}},
			{Index: 2, Sandboxes: []SandboxOutcome{
				{Sandbox: Sandbox{Pod: "web", PID: 1702}, Dels: 1, DelNetns: "/proc/1702/ns/net", NsLastPID: 1900, Held: true, Holder: &pause, Entered: EnteredOther},
				{Sandbox: Sandbox{Pod: "batch", PID: 2400}, Dels: 1, NsLastPID: 1950, Entered: EnteredNothing},
			}, Held: 1, FirstDelSec: 39, LastDelSec: 41, NsLastPIDMin: 1900, NsLastPIDMax: 1950, Symptom: Symptom{LoUp: true}},
		},
		Stopped: "stopped by the user after cycle 2 of 3",
	}
	rep.summarize()
	return rep
}

// The report dir has the JSON, the plot (a real SVG from gonum/plot) and a
// summary that links it, states the rate and has a row per cycle.
func TestWriteReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	rep := sampleReport()
	summary, err := Write(dir, rep)
	if err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, PlotFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("</svg>")) || len(svg) < 2000 {
		t.Errorf("odds.svg is not a drawn SVG (%d bytes)", len(svg))
	}
	md, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"1/2 = 50% (95% Wilson 9.5%–91%)",
		"| wall time | 10m0s |",
		"](odds.svg)",
		"| 1 **HIT** | 40.0–44.0 s | web=1630 batch=2230 | 1980–2010 | web 1630 → kubelet (thread of kubelet 612), host netns",
		"| 2 | 39.0–41.0 s |",
		"Stopped early:** stopped by the user after cycle 2 of 3",
		"kubelet (a thread: kubelet), host netns: 1",
		"pause, a pod's netns: 1",
		"cycle 1, web: `Nov 26 03:48:50.065997` DEL netns \"/proc/1630/ns/net\", issued by kubelet's StopPodSandbox",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	var back Report
	data, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Rate.Hits != 1 || back.Reuse.Hits != 2 || back.PerSandbox.Trials != 4 || len(back.Cycles) != 2 {
		t.Errorf("odds.json: rate %+v reuse %+v per sandbox %+v", back.Rate, back.Reuse, back.PerSandbox)
	}
}

// No cycle measured: still a report, without a plot.
func TestWriteReportWithoutCycles(t *testing.T) {
	dir := t.TempDir()
	rep := Report{Node: Node{Profile: "crio-1.17"}, Reboots: 2, Stopped: "interrupted in cycle 1"}
	rep.summarize()
	if _, err := Write(dir, rep); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PlotFile)); !os.IsNotExist(err) {
		t.Errorf("a plot without cycles: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, SummaryFile))
	if !strings.Contains(string(md), "no cycles") {
		t.Errorf("summary:\n%s", md)
	}
}

// A small pid_max is drawn, a PNG too.
func TestWritePlotPNGWithPIDMax(t *testing.T) {
	rep := sampleReport()
	rep.PIDMax = 2048
	path := filepath.Join(t.TempDir(), "odds.png")
	if err := WritePlot(rep, path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Fatalf("not a PNG: %v", err)
	}
}

func TestPrintTable(t *testing.T) {
	var b bytes.Buffer
	PrintTable(&b, sampleReport())
	for _, want := range []string{"CYCLE", "host lo taken down: 1/2 = 50%", "stopped early: stopped by the user"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
