package kubescenario

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// crioReboot is crio-kubelet-reboot: CRI-O pins every sandbox netns; the
// node reboots; host processes take every PID the containers had before
// CRI-O starts; CRI-O finds each pin gone, cleans up without entering any
// netns, and kubelet recreates the pods. Host lo must stay UP and the
// hostNetwork pod's liveness probe green.
func (p *play) crioReboot(ctx context.Context) error {
	p.step("static pods Running", crioguest.WebPod+", "+crioguest.SDNPod)
	if _, err := p.waitPods(ctx, "first boot", p.opts.PodTimeout); err != nil {
		return err
	}
	var err error
	if p.res.BootIDBefore, err = p.bootID(ctx); err != nil {
		return err
	}
	old, err := kube.Sandboxes(ctx, p.node)
	if err != nil {
		return err
	}
	if len(old) < 2 {
		return fmt.Errorf("want the web and sdn sandboxes, crictl shows %d", len(old))
	}
	var paths []string
	pinned := true
	for _, sb := range old {
		paths = append(paths, sb.Name+"="+sb.NetnsPath)
		pinned = pinned && (strings.HasPrefix(sb.NetnsPath, "/var/run/netns/") || strings.HasPrefix(sb.NetnsPath, "/run/netns/"))
	}
	p.res.NetnsPath = strings.Join(paths, " ")
	p.step("sandboxes recorded", p.res.NetnsPath)
	p.res.Record(scenarios.CheckCRIOPinsNetns, "", pinned, p.res.NetnsPath)

	pids, err := p.squatOnNextBoot(ctx)
	if err != nil {
		return err
	}
	if err := p.reboot(ctx); err != nil {
		return err
	}
	if err := p.judgeSquat(ctx, pids); err != nil {
		return err
	}

	p.step("static pods Running again", "kubelet recreates the sandboxes, CRI-O cleans the old ones")
	if _, err := p.waitPods(ctx, "after the reboot", p.opts.PodTimeout); err != nil {
		return err
	}
	journal, err := kube.Journal(ctx, p.node, crioguest.CRIOUnit)
	if err != nil {
		return err
	}
	p.judgeCRIOCleanup(journal, old)

	lo, err := p.lo(ctx)
	if err != nil {
		return err
	}
	if err := p.watchLiveness(ctx); err != nil {
		return err
	}
	lo2, err := p.lo(ctx)
	if err != nil {
		return err
	}
	p.res.LoUp = lo.Up && lo2.Up
	p.step("host lo "+runner.UpDown(p.res.LoUp), lo2.Flags)
	return nil
}

// squatOnNextBoot writes the running containers' PIDs where
// pidreuse-squat.service finds them at the next boot, before crio starts.
func (p *play) squatOnNextBoot(ctx context.Context) ([]int, error) {
	cs, err := kube.Containers(ctx, p.node)
	if err != nil {
		return nil, err
	}
	pids := kube.ContainerPIDs(cs)
	if len(pids) == 0 {
		return nil, fmt.Errorf("no running container has a PID: nothing for host processes to take")
	}
	words := make([]string, len(pids))
	for i, pid := range pids {
		words[i] = strconv.Itoa(pid)
	}
	p.res.HolderPID = pids[0]
	script := fmt.Sprintf("mkdir -p \"$(dirname %[2]s)\" && echo %[1]s > %[2]s && sync", strings.Join(words, " "), crioguest.SquatFile)
	if _, err := p.shell(ctx, script); err != nil {
		return nil, err
	}
	return pids, nil
}

// judgeSquat reads what the squat did at boot: host processes must hold
// every old container PID before crio started.
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

// judgeCRIOCleanup reads CRI-O's journal of the new boot: each old
// sandbox's pin is gone, and the pod-network ones were deleted from CNI
// with an empty netns.
func (p *play) judgeCRIOCleanup(journal string, old []kube.Sandbox) {
	p.res.DelTarget = string(agentapi.TargetMissing)
	for _, sb := range old {
		line := kube.RestoreFailedLine(journal, sb.ID, sb.NetnsPath)
		p.res.Record(scenarios.CheckPinGone, sb.Name, line != "", runner.OrNone(line))
		if line != "" && p.res.DelError == "" {
			p.res.DelError = line
		}
		if line == "" {
			p.res.DelTarget = "?"
		}
		if sb.HostNetwork {
			continue // its pin named the host netns: there is no pod network to delete
		}
		p.res.Record(scenarios.CheckDelEmptyNetns, sb.Name,
			kube.DeletedWithEmptyNetns(journal, sb.Namespace, sb.Name, sb.ID), "")
	}
	p.step("CNI DEL by CRI-O", p.res.DelError)
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
	p.res.Record(scenarios.CheckSDNNotRestarted, "", kube.AllRunning(cs, crioguest.SDNPod, crioguest.WebPod) && after == before,
		fmt.Sprintf("restarts %d → %d", before, after))
	failures, err := p.livenessFailures(ctx)
	if err != nil {
		return err
	}
	p.res.Record(scenarios.CheckNoLivenessFailure, "", len(failures) == 0, command.LastLines(strings.Join(failures, "\n"), 5))
	return nil
}
