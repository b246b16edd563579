package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
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
	pid   int
	start time.Time
	res   Result
	sb    agentapi.Sandbox
	// err is the first error that ended the trial, kept whole (a
	// *deadline.TimedOut is what ends a bisect step as "timed out").
	err error
	// end is when its last step in the node ended (several trials share
	// one call).
	end time.Time
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
	r.stepAt(t, time.Now(), step, detail)
}

// stepAt records a step that happened at at (in the node, during a call
// that played several).
func (r *Runner) stepAt(t *Trial, at time.Time, step, detail string) {
	t.res.Timeline = append(t.res.Timeline, Event{At: at.UTC(), Step: step, Detail: detail})
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
	t := r.newTrial(sc, pl)
	r.prepare(ctx, []*Trial{t})
	return t, t.err
}

// Pair is one scenario with one plugin set.
type Pair struct {
	Scenario scenarios.Scenario
	Plugins  Plugins
}

// PrepareAll prepares every pair in one call into the node (the node
// agent's `trials prepare`): on a TCG guest a call costs a round trip
// and a process start, ~0.1–0.2 s, and a trial is two steps.
func (r *Runner) PrepareAll(ctx context.Context, pairs []Pair) []*Trial {
	var ts []*Trial
	for _, p := range pairs {
		ts = append(ts, r.newTrial(p.Scenario, p.Plugins))
	}
	r.prepare(ctx, ts)
	return ts
}

// newTrial numbers a trial, gives it its holder PID and refuses what the
// runner cannot play.
func (r *Runner) newTrial(sc scenarios.Scenario, pl Plugins) *Trial {
	n := r.opts.FirstTrial + len(r.trials)
	t := &Trial{sc: sc, pl: pl, id: fmt.Sprintf("%s-%d", sc.Name, n), start: time.Now(),
		pid: HolderPIDTop - HolderPIDStep*n}
	t.res = Result{Scenario: sc.Name, Tier: r.opts.Tier, Node: r.node.Name(), PluginVersion: pl.Version,
		NetnsMode: string(sc.Netns), ExpectedLoUp: sc.ExpectLoUp}
	r.trials = append(r.trials, t)
	switch {
	case r.stop != nil:
		_ = t.fail(r.notPlayed())
	case sc.DeleteBy != scenarios.LegacyEmulator:
		_ = t.fail(fmt.Errorf("scenario %s: deleter %s is not driven by this runner", sc.Name, sc.DeleteBy))
	case n*HolderPIDStep >= HolderPIDTop-HolderPIDStep:
		_ = t.fail(fmt.Errorf("too many scenarios on one node (%d)", n+1))
	}
	return t
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

// spec is what the node needs of a trial to play it.
func (t *Trial) spec() agentapi.TrialSpec {
	return agentapi.TrialSpec{ID: t.id, Mode: t.sc.Netns, HolderPID: t.pid, PluginDirs: pluginDirs(t.pl.Dir),
		Plugins: t.sc.Plugins, BootIDBefore: t.sb.BootID, ReusePID: t.sc.ReusePID, RetryDEL: t.sc.RetryDEL}
}

// plays names the steps the node plays of t in phase, for progress.
func (t *Trial) plays(phase string) string {
	if phase == "prepare" {
		return "sandbox create, CNI ADD"
	}
	steps := []string{"new boot"}
	if t.sc.RetryDEL {
		steps = append(steps, "CNI DEL (first try)")
	}
	if t.sc.ReusePID {
		steps = append(steps, "PID reuse")
	}
	return strings.Join(append(steps, "CNI DEL", "host lo"), ", ")
}

// pluginDirs splits a colon-separated plugin path, as `cni --cni-bin-dir`
// does; the agent adds its own dir, as there.
func pluginDirs(dir string) []string { return filepath.SplitList(dir) }

// playing are the trials of ts still to be played.
func playing(ts []*Trial) []*Trial {
	var out []*Trial
	for _, t := range ts {
		if t.err == nil {
			out = append(out, t)
		}
	}
	return out
}

// play asks the node to play phase of ts in one call and hands each
// trial's report, with a clock that places its marks on the harness's
// time, to record. A trial without a report was not played: an earlier
// one timed out.
func (r *Runner) play(ctx context.Context, phase string, ts []*Trial, leaveLoDown bool,
	record func(*Trial, agentapi.TrialReport, func(int64) time.Time) error) (played []*Trial) {
	step := deadline.Scaled(ctx, deadline.AgentStep)
	req := agentapi.TrialsRequest{StepTimeoutMs: step.Milliseconds(), LeaveLoDown: leaveLoDown,
		ProbeDownTimeoutMs: ProbeDownTimeout.Milliseconds(), ProbeUpTimeoutMs: ProbeUpTimeout.Milliseconds()}
	for _, t := range ts {
		req.Trials = append(req.Trials, t.spec())
	}
	data, err := json.Marshal(req)
	if err != nil {
		panic(err) // plain data
	}
	if r.opts.OnStep != nil {
		// The steps themselves are reported when the call returns: say
		// now what the node is doing.
		for _, t := range ts {
			r.opts.OnStep(t.sc.Name, "in the node: "+t.plays(phase))
		}
	}
	var rep agentapi.TrialsReport
	// Each trial has up to four bounded steps (the agent ends one at its
	// step timeout); the call's own bound is past all of them.
	within := deadline.AgentStep * time.Duration(4*len(ts)+1)
	err = harness.AgentWithin(ctx, r.node, within, &rep, "trials", phase, "--request", string(data))
	end := time.Now()
	if err != nil {
		r.noteTimeout(err)
		for _, t := range ts {
			_ = t.fail(err)
		}
		return nil
	}
	at := func(ms int64) time.Time { return end.Add(-time.Duration(rep.ElapsedMs-ms) * time.Millisecond) }
	byID := map[string]agentapi.TrialReport{}
	for _, tr := range rep.Trials {
		byID[tr.ID] = tr
	}
	for _, t := range ts {
		tr, ok := byID[t.id]
		if !ok {
			if r.stop != nil {
				_ = t.fail(r.notPlayed())
			}
			continue
		}
		played = append(played, t)
		if n := len(tr.Marks); n > 0 {
			t.end = at(tr.Marks[n-1].AtMs)
		}
		err := record(t, tr, at)
		if tr.TimedOut != "" {
			err = &deadline.TimedOut{Step: tr.TimedOut, After: step}
		}
		if err != nil {
			_ = t.fail(err)
			r.noteTimeout(err)
		}
	}
	return played
}

func (r *Runner) prepare(ctx context.Context, ts []*Trial) {
	ts = playing(ts)
	if len(ts) == 0 {
		return
	}
	r.play(ctx, "prepare", ts, false, func(t *Trial, tr agentapi.TrialReport, at func(int64) time.Time) error {
		r.stepAt(t, at(markAt(tr, agentapi.MarkSandboxCreate)), "sandbox create", fmt.Sprintf("%s netns, holder at PID %d", t.sc.Netns, t.pid))
		if tr.Sandbox != nil {
			t.sb = *tr.Sandbox
			t.res.NetnsPath, t.res.HolderPID, t.res.BootIDBefore = t.sb.NetnsPath, t.sb.HolderPID, t.sb.BootID
			r.stepAt(t, at(markAt(tr, agentapi.MarkCNIAdd)), "CNI ADD", t.sb.NetnsPath)
		}
		return reportError(tr)
	})
}

// reportError is the error a trial's report ends with, if any.
func reportError(tr agentapi.TrialReport) error {
	if tr.Error != "" {
		return errors.New(tr.Error)
	}
	return nil
}

// markAt is when tr reached mark, in the node's milliseconds since the
// call began (0 if it never did).
func markAt(tr agentapi.TrialReport, mark string) int64 {
	for _, m := range tr.Marks {
		if m.Mark == mark {
			return m.AtMs
		}
	}
	return 0
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
	if t.err == nil {
		t.err = err
	}
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
	return r.FinishAll(ctx, []*Trial{t})[0]
}

// FinishAll is Finish for several trials, played in one call into the
// node (`trials finish`) unless a WhileLoDown has to run in between.
func (r *Runner) FinishAll(ctx context.Context, ts []*Trial) []Result {
	r.finish(ctx, ts)
	var out []Result
	for _, t := range ts {
		res := t.res
		res.Judge(t.sc.Checks(t.pl.Version, r.opts.Tier))
		out = append(out, res)
	}
	return out
}

// Play is Finish without the judgement, for a caller that records checks
// of its own after the runner's (kubescenario's legacy-symptom watches
// kubelet) and judges the whole result itself.
func (r *Runner) Play(ctx context.Context, t *Trial) Result {
	r.finish(ctx, []*Trial{t})
	return t.res
}

// finish plays ts after the reboot. With a WhileLoDown the node stops
// after a DEL that left lo down; the runner runs it, restores lo, and
// asks for the rest.
func (r *Runner) finish(ctx context.Context, ts []*Trial) {
	for _, t := range ts {
		if t.err == nil && r.stop != nil {
			_ = t.fail(r.notPlayed())
		}
	}
	rest := playing(ts)
	for len(rest) > 0 {
		played := r.play(ctx, "finish", rest, r.opts.WhileLoDown != nil, r.recordFinish)
		if len(played) == 0 {
			rest = playing(rest)
			break
		}
		last := played[len(played)-1]
		if last.err == nil && !last.res.LoUp && r.opts.WhileLoDown != nil {
			if err := r.whileLoDown(ctx, last); err != nil {
				_ = last.fail(err)
				r.noteTimeout(err)
			}
		}
		rest = playing(rest[len(played):])
		if r.stop != nil {
			for _, t := range rest {
				_ = t.fail(r.notPlayed())
			}
			break
		}
	}
	for _, t := range rest {
		_ = t.fail(errors.New("the node agent's `trials finish` reported nothing of this trial"))
	}
	for _, t := range ts {
		end := t.end
		if end.IsZero() {
			end = time.Now()
		}
		t.res.DurationMs = end.Sub(t.start).Milliseconds()
	}
}

// whileLoDown runs the caller's watch while t's DEL has lo down, then
// shows the symptom and sets lo up (`lo restore`).
func (r *Runner) whileLoDown(ctx context.Context, t *Trial) error {
	if err := r.opts.WhileLoDown(ctx); err != nil {
		return err
	}
	var lr agentapi.LoRestore
	if err := harness.Agent(ctx, r.node, &lr, "lo", "restore", "--down-timeout", ProbeDownTimeout.String(), "--up-timeout", ProbeUpTimeout.String()); err != nil {
		return err
	}
	now := time.Now()
	r.recordRestore(t, lr, now.Add(-time.Duration(lr.Up.DurationMs)*time.Millisecond), now)
	t.end = now
	return nil
}

// recordFinish records what the node saw of t after the reboot, in the
// order it happened, and judges each step's expectation.
func (r *Runner) recordFinish(t *Trial, tr agentapi.TrialReport, at func(int64) time.Time) error {
	if tr.Boot != nil {
		t.res.BootIDAfter = tr.Boot.BootID
		r.stepAt(t, at(markAt(tr, agentapi.MarkBoot)), "new boot", "boot_id "+tr.Boot.BootID)
		rebooted := tr.Boot.BootID != t.sb.BootID
		t.res.Record(scenarios.CheckRealReboot, "", rebooted, fmt.Sprintf("boot id %s at ADD, %s at DEL", t.sb.BootID, tr.Boot.BootID))
	}
	if tr.FirstDel != nil {
		r.stepAt(t, at(markAt(tr, agentapi.MarkFirstDel)), "CNI DEL (first try)", t.sb.NetnsPath+" names "+string(agentapi.TargetMissing))
		t.res.FirstDelError = tr.FirstDel.Error
		t.res.Record(scenarios.CheckFirstDelFails, "", tr.FirstDel.Error != "", "first DEL error: "+OrNone(tr.FirstDel.Error))
	}
	pid := strconv.Itoa(t.sb.HolderPID)
	if tr.Reuse != nil {
		r.stepAt(t, at(markAt(tr, agentapi.MarkReuse)), "PID reuse", "a host process takes PID "+pid)
		t.res.PIDReuseAttempts = tr.Reuse.Attempts
	}
	if st := tr.PIDAfter; st != nil {
		t.res.PIDReused = st.Exists && st.NetnsTarget == agentapi.TargetHost
		held := fmt.Sprintf("PID %s: %s", pid, describeHolder(*st))
		if t.sc.ReusePID {
			t.res.Record(scenarios.CheckPIDTakenByHost, "", t.res.PIDReused, held)
		} else {
			t.res.Record(scenarios.CheckPIDNotTaken, "", !st.Exists, held)
		}
	}
	if del := tr.Del; del != nil {
		step := "CNI DEL"
		if t.sc.RetryDEL {
			step = "CNI DEL (retry)"
		}
		t.res.DelTarget, t.res.DelError = string(del.NetnsTarget), del.Error
		r.stepAt(t, at(markAt(tr, agentapi.MarkDel)), step, fmt.Sprintf("%s named %s; error: %s", del.NetnsPath, del.NetnsTarget, OrNone(del.Error)))
		r.recordDel(t, *del)
	}
	if lo := tr.LoAfter; lo != nil {
		t.res.LoUp = lo.Up
		r.stepAt(t, at(markAt(tr, agentapi.MarkLo)), "host lo "+UpDown(lo.Up), lo.Flags)
		if lo.Up && !t.sc.ExpectLoUp {
			t.res.Record(scenarios.CheckOwnAddrUnreachable, "", false, "host lo stayed UP: no symptom")
			t.res.Record(scenarios.CheckLoUpRestores, "", false, "host lo stayed UP: nothing to restore")
		}
	}
	if tr.Restore != nil {
		up := at(markAt(tr, agentapi.MarkLoUp))
		r.recordRestore(t, *tr.Restore, up.Add(-time.Duration(tr.Restore.Up.DurationMs)*time.Millisecond), up)
	}
	return reportError(tr)
}

// recordRestore records the symptom and the fix by hand: the node could
// not reach its own address while lo was down (read by downAt), and could
// again once lo was set up (by upAt).
func (r *Runner) recordRestore(t *Trial, lr agentapi.LoRestore, downAt, upAt time.Time) {
	down, up := lr.Down, lr.Up
	t.res.ProbeWhileDown = OrNone(down.Error)
	r.stepAt(t, downAt, "probe own address", fmt.Sprintf("%s reachable=%v %s", down.Addr, down.OK, down.Error))
	if !t.sc.ExpectLoUp {
		t.res.Record(scenarios.CheckOwnAddrUnreachable, "", !down.OK, fmt.Sprintf("%s: %s", down.Addr, OrNone(down.Error)))
	}
	r.stepAt(t, upAt, "ip link set lo up", fmt.Sprintf("%s reachable=%v %s", up.Addr, up.OK, up.Error))
	t.res.Restored = up.OK
	if !t.sc.ExpectLoUp {
		t.res.Record(scenarios.CheckLoUpRestores, "", up.OK, fmt.Sprintf("%s: reachable=%v %s", up.Addr, up.OK, up.Error))
	}
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

// ProbeDownTimeout bounds the probe of the node's own address while lo is
// down. The probe answers as soon as lo drops its SYN, in milliseconds
// (see node/agent.Probe); the bound is for a kernel that does not count
// that drop, such as the guests' 6.1, where every such probe waits it
// out. lo was just read down, and with lo up a connection to the node's
// own address completes inside the kernel in microseconds (a busy TCG
// guest in a few milliseconds), so 100 ms without one is the symptom, not
// a slow node.
const ProbeDownTimeout = 100 * time.Millisecond

// ProbeUpTimeout bounds the probe once lo is set up again.
const ProbeUpTimeout = 5 * time.Second

// Run plays scenarios on node with one shared reboot and returns a result
// per scenario, in order.
func Run(ctx context.Context, node harness.Node, scs []scenarios.Scenario, opts Options) []Result {
	return RunMatrix(ctx, node, scs, []Plugins{{Dir: opts.PluginDir, Version: opts.PluginVersion}}, opts)
}

// RunMatrix plays every scenario with every plugin set on node, all
// sharing one reboot, and returns the results in plugin-major order.
func RunMatrix(ctx context.Context, node harness.Node, scs []scenarios.Scenario, sets []Plugins, opts Options) []Result {
	r := New(node, opts)
	var pairs []Pair
	for _, pl := range sets {
		for _, sc := range scs {
			pairs = append(pairs, Pair{Scenario: sc, Plugins: pl})
		}
	}
	ts := r.PrepareAll(ctx, pairs)
	_ = r.Reboot(ctx)
	return r.FinishAll(ctx, ts)
}

// OrNone prints an empty string as "none".
func OrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
