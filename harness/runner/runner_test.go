package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/node/agent"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// fakeNode answers agent steps from a table, so the runner's judgement can
// be tested without namespaces. Real nodes are covered by the e2e suites.
type fakeNode struct {
	bootID   string
	loUp     bool
	pidTaken bool // by chance, before the scenario controls it
	// reuseLies makes `pid reuse` answer success without a host process
	// taking the PID: a broken agent.
	reuseLies bool
	delErr    []string // per DEL call, in order
	delTgt    agentapi.NetnsTarget
	probeOK   bool
	rebooted  bool
	stuckDel  bool // DEL's plugin never returns
	inAgent   bool // the steps below are the agent's, inside one call
	reused    map[int]bool
	calls     []string
	// execs are the calls the harness made into the node, by step.
	execs []string
}

func (f *fakeNode) Name() string { return "fake" }
func (f *fakeNode) Reboot(context.Context) error {
	f.rebooted = true
	return nil
}
func (f *fakeNode) CollectArtifacts(context.Context, string) error { return nil }
func (f *fakeNode) Close(context.Context) error                    { return nil }

func (f *fakeNode) Exec(ctx context.Context, argv ...string) (harness.ExecResult, error) {
	if !f.inAgent {
		f.execs = append(f.execs, stepName(argv[1:]))
	}
	if len(argv) > 3 && argv[1] == "trials" {
		// The node agent's own play of a phase, over this table's steps.
		var req agentapi.TrialsRequest
		if err := json.Unmarshal([]byte(argv[4]), &req); err != nil {
			return harness.ExecResult{ExitCode: 2, Stderr: []byte(err.Error())}, nil
		}
		f.inAgent = true
		rep, err := agent.PlayTrials(ctx, fakeSteps{f}, argv[2], req)
		f.inAgent = false
		if err != nil {
			return harness.ExecResult{ExitCode: 1, Stderr: []byte(err.Error())}, nil
		}
		data, _ := json.Marshal(rep)
		return harness.ExecResult{Stdout: data}, nil
	}
	step := argv[1]
	if len(argv) > 2 {
		step += " " + argv[2]
	}
	if argv[1] == "boot" || argv[1] == "probe" {
		step = argv[1]
	}
	f.calls = append(f.calls, step)
	var out any
	switch step {
	case "sandbox create":
		out = agentapi.Sandbox{ID: argv[4], NetnsPath: "/proc/30000/ns/net", HolderPID: 30000, BootID: "boot-1"}
	case "cni add":
		out = agentapi.CNIResult{Command: "ADD"}
	case "boot":
		id := "boot-1"
		if f.rebooted {
			id = f.bootID
		}
		out = agentapi.Boot{BootID: id}
	case "link show":
		out = agentapi.Link{Name: "lo", Up: f.loUp || !f.rebooted || !f.deleted()}
	case "link up":
		f.loUp = true
		out = agentapi.Link{Name: "lo", Up: true}
	case "pid status":
		pid, _ := strconv.Atoi(argv[4])
		switch {
		case f.pidTaken:
			out = agentapi.PIDStatus{PID: pid, Exists: true, Comm: "sshd", NetnsTarget: agentapi.TargetHost}
		case f.reused[pid] && !f.reuseLies:
			out = agentapi.PIDStatus{PID: pid, Exists: true, Comm: "sleep", NetnsTarget: agentapi.TargetHost}
		default:
			out = agentapi.PIDStatus{PID: pid, NetnsTarget: agentapi.TargetMissing}
		}
	case "pid reuse":
		pid, _ := strconv.Atoi(argv[4])
		if f.reused == nil {
			f.reused = map[int]bool{}
		}
		f.reused[pid] = true
		out = agentapi.PIDReuse{PID: pid, Attempts: 1, IsHostNetns: true}
	case "cni del":
		n := f.count("cni del") - 1
		e := ""
		if n < len(f.delErr) {
			e = f.delErr[n]
		}
		out = agentapi.CNIResult{Command: "DEL", NetnsPath: "/proc/30000/ns/net", NetnsTarget: f.delTgt, Error: e}
	case "lo restore":
		var lr agentapi.LoRestore
		lr.Down = f.probe()
		f.calls = append(f.calls, "link up")
		f.loUp = true
		lr.Lo = agentapi.Link{Name: "lo", Up: true}
		lr.Up = f.probe()
		out = lr
	case "probe":
		out = agentapi.Probe{OK: f.probeOK || f.loUp, Error: map[bool]string{true: "", false: "i/o timeout"}[f.probeOK || f.loUp]}
	default:
		return harness.ExecResult{ExitCode: 2, Stderr: []byte("unknown step " + step)}, nil
	}
	data, _ := json.Marshal(out)
	return harness.ExecResult{Stdout: data}, nil
}

func (f *fakeNode) probe() agentapi.Probe {
	f.calls = append(f.calls, "probe")
	ok := f.probeOK || f.loUp
	return agentapi.Probe{OK: ok, Error: map[bool]string{true: "", false: "i/o timeout"}[ok]}
}

// fakeSteps are the agent's steps as fakeNode's table answers them.
type fakeSteps struct{ f *fakeNode }

func (s fakeSteps) call(out any, argv ...string) error {
	res, err := s.f.Exec(context.Background(), append([]string{"nodeagent"}, argv...)...)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return errors.New(string(res.Stderr))
	}
	return json.Unmarshal(res.Stdout, out)
}

func (s fakeSteps) CreateSandbox(_ context.Context, id string, mode agentapi.NetnsMode, pid int) (sb agentapi.Sandbox, err error) {
	err = s.call(&sb, "sandbox", "create", "--id", id, "--mode", string(mode), "--pid", strconv.Itoa(pid))
	return sb, err
}

func (s fakeSteps) CNI(ctx context.Context, command string, req agent.CNIRequest) (r agentapi.CNIResult, err error) {
	if command == "DEL" && s.f.stuckDel {
		<-ctx.Done() // a plugin that never returns, killed at the step's deadline
		return agentapi.CNIResult{Command: "DEL", Error: "signal: killed"}, nil
	}
	err = s.call(&r, "cni", strings.ToLower(command), "--id", req.ID)
	return r, err
}

func (s fakeSteps) Boot() (b agentapi.Boot, err error) { return b, s.call(&b, "boot") }

func (s fakeSteps) ShowLink(name string) (l agentapi.Link, err error) {
	return l, s.call(&l, "link", "show", name)
}

func (s fakeSteps) PIDStatus(pid int) (st agentapi.PIDStatus, err error) {
	return st, s.call(&st, "pid", "status", "--pid", strconv.Itoa(pid))
}

func (s fakeSteps) ReusePID(_ context.Context, pid int) (r agentapi.PIDReuse, err error) {
	return r, s.call(&r, "pid", "reuse", "--pid", strconv.Itoa(pid))
}

func (s fakeSteps) RestoreLo(context.Context, time.Duration, time.Duration) (lr agentapi.LoRestore, err error) {
	return lr, s.call(&lr, "lo", "restore")
}

func (f *fakeNode) count(step string) int {
	n := 0
	for _, c := range f.calls {
		if c == step {
			n++
		}
	}
	return n
}

func (f *fakeNode) deleted() bool { return f.count("cni del") > 0 }

func scenario(t *testing.T, name string) scenarios.Scenario {
	s, err := scenarios.Select(name, scenarios.TierSandbox)
	if err != nil {
		t.Fatal(err)
	}
	return s[0]
}

func run(t *testing.T, node *fakeNode, name string) Result {
	t.Helper()
	res := Run(context.Background(), node, []scenarios.Scenario{scenario(t, name)}, Options{Tier: "sandbox", PluginDir: "/p", PluginVersion: "vX"})
	if len(res) != 1 {
		t.Fatalf("got %d results", len(res))
	}
	return res[0]
}

func TestVerdicts(t *testing.T) {
	// lo went down as expected: pass, with the symptom and the fix recorded.
	r := run(t, &fakeNode{bootID: "boot-2", delTgt: agentapi.TargetHost}, "ephemeral-reused")
	if r.Error != "" || !r.Pass || r.LoUp || !r.Restored || r.ProbeWhileDown == "none" {
		t.Fatalf("ephemeral-reused: %+v", r)
	}
	// lo stayed up where the matrix expects it down: a FAIL, not an error.
	r = run(t, &fakeNode{bootID: "boot-2", loUp: true, delTgt: agentapi.TargetHost}, "ephemeral-reused")
	if r.Error != "" || r.Pass || r.Verdict() != "FAIL" {
		t.Fatalf("mismatch must be FAIL: %+v", r)
	}
}

func TestNoVerdict(t *testing.T) {
	cases := map[string]struct {
		node     *fakeNode
		scenario string
		want     string
	}{
		"no real reboot":     {&fakeNode{bootID: "boot-1"}, "ephemeral-reused", "did not reboot"},
		"PID reused by luck": {&fakeNode{bootID: "boot-2", pidTaken: true}, "ephemeral-not-reused", "by chance"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := run(t, c.node, c.scenario)
			if r.Verdict() != "NO-VERDICT" || !strings.Contains(r.Error, c.want) {
				t.Fatalf("want no verdict with %q, got %s: %q", c.want, r.Verdict(), r.Error)
			}
		})
	}
}

// A check that does not hold fails the scenario even when host lo ended as
// expected; a timeline check says the run cannot judge the component.
func TestFailedChecks(t *testing.T) {
	cases := map[string]struct {
		node     *fakeNode
		scenario string
		failed   string
		timeline bool
	}{
		"first DEL did not fail": {&fakeNode{bootID: "boot-2", delTgt: agentapi.TargetHost}, "del-retry", "first-del-fails", true},
		"probe blind to symptom": {&fakeNode{bootID: "boot-2", probeOK: true, delTgt: agentapi.TargetHost}, "ephemeral-reused", "own-address-unreachable", false},
		"reuse step lied":        {&fakeNode{bootID: "boot-2", reuseLies: true, delTgt: agentapi.TargetHost}, "ephemeral-reused", "pid-taken-by-host", true},
		"DEL named nothing":      {&fakeNode{bootID: "boot-2", delTgt: agentapi.TargetMissing}, "ephemeral-reused", "del-names-host-netns", true},
		"pin still there":        {&fakeNode{bootID: "boot-2", loUp: true, delTgt: agentapi.TargetOther}, "pinned-reused", "del-names-nothing", true},
		"no symptom":             {&fakeNode{bootID: "boot-2", loUp: true, delTgt: agentapi.TargetHost}, "ephemeral-reused", "lo-up-restores", false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := run(t, c.node, c.scenario)
			if r.Error != "" || r.Pass || r.Verdict() != "FAIL" {
				t.Fatalf("want FAIL with a verdict, got %s (error %q)", r.Verdict(), r.Error)
			}
			var ids []string
			for _, ch := range r.FailedChecks() {
				ids = append(ids, ch.ID)
			}
			if !slices.Contains(ids, c.failed) {
				t.Fatalf("failed checks %v, want %s among them", ids, c.failed)
			}
			if got := len(r.TimelineBroken()) > 0; got != c.timeline {
				t.Fatalf("timeline broken %v, want %v (%+v)", got, c.timeline, r.FailedChecks())
			}
		})
	}
}

// Every check the scenario model lists is recorded, on every scenario.
func TestEveryExpectedCheckIsRecorded(t *testing.T) {
	for _, sc := range scenarios.All() {
		if !sc.RunsOn(scenarios.TierSandbox) {
			continue
		}
		for _, v := range []string{"v0.8.7", "v1.10.0", "debian", "custom:/x"} {
			node := &fakeNode{bootID: "boot-2", delTgt: agentapi.TargetMissing}
			switch {
			case sc.RetryDEL:
				node.delErr = []string{"injected"}
			case v == "v0.8.7":
				node.delErr = []string{"plugin type=loopback: " + StatfsLine("/proc/30000/ns/net")}
			}
			if sc.Reproduces() {
				node.delTgt = agentapi.TargetHost
			} else {
				node.loUp = true
			}
			res := Run(context.Background(), node, []scenarios.Scenario{sc}, Options{Tier: "sandbox", PluginDir: "/p", PluginVersion: v})[0]
			want := sc.Checks(v, scenarios.TierSandbox)
			if len(res.Checks) != len(want) {
				t.Errorf("%s %s: %d checks recorded, model lists %d: %+v", sc.Name, v, len(res.Checks), len(want), res.Checks)
			}
			if !res.Pass {
				t.Errorf("%s %s: %+v", sc.Name, v, res.FailedChecks())
			}
		}
	}
}

func TestHolderPIDsGoDown(t *testing.T) {
	node := &fakeNode{bootID: "boot-2"}
	r := New(node, Options{Tier: "sandbox"})
	var pids []string
	for i := 0; i < 3; i++ {
		if _, err := r.PrepareWith(context.Background(), scenario(t, "pinned-reused"), Plugins{Dir: "/p"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, t := range r.Trials() {
		pids = append(pids, t.res.Timeline[0].Detail)
	}
	want := []string{"PID 30000", "PID 29000", "PID 28000"}
	for i, w := range want {
		if !strings.Contains(pids[i], w) {
			t.Errorf("trial %d: %q, want %s", i, pids[i], w)
		}
	}
}

func TestFirstTrialShiftsIDsAndPIDs(t *testing.T) {
	node := &fakeNode{bootID: "boot-2"}
	r := New(node, Options{Tier: "vm", FirstTrial: 2})
	tr, err := r.PrepareWith(context.Background(), scenario(t, "pinned-reused"), Plugins{Dir: "/p"})
	if err != nil {
		t.Fatal(err)
	}
	if tr.id != "pinned-reused-2" || !strings.Contains(tr.res.Timeline[0].Detail, "PID 28000") {
		t.Fatalf("id %q, first step %q: want pinned-reused-2 at PID 28000", tr.id, tr.res.Timeline[0].Detail)
	}
}

func TestWhileLoDownRunsBeforeLoIsSetUp(t *testing.T) {
	node := &fakeNode{bootID: "boot-2", delTgt: agentapi.TargetHost}
	var loUpThen bool
	called := 0
	opts := Options{Tier: "sandbox", PluginDir: "/p", WhileLoDown: func(context.Context) error {
		called++
		loUpThen = node.loUp
		return nil
	}}
	res := Run(context.Background(), node, []scenarios.Scenario{scenario(t, "ephemeral-reused")}, opts)
	if called != 1 || loUpThen || !res[0].Pass || !res[0].Restored {
		t.Fatalf("called %d times, lo up then %v, result %+v", called, loUpThen, res[0])
	}
	// lo stays up: nothing to watch.
	called = 0
	Run(context.Background(), &fakeNode{bootID: "boot-2", loUp: true}, []scenarios.Scenario{scenario(t, "pinned-reused")}, opts)
	if called != 0 {
		t.Fatalf("WhileLoDown ran although lo stayed up")
	}
	// Its error is the scenario's: no verdict.
	opts.WhileLoDown = func(context.Context) error { return errors.New("journal unreadable") }
	res = Run(context.Background(), &fakeNode{bootID: "boot-2", delTgt: agentapi.TargetHost}, []scenarios.Scenario{scenario(t, "ephemeral-reused")}, opts)
	if res[0].Error != "journal unreadable" {
		t.Fatalf("error %q", res[0].Error)
	}
}

func stepName(args []string) string {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// A phase of every trial is one call into the node: the legacy matrix on
// a TCG guest paid a round trip and often a process start for each of
// ~40 steps.
func TestMatrixIsOneCallPerPhase(t *testing.T) {
	node := &fakeNode{bootID: "boot-2", delTgt: agentapi.TargetHost}
	var scs []scenarios.Scenario
	for _, name := range []string{"ephemeral-reused", "ephemeral-not-reused", "pinned-reused", "del-retry"} {
		scs = append(scs, scenario(t, name))
	}
	var progress []string
	res := Run(context.Background(), node, scs, Options{Tier: "sandbox", PluginDir: "/p", PluginVersion: "debian",
		OnStep: func(sc, step string) {
			if strings.HasPrefix(step, "in the node") {
				// Said before the call: the node has played nothing yet.
				progress = append(progress, fmt.Sprintf("%s: %s (after %d calls)", sc, step, len(node.execs)))
			}
		}})
	for _, want := range []string{"ephemeral-reused: in the node: sandbox create, CNI ADD (after 0 calls)",
		"ephemeral-reused: in the node: new boot, PID reuse, CNI DEL, host lo (after 1 calls)",
		"del-retry: in the node: new boot, CNI DEL (first try), PID reuse, CNI DEL, host lo (after 1 calls)"} {
		if !slices.Contains(progress, want) {
			t.Errorf("progress lacks %q: %q", want, progress)
		}
	}
	if want := []string{"trials prepare", "trials finish"}; !slices.Equal(node.execs, want) {
		t.Errorf("calls into the node %v, want %v", node.execs, want)
	}
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		if r.Error != "" || len(r.Checks) == 0 {
			t.Errorf("%s: error %q, %d checks", r.Scenario, r.Error, len(r.Checks))
		}
		// The node's marks are placed in order on the harness's clock.
		for i := 1; i < len(r.Timeline); i++ {
			if r.Timeline[i].At.Before(r.Timeline[i-1].At) {
				t.Errorf("%s: %s before %s", r.Scenario, r.Timeline[i].Step, r.Timeline[i-1].Step)
			}
		}
	}
}

// A plugin that never returns ends its trial as a step past its deadline,
// named as the single step was, and the runner plays nothing after it.
func TestStuckDELTimesOutAndStopsTheRest(t *testing.T) {
	node := &fakeNode{bootID: "boot-2", delTgt: agentapi.TargetHost, stuckDel: true}
	ctx := deadline.WithScale(context.Background(), 0.001) // 120 ms a step
	res := Run(ctx, node, []scenarios.Scenario{scenario(t, "ephemeral-reused"), scenario(t, "pinned-reused")}, Options{Tier: "sandbox", PluginDir: "/p"})
	if !strings.Contains(res[0].Error, "timed out: nodeagent cni del after 120ms") {
		t.Errorf("first: %q", res[0].Error)
	}
	if !strings.Contains(res[1].Error, "not played: an earlier step timed out") {
		t.Errorf("second: %q", res[1].Error)
	}
	if res[0].Verdict() != "NO-VERDICT" || res[1].Verdict() != "NO-VERDICT" {
		t.Errorf("verdicts %s, %s", res[0].Verdict(), res[1].Verdict())
	}
}
