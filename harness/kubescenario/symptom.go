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
	if err := harness.Sleep(ctx, 3*ProbePeriod+2*time.Second); err != nil {
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
	if err := harness.Sleep(ctx, 3*ProbePeriod+2*time.Second); err != nil {
		return err
	}
	if cs, err = kube.Containers(ctx, p.node); err != nil {
		return err
	}
	after := kube.Restarts(cs, crioguest.SDNPod)
	p.res.Record(scenarios.CheckSDNNotRestarted, "", kube.AllRunning(cs, p.pods()...) && after == before,
		fmt.Sprintf("restarts %d → %d", before, after))
	failures, err := p.livenessFailures(ctx)
	if err != nil {
		return err
	}
	p.res.Record(scenarios.CheckNoLivenessFailure, "", len(failures) == 0, command.LastLines(strings.Join(failures, "\n"), 5))
	return nil
}
