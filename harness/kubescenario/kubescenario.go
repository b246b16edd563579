// Package kubescenario plays the scenarios that need the CRI-O/kubelet
// node (images/crionode): the write-up's story with a real CRI-O issuing
// CNI DEL after a real reboot and a real kubelet probing a hostNetwork
// pod. The CLI (`pidreuse run|bisect --tier vm`) and the VM suite (e2e/vm)
// both play them through Run, so a bisect judges exactly what CI tests.
//
// This package plays the timelines (crioreboot.go, legacysymptom.go); what
// it reads from the node comes from harness/kube (crictl, systemd units,
// journal parsers), and the squat's result is judged by a pure function
// (squat.go).
package kubescenario

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// Options configures a run.
type Options struct {
	// Plugins are the CNI plugins the legacy runtime (the node agent)
	// uses in legacy-symptom, as the node sees them. CRI-O uses its own
	// plugin_dirs (the image's, or the run's layer).
	Plugins runner.Plugins
	// Index numbers runs of legacy-symptom on one node, so each has its
	// own sandbox and holder PID.
	Index int
	// OnStep, if set, is called as each step starts (Ginkgo's By, progress).
	OnStep func(scenario, step string)
	// Progress gets one line while a long wait goes on.
	Progress func(string)
	// Node says what the node's profile runs.
	Node Node
	// PodTimeout bounds each wait for the static pods (default 8 minutes:
	// after a TCG boot CRI-O and kubelet take ~10 s, a loaded CI machine
	// much longer).
	PodTimeout time.Duration
	// Started and SSHUp are when the node's domain started and its first
	// boot answered over SSH, for the first scenario on a node just booted
	// (vm.Timing): its timeline and phases then start at the domain's
	// start. Zero for a node an earlier scenario used.
	Started, SSHUp time.Time
}

// Node is what a scenario needs to know of the node's profile
// (images/crionode), which this package does not import: it is host-side
// code, the profiles are build-side.
type Node struct {
	// Profile names it (crio-1.34, crio-1.17, ...), for the result.
	Profile string
	// Pods are the static pods' container names; default web and sdn.
	Pods []string
	// SparePod is an ordinary pod whose old PIDs no host process takes
	// after the reboot ("" for none).
	SparePod string
	// Runtime is the node's CRI runtime: "cri-o" (default) or "docker"
	// (cri-dockerd).
	Runtime string
	// RuntimeUnits are the runtime's systemd units, the one kubelet
	// talks to last (default crio).
	RuntimeUnits []string
	// GatePlugin is the plugin the runtime runs first at a sandbox's DEL,
	// which the stop race holds (default loopback).
	GatePlugin string
	// ProcNetns says, for a runtime that has no configuration to ask,
	// that it hands DEL the pause's /proc/<pid>/ns/net — read in its
	// source (images/crionode.Profile.DelPath says where).
	ProcNetns bool
	// ProcJoin says the runtime joins containers to their sandbox by
	// /proc/<pause pid>/ns/* (containerd, read in its source): join-race
	// plays there.
	ProcJoin bool
}

// Docker says the node runs Docker through cri-dockerd.
func (n Node) Docker() bool { return n.Runtime == "docker" }

// CRIO says the node runs CRI-O (the default).
func (n Node) CRIO() bool { return n.Runtime == "" || n.Runtime == "cri-o" }

func (n Node) runtimeUnits() []string {
	if len(n.RuntimeUnits) == 0 {
		return []string{crioguest.CRIOUnit}
	}
	return n.RuntimeUnits
}

func (n Node) gatePlugin() string {
	if n.GatePlugin == "" {
		return "loopback"
	}
	return n.GatePlugin
}

func (n Node) pods() []string {
	if len(n.Pods) == 0 {
		return []string{crioguest.WebPod, crioguest.SDNPod}
	}
	return n.Pods
}

// Run plays sc on node, a booted CRI-O/kubelet node, and returns its
// result. A precondition that does not hold (pods never run, the PIDs
// were not taken) is an Error: no verdict. Every expectation of the
// scenario is a check of the result (scenarios.Scenario.Checks).
func Run(ctx context.Context, node harness.Node, sc scenarios.Scenario, opts Options) runner.Result {
	if opts.PodTimeout == 0 {
		opts.PodTimeout = 8 * time.Minute
	}
	p := &play{node: node, opts: opts, sc: sc, start: time.Now()}
	p.res = runner.Result{Scenario: sc.Name, Tier: scenarios.TierVM, Node: node.Name(), Profile: opts.Node.Profile,
		NetnsMode: string(sc.Netns), ExpectedLoUp: sc.ExpectLoUp}
	if !opts.Started.IsZero() && !opts.SSHUp.IsZero() {
		p.stepAt(opts.Started, runner.StepDomainStarted, node.Name())
		p.stepAt(opts.SSHUp, runner.StepBooted, fmt.Sprintf("boot to SSH %s", opts.SSHUp.Sub(opts.Started).Round(100*time.Millisecond)))
	}
	var err error
	switch {
	case sc.NeedsCRIO() && !opts.Node.CRIO():
		err = fmt.Errorf("scenario %s reads CRI-O's configuration and journal: run it on a CRI-O node, not %s (which runs %s)", sc.Name, opts.Node.Profile, opts.Node.Runtime)
	case sc.RuntimeReboot:
		p.res.PluginVersion = "the runtime's plugin dir"
		err = p.runtimeReboot(ctx)
	case sc.JoinRace:
		p.res.PluginVersion = "-"
		err = p.joinRace(ctx)
	case sc.DeleteBy == scenarios.NodeRuntime:
		p.res.PluginVersion = "the runtime's plugin dir"
		err = p.stopRace(ctx)
	case sc.DeleteBy == scenarios.CRIO:
		p.res.PluginVersion = "crio plugin_dirs"
		err = p.crioReboot(ctx)
	case sc.NeedsKubelet:
		p.res.PluginVersion = opts.Plugins.Version
		err = p.legacySymptom(ctx)
	default:
		err = fmt.Errorf("scenario %s does not need the CRI-O/kubelet node: the runner plays it", sc.Name)
	}
	if err != nil && p.res.Error == "" {
		p.res.Error = err.Error()
	}
	if err != nil {
		p.undoAll(ctx)
	}
	if p.expect == nil {
		p.expect = sc.Checks(opts.Plugins.Version, scenarios.TierVM)
	}
	p.res.Judge(p.expect)
	end := time.Now()
	p.res.DurationMs = end.Sub(p.start).Milliseconds()
	// Steps stamped by the node (the runtime's readiness, a DEL in its
	// journal) were added when read: put them in their place.
	sort.SliceStable(p.res.Timeline, func(i, j int) bool { return p.res.Timeline[i].At.Before(p.res.Timeline[j].At) })
	p.res.Phases = runner.PhasesOf(p.res.Timeline, end)
	return p.res
}

type play struct {
	node  harness.Node
	opts  Options
	sc    scenarios.Scenario
	start time.Time
	res   runner.Result
	// expect are the checks the result is judged by; the CRI-O scenarios
	// know them only once they have asked the CRI-O under test.
	expect []scenarios.Check
	// stopped are static pods the scenario took away for good (stop-race
	// stops web): the waits no longer want them.
	stopped map[string]bool
	// livenessBefore are the failed-probe lines of this boot logged before
	// the scenario began (markLivenessBefore).
	livenessBefore map[string]bool
	// delsOver is when the DELs under judgement were over, as far as the
	// harness knows, for the liveness watch (zero: when the watch begins).
	delsOver time.Time
	// undo puts back what the scenario changed on a node that later
	// scenarios use (a gate armed, a manifest moved away), when it ends
	// before it put them back itself.
	undo []undoStep
}

type undoStep struct {
	what, script string
}

// onFailure notes a script that puts the node back if the scenario ends
// early.
func (p *play) onFailure(what, script string) {
	p.undo = append(p.undo, undoStep{what, script})
}

// undoAll runs the undo scripts, last first, each within its own short
// deadline: the scenario's may be what ended. A script that fails says so
// in the result and in the progress; the next scenario's own waits speak
// for the node then.
func (p *play) undoAll(ctx context.Context) {
	for i := len(p.undo) - 1; i >= 0; i-- {
		u := p.undo[i]
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deadline.Scaled(ctx, 30*time.Second))
		_, err := p.shell(uctx, u.script)
		cancel()
		if err != nil {
			p.progress(fmt.Sprintf("%s: could not %s after the scenario ended early: %v", p.node.Name(), u.what, err))
			continue
		}
		p.step("put back", u.what)
	}
	p.undo = nil
}

// podsRunning waits for the static pods of the boot the node came up
// with, places them on the timeline and notes the boot ID. A scenario that
// plays without a reboot (sameBoot) also notes the failed probes logged
// before it: an earlier scenario's on this boot are not its own.
func (p *play) podsRunning(ctx context.Context, sameBoot bool) error {
	pods := p.pods()
	// Two steps, so the timeline says how long the pods took to start.
	p.step("waiting for the static pods", strings.Join(pods, ", "))
	if _, err := p.waitPods(ctx, "first boot", p.opts.PodTimeout); err != nil {
		return err
	}
	p.step(runner.StepPodsRunning, strings.Join(pods, ", "))
	p.markReady(ctx)
	if sameBoot {
		if err := p.markLivenessBefore(ctx); err != nil {
			return err
		}
	}
	var err error
	p.res.BootIDBefore, err = p.bootID(ctx)
	return err
}

// readRuntime asks the node's runtime what it is, over CRI, and notes it
// in the result.
func (p *play) readRuntime(ctx context.Context) (agentapi.CRIRuntime, error) {
	v, err := kube.Runtime(ctx, p.node)
	if err == nil {
		p.res.Runtime = fmt.Sprintf("%s %s (CRI %s)", v.RuntimeName, v.RuntimeVersion, v.APIVersion)
	}
	return v, err
}

// delOverAt notes a DEL of the old sandboxes that was over at t.
func (p *play) delOverAt(t time.Time) {
	if t.After(p.delsOver) {
		p.delsOver = t
	}
}

// pods are the static pods the node should be running now.
func (p *play) pods() []string {
	var out []string
	for _, name := range p.opts.Node.pods() {
		if !p.stopped[name] {
			out = append(out, name)
		}
	}
	return out
}

func (p *play) step(step, detail string) {
	p.res.Timeline = append(p.res.Timeline, runner.Event{At: time.Now().UTC(), Step: step, Detail: detail})
	if p.opts.OnStep != nil {
		p.opts.OnStep(p.sc.Name, step)
	}
}

// stepAt records a step that happened earlier, at a time the harness
// learnt afterwards (the domain's start, a line of the node's journal).
func (p *play) stepAt(at time.Time, step, detail string) {
	p.res.Timeline = append(p.res.Timeline, runner.Event{At: at.UTC(), Step: step, Detail: detail})
}

// markReady places on the timeline the moment the runtime said it was
// ready and kubelet started, whichever came last, as systemd saw it in the
// node. It only times the run: a node that cannot say leaves the step
// out, with a line of progress, and the pods' phase takes its time.
func (p *play) markReady(ctx context.Context) {
	clock, err := kube.ReadClock(ctx, p.node)
	var units []kube.Unit
	if err == nil {
		units, err = kube.Units(ctx, p.node, append(p.opts.Node.runtimeUnits(), crioguest.KubeletUnit)...)
	}
	if err != nil {
		p.progress("timing: when the runtime became ready is unknown: " + err.Error())
		return
	}
	var last int64
	var parts []string
	for _, u := range units {
		if u.ActiveEnterMono == 0 {
			p.progress(fmt.Sprintf("timing: %s.service has no activation time", u.Name))
			return
		}
		last = max(last, u.ActiveEnterMono)
		parts = append(parts, fmt.Sprintf("%s.service active at %.1fs of the boot", u.Name, float64(u.ActiveEnterMono)/1e6))
	}
	at, detail := clock.FromMonotonic(last), strings.Join(parts, ", ")+" (systemd's times in the node)"
	// On a node an earlier scenario booted, the runtime was ready before
	// this scenario began: its phases start with it.
	if first := p.firstStart(); at.Before(first) {
		at, detail = first, detail+", before this scenario began"
	}
	p.stepAt(at, runner.StepReady, detail)
}

// firstStart is where the scenario's timeline begins: the domain's start
// for the first scenario on a node just booted, else the scenario's own.
func (p *play) firstStart() time.Time {
	if !p.opts.Started.IsZero() {
		return p.opts.Started
	}
	return p.start
}

func (p *play) progress(msg string) {
	if p.opts.Progress != nil {
		p.opts.Progress(msg)
	}
}

func (p *play) bootID(ctx context.Context) (string, error) { return harness.BootID(ctx, p.node) }

// reboot reboots the node and records the real-reboot check.
func (p *play) reboot(ctx context.Context) error {
	p.step(runner.StepReboot, p.node.Name())
	if err := p.node.Reboot(ctx); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	id, err := p.bootID(ctx)
	if err != nil {
		return err
	}
	p.res.BootIDAfter = id
	// The DELs of the old sandboxes come after this: the liveness
	// watch's window opens no earlier.
	p.delsOver = time.Now()
	p.step(runner.StepNewBoot, "boot_id "+id)
	rebooted := id != p.res.BootIDBefore
	p.res.Record(scenarios.CheckRealReboot, "", rebooted, fmt.Sprintf("boot id %s before, %s after", p.res.BootIDBefore, id))
	if !rebooted {
		return fmt.Errorf("the node did not reboot: boot id %s unchanged", id)
	}
	return nil
}

func (p *play) lo(ctx context.Context) (agentapi.Link, error) {
	var l agentapi.Link
	err := harness.Agent(ctx, p.node, &l, "link", "show", "lo")
	return l, err
}

func (p *play) shell(ctx context.Context, script string) (string, error) {
	return harness.Shell(ctx, p.node, script)
}

// background starts script in the node and returns what waits for its
// output; a scenario that ends before it asks leaves it to finish with ctx.
func (p *play) background(ctx context.Context, script string) func() (string, error) {
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := p.shell(ctx, script)
		done <- result{out, err}
	}()
	return func() (string, error) {
		r := <-done
		return r.out, r.err
	}
}

// adopt takes the runner's result as the scenario's, keeping the steps
// and checks this play added, in time order; err, or the runner's own
// error, becomes the scenario's.
func (p *play) adopt(res runner.Result, err error) error {
	timeline := append(append([]runner.Event{}, p.res.Timeline...), res.Timeline...)
	sort.SliceStable(timeline, func(i, j int) bool { return timeline[i].At.Before(timeline[j].At) })
	res.Timeline, res.Pass = timeline, false
	res.Checks = append(append([]runner.Check{}, res.Checks...), p.res.Checks...)
	p.res = res
	if err != nil {
		return err
	}
	if res.Error != "" {
		return errors.New(res.Error)
	}
	return nil
}
