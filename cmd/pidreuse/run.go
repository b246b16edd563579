package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/harness/report"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/tier"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/scenarios"
)

func cmdRun(ctx context.Context, args []string, bisect bool) (int, error) {
	name := "run"
	if bisect {
		name = "bisect"
	}
	c, err := parseRunFlags(name, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitGood, nil
	}
	if err != nil {
		return exitUsage, err
	}
	c.bisect = bisect
	ctx = deadline.WithScale(ctx, c.timeoutScale)
	scs, err := scenarios.Select(c.scenario, c.tier)
	if err != nil {
		return exitUsage, usageErr{"--scenario: " + err.Error()}
	}
	profile, _ := crionode.Lookup(c.node) // checked with the flags
	if bisect && len(scs) != 1 {
		return exitNoVerdict, usageErr{"bisect: name exactly one --scenario (e.g. ephemeral-reused)"}
	}
	progress := func(msg string) { fmt.Fprintf(os.Stderr, "pidreuse: %s\n", msg) }
	if c.scenario == "all" {
		// "all" means all this node can play; a scenario named on its own
		// that the node cannot play is refused (runKubeScenarios).
		var skipped []string
		scs, skipped = runnable(scs, profile)
		for _, s := range skipped {
			progress("skipped " + s)
		}
	} else {
		for _, sc := range scs {
			if why := profile.Refuses(sc); why != "" {
				return exitNoVerdict, fmt.Errorf("node %s cannot play %s: %s", profile.Name, sc.Name, why)
			}
		}
	}
	// A bug-era node without its CRI-O source cannot run: say so before
	// anything is built, booted or written.
	if c.tier == scenarios.TierVM && needsCRIONode(scs) {
		if err := profile.CheckSources(ctx); err != nil {
			return exitNoVerdict, err
		}
	}
	started := time.Now()
	if err := rootFor(c.tier); err != nil {
		return exitNoVerdict, err
	}
	// A report that was asked for must be writable before any node starts:
	// a release gate must never get exit 0 with its report lost.
	if c.reportDir != "" {
		if err := report.CheckDir(c.reportDir); err != nil {
			return exitNoVerdict, err
		}
	}

	// Before anything is built or booted: the lock covers the run's whole
	// life, and every name the run gives carries its (final) ID.
	rd, err := c.openRunDir()
	if err != nil {
		return exitNoVerdict, err
	}
	defer rd.close()
	c.runDir = rd.path

	var results []runner.Result
	var inputs []string
	var art artifactDirs
	switch c.tier {
	case scenarios.TierSandbox:
		results, err = runSandboxTier(ctx, c, scs, &art, progress)
	case scenarios.TierVM:
		results, inputs, err = runVMTier(ctx, c, scs, &art, progress)
	default:
		err = fmt.Errorf("unknown tier %q: use sandbox or vm", c.tier)
	}
	if err != nil {
		return exitNoVerdict, err
	}
	if c.json {
		enc := json.NewEncoder(os.Stdout)
		for _, r := range results {
			if err := enc.Encode(jsonResult(r)); err != nil {
				return exitNoVerdict, err
			}
		}
	} else {
		printTable(os.Stdout, results)
	}
	if len(results) > 0 && c.reportDir != "" {
		dir := filepath.Join(c.reportDir, c.runID)
		summary, err := report.Write(dir, report.Run{ID: c.runID, Tier: c.tier, Started: started, Inputs: inputs, Artifacts: art.list()}, results)
		if err != nil {
			return exitNoVerdict, err
		}
		progress("report: " + summary)
	}
	if bisect {
		return bisectCode(results)
	}
	return runCode(results)
}

// runnable drops the scenarios the node cannot play (Profile.Refuses), and
// those that force CRI-O's namespace pinning when the node's CRI-O has no
// such switch, and says why for each.
func runnable(scs []scenarios.Scenario, p crionode.Profile) (keep []scenarios.Scenario, skipped []string) {
	for _, sc := range scs {
		if why := p.Refuses(sc); why != "" {
			skipped = append(skipped, sc.Name+": "+why)
			continue
		}
		if sc.DeleteBy == scenarios.CRIO && sc.Pinning != scenarios.PinningDefault && p.PinSwitch == "" {
			skipped = append(skipped, fmt.Sprintf("%s: node %s's CRI-O %s has no namespace pinning switch (try --node crio-1.17)", sc.Name, p.Name, p.CRIO.Version))
			continue
		}
		keep = append(keep, sc)
	}
	return keep, skipped
}

// needsCRIONode says whether any of scs runs on the run's CRI-O node.
func needsCRIONode(scs []scenarios.Scenario) bool {
	for _, sc := range scs {
		if sc.NeedsCRIONode() {
			return true
		}
	}
	return false
}

// rootFor says why tier cannot run without root.
func rootFor(tier string) error {
	if os.Geteuid() == 0 {
		return nil
	}
	switch tier {
	case scenarios.TierSandbox:
		return errors.New("the sandbox tier needs root (it creates pid, net and mount namespaces): run it as root")
	case scenarios.TierVM:
		return errors.New("the vm tier needs root (libvirt's system socket, image builds): run it as root")
	}
	return nil
}

// runCode: 125 if any scenario had no verdict, else 1 on any mismatch.
func runCode(results []runner.Result) (int, error) {
	code := exitGood
	for _, r := range results {
		if r.Error != "" {
			return exitNoVerdict, fmt.Errorf("%s: no verdict: %s", r.Scenario, r.Error)
		}
		if !r.Pass {
			code = exitBad
		}
	}
	return code, nil
}

// bisectCode judges the component, not the expectation: 0 when host lo
// survived, 1 when it went down (or a container joined a foreign
// process's namespaces). A run whose timeline checks failed (no
// real reboot, DEL did not name the host netns although a host process
// took the PID) did not reproduce the scenario: 125, skip, never a
// verdict. Outcome checks (error lines, the symptom) do not decide a
// bisect step: they are the component's behaviour, reported, not judged.
func bisectCode(results []runner.Result) (int, error) {
	for _, r := range results {
		if r.Error != "" {
			return exitNoVerdict, fmt.Errorf("%s: no verdict: %s", r.Scenario, r.Error)
		}
		if broken := r.TimelineBroken(); len(broken) > 0 {
			var names []string
			for _, c := range broken {
				names = append(names, fmt.Sprintf("%s (%s: saw %s)", c.ID, c.Name, shorten(c.Detail, 200)))
			}
			return exitNoVerdict, fmt.Errorf("%s: no verdict: the timeline did not happen as scripted: %s", r.Scenario, strings.Join(names, "; "))
		}
	}
	for _, r := range results {
		// join-race: a container in another process's namespaces is the
		// bug, as host lo down is for the others.
		if !r.LoUp || r.ForeignJoin {
			return exitBad, nil
		}
	}
	return exitGood, nil
}

// artifactDirs collects where the run's nodes kept their artifacts.
type artifactDirs struct {
	mu   sync.Mutex
	dirs []string
}

func (a *artifactDirs) add(dir string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dirs = append(a.dirs, dir)
}

func (a *artifactDirs) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(slices.Values(a.dirs))
}

// runSandboxTier plays scs on sandbox nodes (harness/tier).
func runSandboxTier(ctx context.Context, c runConfig, scs []scenarios.Scenario, art *artifactDirs, progress func(string)) ([]runner.Result, error) {
	agentPath, err := findAgent(c.agentPath)
	if err != nil {
		return nil, err
	}
	sets, err := resolvePlugins(ctx, c, progress)
	if err != nil {
		return nil, err
	}
	return tier.Sandbox(ctx, c.tierRun(scs, sets, agentPath, art, progress))
}

// tierRun is what harness/tier needs of the run.
func (c runConfig) tierRun(scs []scenarios.Scenario, sets []tier.PluginSet, agentPath string, art *artifactDirs, progress func(string)) tier.Run {
	return tier.Run{
		ID: c.runID, Dir: c.runDir, Tier: c.tier, Scenarios: scs, Plugins: sets, AgentPath: agentPath,
		LibvirtURI: c.libvirtURI, LibvirtSocket: c.libvirtSocket, RebootMode: c.rebootMode,
		Keep: c.keep, Bisect: c.bisect, Progress: progress,
		Announce:    sync.OnceFunc(func() { c.announce(progress) }),
		OnArtifacts: art.add,
	}
}

func printTable(w *os.File, results []runner.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tPLUGINS\tNETNS PATH\tPID REUSED\tDEL RESULT\tHOST LO\tEXPECTED\tVERDICT")
	for _, r := range results {
		del := "ok"
		if r.DelError != "" {
			del = "error: " + shorten(r.DelError, 60)
		}
		if r.Error != "" {
			del = "-"
		}
		exp := "UP"
		if !r.ExpectedLoUp {
			exp = "DOWN"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\n", r.Scenario, r.PluginVersion, r.NetnsPath, r.PIDReused, del, r.LoState(), exp, r.Verdict())
	}
	tw.Flush()
	for _, r := range results {
		if r.Runtime != "" {
			fmt.Fprintf(w, "%s: node %s, %s\n", r.Scenario, r.Profile, r.Runtime)
		}
		for _, d := range r.Dels {
			fmt.Fprintf(w, "%s: CNI DEL of %s with netns %q, issued by %s; error: %s\n", r.Scenario, d.Pod, d.NetnsPath, d.Issuer, shorten(runner.OrNone(d.Error), 160))
		}
		if len(r.Joins) > 0 {
			fmt.Fprintf(w, "%s: the started container joined %s namespaces (expected: %s)\n", r.Scenario, joinWord(r.ForeignJoin), joinWord(r.ExpectedForeignJoin))
			for _, j := range r.Joins {
				fmt.Fprintf(w, "%s:   %-3s container %s  pod %s  host %s\n", r.Scenario, j.Type, j.Container, j.Pod, j.Host)
			}
		}
		if r.Error != "" {
			fmt.Fprintf(w, "%s (%s): no verdict: %s\n", r.Scenario, r.PluginVersion, r.Error)
		}
		for _, ch := range r.FailedChecks() {
			fmt.Fprintf(w, "%s: check failed: %s (%s)\n", r.Scenario, ch.Name, shorten(ch.Detail, 200))
		}
	}
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// jsonResult is the --json shape: the runner's result plus the tier-level
// fields a CI job greps for.
func jsonResult(r runner.Result) map[string]any {
	data, _ := json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	m["verdict"] = r.Verdict()
	m["generatedAt"] = time.Now().UTC().Format(time.RFC3339)
	return m
}

// announce names the run and its work dir once its input is checked and
// its first node is about to start (bad input stays one line): what
// `pidreuse clean --run ID` takes, and what a person finds in ps and virsh.
func (c runConfig) announce(progress func(string)) {
	progress(fmt.Sprintf("run %s: work dir %s (locked while the run lives)", c.runID, c.runDir))
}

func joinWord(foreign bool) string {
	if foreign {
		return "the host holder's (foreign)"
	}
	return "only its own pod's"
}
