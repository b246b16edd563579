package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// Holder PIDs are forced far above the PIDs a fresh boot hands out (a TCG
// guest reaches ~400 at SSH time), so no PID is reused by luck: reuse
// happens only when a scenario forces it. They go *down* from the top by a
// wide step because after a forced reuse at P the kernel hands out P+1,
// P+2, … (every agent step and each of its threads takes one): a later
// scenario's PID must not lie in that path. The top stays under the
// default pid_max of 32768.
const (
	HolderPIDTop  = 30000
	HolderPIDStep = 1000
)

// Options configures a run on one node.
type Options struct {
	Tier string
	// PluginDir is the CNI plugin dir as the node sees it.
	PluginDir     string
	PluginVersion string
	// OnStep, if set, is called as each step starts (Ginkgo's By, progress).
	OnStep func(scenario, step string)
	// FirstTrial numbers this runner's first trial, for a node that several
	// runners use one after the other: each trial's sandbox ID and holder
	// PID come from its number and must not repeat on a node.
	FirstTrial int
	// WhileLoDown, if set, runs after a DEL took host lo down and before
	// the runner shows the symptom and sets lo up again: what else a user
	// would see meanwhile (kubelet's liveness probe failing).
	WhileLoDown func(ctx context.Context) error
}

// Plugins names one CNI plugin set as the node sees it.
type Plugins struct {
	Dir     string
	Version string
}

// Trial is a scenario between its ADD and its verdict.
type Trial struct {
	sc    scenarios.Scenario
	pl    Plugins
	id    string
	start time.Time
	res   Result
	sb    agentapi.Sandbox
}

// Runner drives scenarios on one node. Prepare every trial, Reboot once,
// then Finish each: they share the boot cycle but each has its own
// sandbox, PID and verdict.
type Runner struct {
	node   harness.Node
	opts   Options
	trials []*Trial
	// stop is the first step that passed its deadline: the runner plays
	// nothing after it (a stuck plugin would stall every later trial the
	// same way), and each trial not yet judged says why.
	stop error
}

// New returns a runner for node.
func New(node harness.Node, opts Options) *Runner {
	return &Runner{node: node, opts: opts}
}

func (r *Runner) step(t *Trial, step, detail string) {
	t.res.Timeline = append(t.res.Timeline, Event{At: time.Now().UTC(), Step: step, Detail: detail})
	if r.opts.OnStep != nil {
		r.opts.OnStep(t.sc.Name, step)
	}
}

// Prepare creates the scenario's sandbox and runs CNI ADD, before the
// reboot, with the runner's plugins.
func (r *Runner) Prepare(ctx context.Context, sc scenarios.Scenario) (*Trial, error) {
	return r.PrepareWith(ctx, sc, Plugins{Dir: r.opts.PluginDir, Version: r.opts.PluginVersion})
}

// PrepareWith is Prepare with another plugin set, so trials of several
// plugin versions can share one node and one reboot.
func (r *Runner) PrepareWith(ctx context.Context, sc scenarios.Scenario, pl Plugins) (*Trial, error) {
	n := r.opts.FirstTrial + len(r.trials)
	t := &Trial{sc: sc, pl: pl, id: fmt.Sprintf("%s-%d", sc.Name, n), start: time.Now()}
	t.res = Result{Scenario: sc.Name, Tier: r.opts.Tier, Node: r.node.Name(), PluginVersion: pl.Version,
		NetnsMode: string(sc.Netns), ExpectedLoUp: sc.ExpectLoUp}
	r.trials = append(r.trials, t)
	if r.stop != nil {
		return t, t.fail(r.notPlayed())
	}
	t2, err := r.prepare(ctx, t, sc, n)
	r.noteTimeout(err)
	return t2, err
}

// noteTimeout stops the runner when err is a step past its deadline.
func (r *Runner) noteTimeout(err error) {
	if _, ok := deadline.As(err); ok && r.stop == nil {
		r.stop = err
	}
}

// notPlayed is the error of a trial the runner did not play because an
// earlier step timed out.
func (r *Runner) notPlayed() error {
	return fmt.Errorf("not played: an earlier step %w", r.stop)
}

func (r *Runner) prepare(ctx context.Context, t *Trial, sc scenarios.Scenario, n int) (*Trial, error) {
	if sc.DeleteBy != scenarios.LegacyEmulator {
		return t, t.fail(fmt.Errorf("scenario %s: deleter %s is not driven by this runner", sc.Name, sc.DeleteBy))
	}
	if n*HolderPIDStep >= HolderPIDTop-HolderPIDStep {
		return t, t.fail(fmt.Errorf("too many scenarios on one node (%d)", n+1))
	}
	pid := HolderPIDTop - HolderPIDStep*n
	r.step(t, "sandbox create", fmt.Sprintf("%s netns, holder at PID %d", sc.Netns, pid))
	if err := harness.Agent(ctx, r.node, &t.sb, "sandbox", "create", "--id", t.id, "--mode", string(sc.Netns), "--pid", strconv.Itoa(pid)); err != nil {
		return t, t.fail(err)
	}
	t.res.NetnsPath, t.res.HolderPID, t.res.BootIDBefore = t.sb.NetnsPath, t.sb.HolderPID, t.sb.BootID
	r.step(t, "CNI ADD", t.sb.NetnsPath)
	var add agentapi.CNIResult
	if err := harness.Agent(ctx, r.node, &add, r.cniArgs("add", t)...); err != nil {
		return t, t.fail(err)
	}
	return t, nil
}

func (r *Runner) cniArgs(cmd string, t *Trial) []string {
	return []string{"cni", cmd, "--id", t.id, "--cni-bin-dir", t.pl.Dir, "--plugins", strings.Join(t.sc.Plugins, ",")}
}

// Reboot reboots the node once for every prepared trial.
func (r *Runner) Reboot(ctx context.Context) error {
	for _, t := range r.trials {
		if t.res.Error == "" {
			r.step(t, "reboot", r.node.Name())
		}
	}
	if err := r.node.Reboot(ctx); err != nil {
		err = fmt.Errorf("reboot: %w", err)
		for _, t := range r.trials {
			_ = t.fail(err)
		}
		return err
	}
	return nil
}

// Trials are the prepared trials, in order.
func (r *Runner) Trials() []*Trial { return r.trials }

// Result is the trial's result so far, for a caller that stops before
// Finish.
func (t *Trial) Result() Result { return t.res }

// Scenario is the trial's scenario.
func (t *Trial) Scenario() scenarios.Scenario { return t.sc }

func (t *Trial) fail(err error) error {
	if t.res.Error == "" {
		t.res.Error = err.Error()
	}
	return err
}

// Finish plays the rest of the timeline after the reboot and returns the
// verdict: PID reuse, DEL (and its retry), the host lo, and — when lo went
// down — the node's own address unreachable until lo is set up again.
// Every expectation of the scenario is recorded as a check on the way.
func (r *Runner) Finish(ctx context.Context, t *Trial) Result {
	res := r.Play(ctx, t)
	res.Judge(t.sc.Checks(t.pl.Version, r.opts.Tier))
	return res
}

// Play is Finish without the judgement, for a caller that records checks
// of its own after the runner's (kubescenario's legacy-symptom watches
// kubelet) and judges the whole result itself.
func (r *Runner) Play(ctx context.Context, t *Trial) Result {
	if t.res.Error == "" && r.stop != nil {
		_ = t.fail(r.notPlayed())
	}
	if t.res.Error == "" {
		if err := r.finish(ctx, t); err != nil {
			_ = t.fail(err)
			r.noteTimeout(err)
		}
	}
	t.res.DurationMs = time.Since(t.start).Milliseconds()
	return t.res
}

func (r *Runner) finish(ctx context.Context, t *Trial) error {
	var boot agentapi.Boot
	if err := harness.Agent(ctx, r.node, &boot, "boot"); err != nil {
		return err
	}
	t.res.BootIDAfter = boot.BootID
	r.step(t, "new boot", "boot_id "+boot.BootID)
	rebooted := boot.BootID != t.sb.BootID
	t.res.Record(scenarios.CheckRealReboot, "", rebooted, fmt.Sprintf("boot id %s at ADD, %s at DEL", t.sb.BootID, boot.BootID))
	if !rebooted {
		// The holder and its netns are still there: nothing after this
		// would mean what the scenario says.
		return fmt.Errorf("the node did not reboot: boot id %s unchanged", boot.BootID)
	}
	lo, err := r.lo(ctx)
	if err != nil {
		return err
	}
	if !lo.Up {
		return errors.New("host lo is already DOWN before this scenario's DEL: cannot judge it")
	}

	pid := strconv.Itoa(t.sb.HolderPID)
	st, err := r.pidStatus(ctx, pid)
	if err != nil {
		return err
	}
	if st.Exists {
		return fmt.Errorf("PID %d was taken by %q by chance before the scenario could control it", t.sb.HolderPID, st.Comm)
	}
	if t.sc.RetryDEL {
		r.step(t, "CNI DEL (first try)", t.sb.NetnsPath+" names "+string(agentapi.TargetMissing))
		var first agentapi.CNIResult
		if err := harness.Agent(ctx, r.node, &first, r.cniArgs("del", t)...); err != nil {
			return err
		}
		t.res.FirstDelError = first.Error
		t.res.Record(scenarios.CheckFirstDelFails, "", first.Error != "", "first DEL error: "+OrNone(first.Error))
	}
	if t.sc.ReusePID {
		r.step(t, "PID reuse", "a host process takes PID "+pid)
		var reuse agentapi.PIDReuse
		if err := harness.Agent(ctx, r.node, &reuse, "pid", "reuse", "--pid", pid); err != nil {
			return err
		}
		t.res.PIDReuseAttempts = reuse.Attempts
	}
	// Who holds the PID is read again rather than taken from the reuse
	// step's word: the check must see what DEL will see.
	if st, err = r.pidStatus(ctx, pid); err != nil {
		return err
	}
	t.res.PIDReused = st.Exists && st.NetnsTarget == agentapi.TargetHost
	held := fmt.Sprintf("PID %s: %s", pid, describeHolder(st))
	if t.sc.ReusePID {
		t.res.Record(scenarios.CheckPIDTakenByHost, "", t.res.PIDReused, held)
	} else {
		t.res.Record(scenarios.CheckPIDNotTaken, "", !st.Exists, held)
	}

	step := "CNI DEL"
	if t.sc.RetryDEL {
		step = "CNI DEL (retry)"
	}
	var del agentapi.CNIResult
	if err := harness.Agent(ctx, r.node, &del, r.cniArgs("del", t)...); err != nil {
		return err
	}
	t.res.DelTarget, t.res.DelError = string(del.NetnsTarget), del.Error
	r.step(t, step, fmt.Sprintf("%s named %s; error: %s", del.NetnsPath, del.NetnsTarget, OrNone(del.Error)))
	r.recordDel(t, del)

	if lo, err = r.lo(ctx); err != nil {
		return err
	}
	t.res.LoUp = lo.Up
	r.step(t, "host lo "+UpDown(lo.Up), lo.Flags)
	if lo.Up {
		if !t.sc.ExpectLoUp {
			t.res.Record(scenarios.CheckOwnAddrUnreachable, "", false, "host lo stayed UP: no symptom")
			t.res.Record(scenarios.CheckLoUpRestores, "", false, "host lo stayed UP: nothing to restore")
		}
		return nil
	}
	if r.opts.WhileLoDown != nil {
		if err := r.opts.WhileLoDown(ctx); err != nil {
			return err
		}
	}
	return r.restore(ctx, t)
}

// recordDel judges what DEL named and, on a missing path, how the
// loopback plugin of this version answers it.
func (r *Runner) recordDel(t *Trial, del agentapi.CNIResult) {
	named := fmt.Sprintf("%s named %s", del.NetnsPath, del.NetnsTarget)
	expected := t.sc.Checks(t.pl.Version, r.opts.Tier)
	for _, c := range expected {
		switch c.ID {
		case scenarios.CheckDelNamesHost.ID:
			t.res.Record(c, "", del.NetnsTarget == agentapi.TargetHost, named)
		case scenarios.CheckDelNamesNothing.ID:
			t.res.Record(c, "", del.NetnsTarget == agentapi.TargetMissing, named)
		case scenarios.CheckStatfsLine.ID:
			line := StatfsLine(del.NetnsPath)
			t.res.Record(c, "", strings.Contains(del.Error, line), "DEL error: "+OrNone(del.Error))
		case scenarios.CheckMissingPathIgnored.ID:
			t.res.Record(c, "", del.Error == "", "DEL error: "+OrNone(del.Error))
		}
	}
}

// StatfsLine is the write-up's error line for a DEL on a missing path.
func StatfsLine(path string) string {
	return fmt.Sprintf("failed to Statfs %q: no such file or directory", path)
}

func describeHolder(st agentapi.PIDStatus) string {
	if !st.Exists {
		return "no process"
	}
	return fmt.Sprintf("%q, netns %s", st.Comm, st.NetnsTarget)
}

func (r *Runner) pidStatus(ctx context.Context, pid string) (agentapi.PIDStatus, error) {
	var st agentapi.PIDStatus
	err := harness.Agent(ctx, r.node, &st, "pid", "status", "--pid", pid)
	return st, err
}

// ProbeDownTimeout bounds the probe of the node's own address while lo is
// down. The probe answers as soon as lo drops its SYN, in milliseconds
// (see node/agent.Probe); the bound is for a kernel that does not count
// that drop, such as the guests' 6.1, where every such probe waited it
// out. Delivery to the node's own address takes microseconds when lo is
// up (a TCG guest included), and lo was just read down, so 200 ms without
// an answer is the symptom, not a slow node.
const ProbeDownTimeout = 200 * time.Millisecond

// restore shows the symptom and the fix by hand: the node cannot reach its
// own address while lo is down, and can again once lo is set up. lo is set
// up whatever the checks say: later trials on the node need it.
func (r *Runner) restore(ctx context.Context, t *Trial) error {
	var down agentapi.Probe
	if err := harness.Agent(ctx, r.node, &down, "probe", "--addr", "auto", "--timeout", ProbeDownTimeout.String()); err != nil {
		return err
	}
	t.res.ProbeWhileDown = OrNone(down.Error)
	r.step(t, "probe own address", fmt.Sprintf("%s reachable=%v %s", down.Addr, down.OK, down.Error))
	if !t.sc.ExpectLoUp {
		t.res.Record(scenarios.CheckOwnAddrUnreachable, "", !down.OK, fmt.Sprintf("%s: %s", down.Addr, OrNone(down.Error)))
	}
	if _, err := r.setLoUp(ctx); err != nil {
		return err
	}
	var up agentapi.Probe
	if err := harness.Agent(ctx, r.node, &up, "probe", "--addr", "auto", "--timeout", "5s"); err != nil {
		return err
	}
	r.step(t, "ip link set lo up", fmt.Sprintf("%s reachable=%v %s", up.Addr, up.OK, up.Error))
	t.res.Restored = up.OK
	if !t.sc.ExpectLoUp {
		t.res.Record(scenarios.CheckLoUpRestores, "", up.OK, fmt.Sprintf("%s: reachable=%v %s", up.Addr, up.OK, up.Error))
	}
	return nil
}

func (r *Runner) lo(ctx context.Context) (agentapi.Link, error) {
	var l agentapi.Link
	err := harness.Agent(ctx, r.node, &l, "link", "show", "lo")
	return l, err
}

func (r *Runner) setLoUp(ctx context.Context) (agentapi.Link, error) {
	var l agentapi.Link
	err := harness.Agent(ctx, r.node, &l, "link", "up", "lo")
	return l, err
}

// Run plays scenarios on node with one shared reboot and returns a result
// per scenario, in order.
func Run(ctx context.Context, node harness.Node, scs []scenarios.Scenario, opts Options) []Result {
	return RunMatrix(ctx, node, scs, []Plugins{{Dir: opts.PluginDir, Version: opts.PluginVersion}}, opts)
}

// RunMatrix plays every scenario with every plugin set on node, all
// sharing one reboot, and returns the results in plugin-major order.
func RunMatrix(ctx context.Context, node harness.Node, scs []scenarios.Scenario, sets []Plugins, opts Options) []Result {
	r := New(node, opts)
	for _, pl := range sets {
		for _, sc := range scs {
			_, _ = r.PrepareWith(ctx, sc, pl)
		}
	}
	_ = r.Reboot(ctx)
	var out []Result
	for _, t := range r.trials {
		out = append(out, r.Finish(ctx, t))
	}
	return out
}

// OrNone prints an empty string as "none".
func OrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
