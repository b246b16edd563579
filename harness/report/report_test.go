package report

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/scenarios"
)

func results() []runner.Result {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return []runner.Result{
		{Scenario: "ephemeral-reused", PluginVersion: "v1.10.0", NetnsPath: "/proc/30000/ns/net", PIDReused: true, DelError: "a|b", LoUp: false, ExpectedLoUp: false, Pass: true,
			Timeline: []runner.Event{{At: t0, Step: "sandbox create"}, {At: t0.Add(1500 * time.Millisecond), Step: "reboot"}}},
		{Scenario: "pinned-reused", PluginVersion: "custom:/tmp/a|b", NetnsPath: "/run/netns/x|y", LoUp: false, ExpectedLoUp: true},
		{Scenario: "del-retry", PluginVersion: "v1.10.0", Error: "boot timed out"},
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GITHUB_STEP_SUMMARY", filepath.Join(dir, "step-summary.md"))
	summary, err := Write(dir, Run{ID: "r1", Tier: "sandbox", Started: time.Now(), Artifacts: []string{"/tmp/pidreuse-r1/artifacts/sb1"}}, results())
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(summary)
	for _, want := range []string{"1 passed, 1 failed, 1 without a verdict", "| ephemeral-reused | v1.10.0 | `/proc/30000/ns/net` | true | error: a\\|b | DOWN | DOWN | **pass** |", "**FAIL**", "No verdict: boot timed out", "`+  1.500s` reboot",
		// A | in a path must not split a cell.
		"| pinned-reused | custom:/tmp/a\\|b | `/run/netns/x\\|y` |",
		"Artifacts of the failed run (serial console, journals, agent state): `/tmp/pidreuse-r1/artifacts/sb1`"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	step, _ := os.ReadFile(filepath.Join(dir, "step-summary.md"))
	if string(step) != string(md) {
		t.Error("GITHUB_STEP_SUMMARY did not get the summary")
	}
	if _, err := os.Stat(filepath.Join(dir, "results", "ephemeral-reused_v1.10.0.json")); err != nil {
		t.Error(err)
	}
	var s junitSuite
	data, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err := xml.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if s.Tests != 3 || s.Failures != 1 || s.Errors != 1 {
		t.Fatalf("junit counts: %+v", s)
	}
}

func TestChecksInSummaryAndJUnit(t *testing.T) {
	rs := []runner.Result{{Scenario: "crio-kubelet-reboot", PluginVersion: "crio plugin_dirs", LoUp: true, ExpectedLoUp: true,
		Checks: []runner.Check{
			runner.NewCheck(scenarios.CheckPinGone, "web", true, "line|1"),
			runner.NewCheck(scenarios.CheckNoLivenessFailure, "", false, "a\nb"),
		}}}
	md := Markdown(Run{ID: "r2", Tier: "vm", Inputs: []string{"crio: `/tmp/crio` sha256 abc"}}, rs)
	for _, want := range []string{"- crio: `/tmp/crio` sha256 abc\n", "| `pin-gone` (outcome) | after the reboot CRI-O finds each old sandbox's pinned netns gone (web) | yes | line\\|1 |", "| `no-liveness-failure` (outcome) | kubelet logs no failed liveness probe | **NO** | a<br>b |"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	out, err := JUnit(Run{ID: "r2", Tier: "vm"}, rs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "1 checks failed") || !strings.Contains(string(out), "check failed: no-liveness-failure (kubelet logs no failed liveness probe): a") {
		t.Errorf("junit does not name the failed check:\n%s", out)
	}
}

func TestPhasesInSummary(t *testing.T) {
	rs := results()
	rs[0].Phases = &runner.Phases{BootS: 30.5, ReadyS: 9, PodsS: 18.9, PrepareS: 2.7, RebootS: 33, DelS: 5.6, ChecksS: 30.7, WallS: 130.4}
	md := Markdown(Run{ID: "r1", Tier: "vm", Started: time.Now()}, rs)
	for _, want := range []string{
		"| phase (s) | boot | ready | pods | prepare | reboot | DEL | checks | teardown | wall |",
		"| seconds | 30.5 | 9.0 | 18.9 | 2.7 | 33.0 | 5.6 | 30.7 | 0.0 | **130.4** |",
		"| share | 23% | 7% | 14% | 2% | 25% | 4% | 24% | 0% | 100% |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	// A result without phases (the sandbox tier) has no table.
	if strings.Count(md, "| phase (s) |") != 1 {
		t.Errorf("want one phases table:\n%s", md)
	}
}
