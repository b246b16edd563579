package main

import (
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/scenarios"
)

// A bisect step judges host lo, unless the run did not reproduce the
// timeline: then it is a skip, whatever lo did. run judges everything.
func TestExitCodesFollowTheChecks(t *testing.T) {
	ok := func(c scenarios.Check) runner.Check { return runner.NewCheck(c, "", true, "") }
	bad := func(c scenarios.Check) runner.Check { return runner.NewCheck(c, "", false, "saw this") }
	result := func(loUp, expectUp bool, checks ...runner.Check) runner.Result {
		r := runner.Result{Scenario: "s", LoUp: loUp, ExpectedLoUp: expectUp, Checks: checks}
		r.Judge(nil)
		return r
	}
	cases := []struct {
		name              string
		res               runner.Result
		run, bisect       int
		bisectErrContains string
	}{
		{"lo down as expected", result(false, false, ok(scenarios.CheckRealReboot), ok(scenarios.CheckDelNamesHost)), exitGood, exitBad, ""},
		{"lo up as expected", result(true, true, ok(scenarios.CheckRealReboot)), exitGood, exitGood, ""},
		{"lo up, DEL named nothing although the PID was taken", result(true, false, ok(scenarios.CheckRealReboot), bad(scenarios.CheckDelNamesHost)), exitBad, exitNoVerdict, "del-names-host-netns"},
		{"outcome check failed: bisect still judges lo", result(false, false, bad(scenarios.CheckStatfsLine)), exitBad, exitBad, ""},
		{"no verdict", runner.Result{Scenario: "s", Error: "boom"}, exitNoVerdict, exitNoVerdict, "boom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code, _ := runCode([]runner.Result{c.res}); code != c.run {
				t.Errorf("run: exit %d, want %d", code, c.run)
			}
			code, err := bisectCode([]runner.Result{c.res})
			if code != c.bisect {
				t.Errorf("bisect: exit %d, want %d", code, c.bisect)
			}
			if c.bisectErrContains != "" && (err == nil || !strings.Contains(err.Error(), c.bisectErrContains)) {
				t.Errorf("bisect: error %v, want it to name %q", err, c.bisectErrContains)
			}
		})
	}
}

func TestAllSkipsWhatTheNodeCannotPlay(t *testing.T) {
	all, err := scenarios.Select("all", scenarios.TierVM)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := crionode.Lookup(crionode.CRIO134)
	keep, skipped := runnable(all, cur)
	if len(skipped) != 4 || len(keep) != len(all)-4 {
		t.Fatalf("crio-1.34: kept %d, skipped %v", len(keep), skipped)
	}
	old, _ := crionode.Lookup(crionode.CRIO117)
	if keep, skipped := runnable(all, old); len(skipped) != 2 || len(keep) != len(all)-2 {
		t.Fatalf("crio-1.17 plays all but join-race and kubelet-reboot: kept %d, skipped %v", len(keep), skipped)
	}
	for name, n := range map[string]int{crionode.CRIDockerd: 5, crionode.Containerd: 4} {
		p, _ := crionode.Lookup(name)
		keep, skipped = runnable(all, p)
		if len(skipped) != n || len(keep) != len(all)-n {
			t.Fatalf("%s: kept %d, skipped %v", name, len(keep), skipped)
		}
		for _, sc := range keep {
			if sc.NeedsCRIO() {
				t.Errorf("%s keeps %s, which needs CRI-O", name, sc.Name)
			}
		}
	}
}
