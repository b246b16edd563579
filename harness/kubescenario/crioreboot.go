package kubescenario

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/scenarios"
)

// crioReboot plays the scenarios in which CRI-O itself issues CNI DEL
// after a reboot (crio-kubelet-reboot, crio-unpinned-reboot,
// crio-pinned-reboot) on any CRI-O node: the pods run; the CRI-O under
// test says in its own configuration whether it pins namespaces, which
// decides the expected host lo; the node reboots; host processes take the
// old sandboxes' PIDs before CRI-O starts (all but the spare pod's); CRI-O
// and kubelet clean the old sandboxes up and start new ones. Then the
// journal says which DEL ran with which path on whose behalf, and the node
// shows what a user would see: with lo down, it cannot reach its own
// address and kubelet restarts the hostNetwork pod until lo is set up.
func (p *play) crioReboot(ctx context.Context) error {
	pods := p.opts.Node.pods()
	// `crio config` reads CRI-O's files, not the daemon: it runs while
	// the pods start (~3 s under TCG).
	config := p.background(ctx, "crio config 2>/dev/null")
	if err := p.podsRunning(ctx, false); err != nil {
		return err
	}
	rt, err := p.learnRuntime(ctx, config)
	if err != nil {
		return err
	}
	old, err := kube.Sandboxes(ctx, p.node)
	if err != nil {
		return err
	}
	if len(old) < len(pods) {
		return fmt.Errorf("want the sandboxes of %s, CRI-O shows %d", strings.Join(pods, ", "), len(old))
	}
	p.expect = p.sc.CRIOChecks(rt)
	if err := p.recordNetns(ctx, rt, old); err != nil {
		return err
	}
	pids, spare, err := p.squatOnNextBoot(ctx, old)
	if err != nil {
		return err
	}
	if err := p.reboot(ctx); err != nil {
		return err
	}
	if err := p.judgeSquat(ctx, pids); err != nil {
		return err
	}

	p.step("waiting for the static pods again", "kubelet recreates the sandboxes, CRI-O cleans the old ones up")
	if _, err := p.waitPods(ctx, "after the reboot", p.opts.PodTimeout); err != nil {
		return err
	}
	p.step("static pods Running again", strings.Join(pods, ", "))
	journal, err := kube.Journal(ctx, p.node, crioguest.CRIOUnit)
	if err != nil {
		return err
	}
	// To place the journal's DELs on the timeline; only timing depends
	// on it.
	clock, err := kube.ReadClock(ctx, p.node)
	if err != nil {
		p.progress("timing: the DELs stay at the time they were read: " + err.Error())
	}
	p.judgeDels(rt, journal, old, spare, clock)
	return p.judgeLo(ctx)
}

// learnRuntime asks the CRI-O under test what it is and whether its
// configuration pins namespaces: that, not the node's name, gives the
// expected host lo. A forced setting (crio-unpinned-reboot,
// crio-pinned-reboot) must have taken.
//
// config is `crio config`'s output, when it comes.
func (p *play) learnRuntime(ctx context.Context, config func() (string, error)) (scenarios.CRIORuntime, error) {
	var rt scenarios.CRIORuntime
	version, err := p.readRuntime(ctx)
	if err != nil {
		return rt, err
	}
	rt.Version = version.RuntimeVersion
	out, err := config()
	if err != nil {
		return rt, fmt.Errorf("crio config in the node: %w", err)
	}
	pin, err := kube.ParsePinning(out)
	if err != nil {
		return rt, err
	}
	rt.Pins, rt.SparePod = pin.Pins, p.opts.Node.SparePod != ""
	switch p.sc.Pinning {
	case scenarios.PinningOn, scenarios.PinningOff:
		want := p.sc.Pinning == scenarios.PinningOn
		if pin.Switch == "" {
			return rt, fmt.Errorf("CRI-O %s has no namespace pinning switch (%s): %s cannot force it", rt.Version, pin, p.sc.Name)
		}
		if pin.Pins != want {
			return rt, fmt.Errorf("the run forced namespace pinning %v, but CRI-O %s's effective configuration says %s: does this CRI-O read the file the node profile writes (crio.conf.d from 1.17 on)?", want, rt.Version, pin)
		}
	}
	p.res.ExpectedLoUp = rt.Pins
	why := "it pins namespaces: after the reboot the pins are gone and DEL enters nothing"
	if !rt.Pins {
		why = "it does not pin namespaces: after the reboot DEL gets /proc/<old infra pid>/ns/net, which names whatever process holds that PID"
	}
	p.step("CRI-O configuration", fmt.Sprintf("%s: %s; %s: expect host lo %s", p.res.Runtime, pin, why, runner.UpDown(rt.Pins)))
	return rt, nil
}

// squatOnNextBoot writes the PIDs of the old sandboxes — their infra
// processes and running containers — where pidreuse-squat.service finds
// them at the next boot, before crio starts; those of the spare pod are
// left alone. It returns the PIDs to take and the spare pod's sandbox.
func (p *play) squatOnNextBoot(ctx context.Context, old []kube.Sandbox) ([]int, *kube.Sandbox, error) {
	cs, err := kube.Containers(ctx, p.node)
	if err != nil {
		return nil, nil, err
	}
	var spare *kube.Sandbox
	skip := map[string]bool{}
	for i, sb := range old {
		if p.opts.Node.SparePod != "" && strings.HasPrefix(sb.Name, p.opts.Node.SparePod+"-") {
			spare = &old[i]
			skip[sb.ID] = true
		}
	}
	var pids []int
	for _, sb := range old {
		if !skip[sb.ID] && sb.InfraPID > 0 {
			pids = append(pids, sb.InfraPID)
		}
	}
	for _, c := range cs {
		if !skip[c.SandboxID] && c.State == kube.Running && c.PID > 0 {
			pids = append(pids, c.PID)
		}
	}
	if len(pids) == 0 {
		return nil, nil, fmt.Errorf("no sandbox or container has a PID: nothing for host processes to take")
	}
	words := make([]string, len(pids))
	for i, pid := range pids {
		words[i] = strconv.Itoa(pid)
	}
	p.res.HolderPID = pids[0]
	script := fmt.Sprintf("mkdir -p \"$(dirname %[2]s)\" && echo %[1]s > %[2]s && sync", strings.Join(words, " "), crioguest.SquatFile)
	if _, err := p.shell(ctx, script); err != nil {
		return nil, nil, err
	}
	if spare != nil {
		p.step("spare pod", fmt.Sprintf("%s: its old PIDs are left free (infra PID %d)", spare.Name, spare.InfraPID))
	}
	return pids, spare, nil
}

// judgeSquat reads what the squat did at boot: host processes must hold
// every PID before crio started.
func (p *play) judgeSquat(ctx context.Context, pids []int) error {
	out, err := p.shell(ctx, "cat "+crioguest.SquatResult)
	if err != nil {
		return fmt.Errorf("the squat unit left no result (journalctl -u %s): %w", crioguest.SquatUnit, err)
	}
	// The squat must be done before the first of the runtime's units starts.
	units, err := kube.Units(ctx, p.node, crioguest.SquatUnit, p.opts.Node.runtimeUnits()[0])
	if err != nil {
		return err
	}
	if len(units) != 2 {
		return fmt.Errorf("systemctl show: want 2 units, got %+v", units)
	}
	squat, err := JudgeSquat([]byte(out), pids, units[0], units[1])
	if err != nil {
		return err
	}
	p.res.PIDReused = true
	before := "before " + units[1].Name + ".service: "
	p.res.Record(scenarios.CheckPIDTakenByHost, "", true, before+squat.String())
	p.step("PID reuse", before+squat.String())
	return nil
}
