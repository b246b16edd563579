package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// Steps are the node agent's single steps, as a phase of trials uses them.
// *Agent is the node's; a test of the harness's judgement gives a table.
type Steps interface {
	CreateSandbox(ctx context.Context, id string, mode agentapi.NetnsMode, pid int) (agentapi.Sandbox, error)
	CNI(ctx context.Context, command string, req CNIRequest) (agentapi.CNIResult, error)
	Boot() (agentapi.Boot, error)
	ShowLink(name string) (agentapi.Link, error)
	PIDStatus(pid int) (agentapi.PIDStatus, error)
	ReusePID(ctx context.Context, pid int) (agentapi.PIDReuse, error)
	RestoreLo(ctx context.Context, downTimeout, upTimeout time.Duration) (agentapi.LoRestore, error)
}

// Boot is `nodeagent boot`: the boot ID, hostname and host netns.
func (a *Agent) Boot() (agentapi.Boot, error) { return BootInfo() }

// ShowLink is `nodeagent link show`.
func (a *Agent) ShowLink(name string) (agentapi.Link, error) { return ShowLink(name) }

// PIDStatus is `nodeagent pid status`.
func (a *Agent) PIDStatus(pid int) (agentapi.PIDStatus, error) { return PIDStatus(pid) }

// RestoreLo is `nodeagent lo restore`.
func (a *Agent) RestoreLo(ctx context.Context, downTimeout, upTimeout time.Duration) (agentapi.LoRestore, error) {
	return RestoreLo(ctx, downTimeout, upTimeout)
}

// BootInfo reads the node's boot ID, hostname and host netns.
func BootInfo() (agentapi.Boot, error) {
	var b agentapi.Boot
	var err error
	if b.BootID, err = BootID(); err != nil {
		return b, err
	}
	if b.Hostname, err = os.Hostname(); err != nil {
		return b, err
	}
	b.NetnsInode, err = HostNetnsInode()
	return b, err
}

// RestoreLo shows the symptom and the fix by hand, as the write-up's
// author did: the node's own address probed while lo is down (waiting
// at most downTimeout), lo set up, and the address probed again.
func RestoreLo(ctx context.Context, downTimeout, upTimeout time.Duration) (agentapi.LoRestore, error) {
	var r agentapi.LoRestore
	var err error
	if r.Down, err = Probe(ctx, "auto", downTimeout); err != nil {
		return r, err
	}
	if r.Lo, err = SetLink("lo", true); err != nil {
		return r, err
	}
	r.Up, err = Probe(ctx, "auto", upTimeout)
	return r, err
}

// PlayTrials runs one phase ("prepare" or "finish") of every trial in req
// with steps, in order, and reports each. It stops early only on a step
// past its timeout (a stuck plugin would stall every later trial the same
// way) or, with req.LeaveLoDown, after a DEL that left lo down.
func PlayTrials(ctx context.Context, steps Steps, phase string, req agentapi.TrialsRequest) (agentapi.TrialsReport, error) {
	var play func(*trialPlay) error
	switch phase {
	case "prepare":
		play = (*trialPlay).prepare
	case "finish":
		play = (*trialPlay).finish
	default:
		return agentapi.TrialsReport{}, fmt.Errorf("trials: unknown phase %q: use prepare or finish", phase)
	}
	if req.StepTimeoutMs <= 0 {
		return agentapi.TrialsReport{}, errors.New("trials: the request has no step timeout")
	}
	start := time.Now()
	var out agentapi.TrialsReport
	for _, spec := range req.Trials {
		p := &trialPlay{ctx: ctx, steps: steps, req: req, spec: spec, start: start,
			rep: agentapi.TrialReport{ID: spec.ID}}
		err := play(p)
		if err != nil && p.rep.Error == "" {
			p.rep.Error = err.Error()
		}
		out.Trials = append(out.Trials, p.rep)
		if p.rep.TimedOut != "" || ctx.Err() != nil {
			break
		}
		if req.LeaveLoDown && p.rep.LoAfter != nil && !p.rep.LoAfter.Up {
			break
		}
	}
	out.ElapsedMs = time.Since(start).Milliseconds()
	return out, nil
}

// trialPlay is one trial of a phase being played.
type trialPlay struct {
	ctx   context.Context
	steps Steps
	req   agentapi.TrialsRequest
	spec  agentapi.TrialSpec
	start time.Time
	rep   agentapi.TrialReport
}

func (p *trialPlay) mark(m string) {
	p.rep.Marks = append(p.rep.Marks, agentapi.TrialMark{Mark: m, AtMs: time.Since(p.start).Milliseconds()})
}

// bounded runs one step of p with the request's step timeout. A step
// that runs into it is reported as timed out under the name the single
// step has ("nodeagent cni del"), whatever it made of its killed plugin;
// one that does not even return (libcni waits for the plugin's output,
// which a child the plugin left behind may hold open) is abandoned to the
// node's teardown after a second's grace.
func bounded[T any](p *trialPlay, name string, fn func(ctx context.Context) (T, error)) (T, error) {
	limit := time.Duration(p.req.StepTimeoutMs) * time.Millisecond
	ctx, cancel := context.WithTimeout(p.ctx, limit)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn(ctx)
		done <- result{v, err}
	}()
	var r result
	returned := true
	select {
	case r = <-done:
	case <-ctx.Done():
		select {
		case r = <-done:
		case <-time.After(time.Second):
			returned = false
		}
	}
	var zero T
	switch {
	case p.ctx.Err() == nil && ctx.Err() != nil:
		p.rep.TimedOut = name
		return zero, fmt.Errorf("timed out: %s after %s", name, limit)
	case !returned:
		// The whole call was cancelled (the harness went away).
		return zero, fmt.Errorf("%s: %w", name, p.ctx.Err())
	}
	return r.v, r.err
}

// cni runs the trial's network list (command ADD or DEL), bounded as the
// single step `nodeagent cni add|del` is named.
func (p *trialPlay) cni(command string) (agentapi.CNIResult, error) {
	return bounded(p, "nodeagent cni "+strings.ToLower(command), func(ctx context.Context) (agentapi.CNIResult, error) {
		return p.steps.CNI(ctx, command, CNIRequest{ID: p.spec.ID, Plugins: p.spec.Plugins, PluginDirs: p.spec.PluginDirs})
	})
}

// prepare creates the trial's sandbox and runs CNI ADD, before the reboot.
func (p *trialPlay) prepare() error {
	p.mark(agentapi.MarkSandboxCreate)
	sb, err := bounded(p, "nodeagent sandbox create", func(ctx context.Context) (agentapi.Sandbox, error) {
		return p.steps.CreateSandbox(ctx, p.spec.ID, p.spec.Mode, p.spec.HolderPID)
	})
	if err != nil {
		return err
	}
	p.rep.Sandbox = &sb
	p.mark(agentapi.MarkCNIAdd)
	add, err := p.cni("ADD")
	if err != nil {
		return err
	}
	p.rep.Add = &add
	if add.Error != "" {
		// ADD must work for the scenario to mean anything.
		return fmt.Errorf("cni ADD %s: %s", add.ID, add.Error)
	}
	return nil
}

// finish plays the trial after the reboot: the new boot, lo and the PID
// before anything happens, the first DEL (a retrying runtime), the PID
// taken by a host process, the DEL, and lo after it — set up again, its
// symptom probed, unless the caller asked to see it down.
func (p *trialPlay) finish() error {
	boot, err := p.steps.Boot()
	if err != nil {
		return err
	}
	p.rep.Boot = &boot
	p.mark(agentapi.MarkBoot)
	if boot.BootID == p.spec.BootIDBefore {
		// The holder and its netns are still there: nothing after this
		// would mean what the scenario says.
		return fmt.Errorf("the node did not reboot: boot id %s unchanged", boot.BootID)
	}
	lo, err := p.steps.ShowLink("lo")
	if err != nil {
		return err
	}
	p.rep.LoBefore = &lo
	if !lo.Up {
		return errors.New("host lo is already DOWN before this scenario's DEL: cannot judge it")
	}
	pid := p.spec.HolderPID
	st, err := p.steps.PIDStatus(pid)
	if err != nil {
		return err
	}
	p.rep.PIDBefore = &st
	if st.Exists {
		return fmt.Errorf("PID %d was taken by %q by chance before the scenario could control it", pid, st.Comm)
	}
	if p.spec.RetryDEL {
		p.mark(agentapi.MarkFirstDel)
		first, err := p.cni("DEL")
		if err != nil {
			return err
		}
		p.rep.FirstDel = &first
	}
	if p.spec.ReusePID {
		p.mark(agentapi.MarkReuse)
		reuse, err := bounded(p, "nodeagent pid reuse", func(ctx context.Context) (agentapi.PIDReuse, error) {
			return p.steps.ReusePID(ctx, pid)
		})
		if err != nil {
			return err
		}
		p.rep.Reuse = &reuse
	}
	// Who holds the PID is read again rather than taken from the reuse
	// step's word: the check must see what DEL will see.
	if st, err = p.steps.PIDStatus(pid); err != nil {
		return err
	}
	p.rep.PIDAfter = &st
	del, err := p.cni("DEL")
	if err != nil {
		return err
	}
	p.rep.Del = &del
	p.mark(agentapi.MarkDel)
	if lo, err = p.steps.ShowLink("lo"); err != nil {
		return err
	}
	p.rep.LoAfter = &lo
	p.mark(agentapi.MarkLo)
	if lo.Up || p.req.LeaveLoDown {
		return nil
	}
	// lo is set up whatever the checks say: later trials need it.
	restore, err := p.steps.RestoreLo(p.ctx, time.Duration(p.req.ProbeDownTimeoutMs)*time.Millisecond, time.Duration(p.req.ProbeUpTimeoutMs)*time.Millisecond)
	if err != nil {
		return err
	}
	p.rep.Restore = &restore
	p.mark(agentapi.MarkLoUp)
	return nil
}
