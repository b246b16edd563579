package kubescenario

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/node/agentapi"
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
	p.step("static pods Running", strings.Join(pods, ", "))
	if _, err := p.waitPods(ctx, "first boot", p.opts.PodTimeout); err != nil {
		return err
	}
	var err error
	if p.res.BootIDBefore, err = p.bootID(ctx); err != nil {
		return err
	}
	rt, err := p.learnRuntime(ctx)
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
	rt.PinsReported = old[0].NetnsPath != ""
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

	p.step("static pods Running again", "kubelet recreates the sandboxes, CRI-O cleans the old ones up")
	if _, err := p.waitPods(ctx, "after the reboot", p.opts.PodTimeout); err != nil {
		return err
	}
	journal, err := kube.Journal(ctx, p.node, crioguest.CRIOUnit)
	if err != nil {
		return err
	}
	p.judgeDels(rt, journal, old, spare)

	lo, err := p.lo(ctx)
	if err != nil {
		return err
	}
	p.res.LoUp = lo.Up
	p.step("host lo "+runner.UpDown(lo.Up), lo.Flags)
	if !lo.Up {
		return p.showSymptom(ctx)
	}
	if err := p.watchLiveness(ctx); err != nil {
		return err
	}
	// lo must still be up after three probe periods: a late DEL would
	// show here.
	if lo, err = p.lo(ctx); err != nil {
		return err
	}
	if !lo.Up {
		p.res.LoUp = false
		p.step("host lo DOWN", "went down while the pods were watched")
		return p.showSymptom(ctx)
	}
	return nil
}

// learnRuntime asks the CRI-O under test what it is and whether its
// configuration pins namespaces: that, not the node's name, gives the
// expected host lo. A forced setting (crio-unpinned-reboot,
// crio-pinned-reboot) must have taken.
func (p *play) learnRuntime(ctx context.Context) (scenarios.CRIORuntime, error) {
	var rt scenarios.CRIORuntime
	version, err := kube.Runtime(ctx, p.node)
	if err != nil {
		return rt, err
	}
	rt.Version = version.RuntimeVersion
	p.res.Runtime = fmt.Sprintf("%s %s (CRI %s)", version.RuntimeName, version.RuntimeVersion, version.APIVersion)
	out, err := p.shell(ctx, "crio config 2>/dev/null")
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

// netnsPath is the path CRI-O hands CNI for a sandbox: the one it reports
// (CRI-O >= 1.19), or for an older CRI-O that does not pin, the infra
// process's /proc path ("" when unknown: a pin an old CRI-O does not
// report).
func netnsPath(sb kube.Sandbox, pins bool) string {
	if sb.NetnsPath != "" || pins || sb.InfraPID == 0 {
		return sb.NetnsPath
	}
	return fmt.Sprintf("/proc/%d/ns/net", sb.InfraPID)
}

// recordNetns records how CRI-O references each sandbox's netns and checks
// it agrees with CRI-O's configuration.
func (p *play) recordNetns(ctx context.Context, rt scenarios.CRIORuntime, old []kube.Sandbox) error {
	var paths, bad []string
	podNetwork := 0
	for _, sb := range old {
		path := netnsPath(sb, rt.Pins)
		paths = append(paths, sb.Name+"="+orUnreported(path))
		if sb.HostNetwork {
			continue
		}
		podNetwork++
		pinned := strings.HasPrefix(path, "/var/run/netns/") || strings.HasPrefix(path, "/run/netns/")
		switch {
		case rt.Pins && path != "" && !pinned, !rt.Pins && !strings.HasPrefix(path, "/proc/"):
			bad = append(bad, sb.Name+"="+orUnreported(path))
		}
	}
	p.res.NetnsPath = strings.Join(paths, " ")
	p.step("sandboxes recorded", p.res.NetnsPath)
	detail := p.res.NetnsPath
	if rt.Pins && old[0].NetnsPath == "" {
		// CRI-O before 1.19 does not report the path: count its pins.
		out, err := p.shell(ctx, "findmnt -rn -t nsfs -o TARGET | grep -c '^/var/run/netns/\\|^/run/netns/' || true")
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		detail += fmt.Sprintf("; %d netns pins mounted under /var/run/netns for %d pod-network sandboxes", n, podNetwork)
		if n < podNetwork {
			bad = append(bad, fmt.Sprintf("only %d pins", n))
		}
	}
	if len(bad) > 0 {
		detail += "; not as configured: " + strings.Join(bad, " ")
	}
	p.res.Record(scenarios.CheckCRIONetns, "", len(bad) == 0, detail)
	return nil
}

func orUnreported(path string) string {
	if path == "" {
		return "(not reported)"
	}
	return path
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
	units, err := kube.Units(ctx, p.node, crioguest.SquatUnit, crioguest.CRIOUnit)
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
	p.res.Record(scenarios.CheckPIDTakenByHost, "", true, "before crio.service: "+squat.String())
	p.step("PID reuse", "before crio.service: "+squat.String())
	return nil
}

// judgeDels reads CRI-O's journal of the new boot: every CNI DEL of an old
// sandbox, with its path, who asked for it and its error, into the result
// and the timeline; and the checks on them.
func (p *play) judgeDels(rt scenarios.CRIORuntime, journal string, old []kube.Sandbox, spare *kube.Sandbox) {
	ops := kube.ParseCNIOps(journal)
	p.res.DelTarget = string(agentapi.TargetMissing)
	for _, sb := range old {
		if sb.HostNetwork {
			continue // no pod network, no CNI DEL
		}
		dels := kube.DelsOf(ops, sb.ID)
		for _, d := range dels {
			p.res.Dels = append(p.res.Dels, runner.Del{Time: d.Time, Pod: d.Pod, SandboxID: d.SandboxID, NetnsPath: d.NetNS, Issuer: d.Issuer(), Error: d.Error})
			p.step("CNI DEL by CRI-O", fmt.Sprintf("%s with netns %q, issued by %s; error: %s", d.Pod, d.NetNS, d.Issuer(), runner.OrNone(d.Error)))
			if d.Error != "" && p.res.DelError == "" {
				p.res.DelError = d.Error
			}
		}
		isSpare := spare != nil && sb.ID == spare.ID
		stale := netnsPath(sb, false)
		switch {
		case rt.Pins:
			empty := len(dels) > 0
			for _, d := range dels {
				empty = empty && d.NetNS == ""
			}
			p.res.Record(scenarios.CheckDelEmptyNetns, sb.Name, empty, describeDels(dels))
			if rt.PinsReported {
				line := kube.RestoreFailedLine(journal, sb.ID, sb.NetnsPath)
				p.res.Record(scenarios.CheckPinGone, sb.Name, line != "", runner.OrNone(line))
			}
		case isSpare:
			if crioStatfs(p.expect) {
				line := runner.StatfsLine(stale)
				ok := false
				for _, d := range dels {
					ok = ok || strings.Contains(d.Error, line)
				}
				p.res.Record(scenarios.CheckCRIOStatfs, sb.Name, ok, describeDels(dels))
			}
		default:
			named := false
			for _, d := range dels {
				named = named || (d.NetNS == stale && stale != "")
			}
			if named {
				p.res.DelTarget = string(agentapi.TargetHost)
				p.res.NetnsPath, p.res.HolderPID = stale, sb.InfraPID
			}
			p.res.Record(scenarios.CheckDelStalePath, sb.Name, named, fmt.Sprintf("old infra PID %d; %s", sb.InfraPID, describeDels(dels)))
		}
	}
}

func crioStatfs(expect []scenarios.Check) bool {
	for _, c := range expect {
		if c.ID == scenarios.CheckCRIOStatfs.ID {
			return true
		}
	}
	return false
}

func describeDels(dels []kube.CNIOp) string {
	if len(dels) == 0 {
		return "no CNI DEL in CRI-O's journal"
	}
	var out []string
	for _, d := range dels {
		out = append(out, fmt.Sprintf("%s DEL netns %q by %s, error: %s", d.Time, d.NetNS, d.Issuer(), runner.OrNone(d.Error)))
	}
	return strings.Join(out, "; ")
}

// showSymptom is what a user of a node whose lo went down sees: the node
// cannot reach its own address, and kubelet fails the hostNetwork pod's
// liveness probe and restarts it; `ip link set lo up` ends it.
func (p *play) showSymptom(ctx context.Context) error {
	var st agentapi.PIDStatus
	if err := harness.Agent(ctx, p.node, &st, "pid", "status", "--pid", strconv.Itoa(p.res.HolderPID)); err != nil {
		return err
	}
	p.step("PID holder", fmt.Sprintf("PID %d is held by %q, netns %s", p.res.HolderPID, st.Comm, st.NetnsTarget))
	var down agentapi.Probe
	if err := harness.Agent(ctx, p.node, &down, "probe", "--addr", crioguest.NodeIP, "--timeout", "500ms"); err != nil {
		return err
	}
	p.res.ProbeWhileDown = runner.OrNone(down.Error)
	p.step("probe own address", fmt.Sprintf("%s reachable=%v %s", down.Addr, down.OK, down.Error))
	p.res.Record(scenarios.CheckOwnAddrUnreachable, "", !down.OK, fmt.Sprintf("%s: %s", down.Addr, runner.OrNone(down.Error)))

	cs, err := kube.Containers(ctx, p.node)
	if err != nil {
		return err
	}
	p.step("kubelet liveness", "waiting for kubelet to fail the sdn pod's probe and restart it")
	restarted, failures, err := p.waitLivenessRestart(ctx, kube.Restarts(cs, crioguest.SDNPod), 4*time.Minute)
	if err != nil {
		return err
	}
	p.res.Record(scenarios.CheckLivenessRestart, "", restarted, failures)

	var lo agentapi.Link
	if err := harness.Agent(ctx, p.node, &lo, "link", "up", "lo"); err != nil {
		return err
	}
	var up agentapi.Probe
	if err := harness.Agent(ctx, p.node, &up, "probe", "--addr", crioguest.NodeIP, "--timeout", "5s"); err != nil {
		return err
	}
	p.step("ip link set lo up", fmt.Sprintf("%s reachable=%v %s", up.Addr, up.OK, up.Error))
	p.res.Restored = up.OK
	p.res.Record(scenarios.CheckLoUpRestores, "", up.OK, fmt.Sprintf("%s: reachable=%v %s", up.Addr, up.OK, up.Error))
	return p.watchRecovery(ctx)
}

// watchRecovery: once lo is back, kubelet stops restarting the sdn pod.
func (p *play) watchRecovery(ctx context.Context) error {
	cs, err := p.waitPods(ctx, "after lo came back", 4*time.Minute)
	if err != nil {
		return err
	}
	settled := kube.Restarts(cs, crioguest.SDNPod)
	if err := sleep(ctx, 3*ProbePeriod+2*time.Second); err != nil {
		return err
	}
	if cs, err = kube.Containers(ctx, p.node); err != nil {
		return err
	}
	now := kube.Restarts(cs, crioguest.SDNPod)
	p.res.Record(scenarios.CheckLivenessRecovers, "", kube.AllRunning(cs, crioguest.SDNPod) && now == settled,
		fmt.Sprintf("restarts %d → %d over %s", settled, now, 3*ProbePeriod))
	return nil
}

// watchLiveness watches the hostNetwork sdn pod for three probe periods:
// it must keep running, and kubelet must log no failed probe.
func (p *play) watchLiveness(ctx context.Context) error {
	cs, err := kube.Containers(ctx, p.node)
	if err != nil {
		return err
	}
	before := kube.Restarts(cs, crioguest.SDNPod)
	p.step("liveness", fmt.Sprintf("watching the hostNetwork sdn pod for three probe periods (%s)", 3*ProbePeriod))
	if err := sleep(ctx, 3*ProbePeriod+2*time.Second); err != nil {
		return err
	}
	if cs, err = kube.Containers(ctx, p.node); err != nil {
		return err
	}
	after := kube.Restarts(cs, crioguest.SDNPod)
	p.res.Record(scenarios.CheckSDNNotRestarted, "", kube.AllRunning(cs, p.opts.Node.pods()...) && after == before,
		fmt.Sprintf("restarts %d → %d", before, after))
	failures, err := p.livenessFailures(ctx)
	if err != nil {
		return err
	}
	p.res.Record(scenarios.CheckNoLivenessFailure, "", len(failures) == 0, command.LastLines(strings.Join(failures, "\n"), 5))
	return nil
}
