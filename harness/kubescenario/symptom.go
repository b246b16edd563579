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
// it must keep running, and kubelet must log no failed probe. The window
// opens at p.delsOver (when the DELs under judgement were over; zero:
// now) or a probe period after the running sdn container was created,
// whichever is later: a stretch the harness spent on other steps counts
// when the container was already running through it. The container that
// runs at the end must be the one that ran when the window opened.
func (p *play) watchLiveness(ctx context.Context) error {
	cs, err := kube.Containers(ctx, p.node)
	if err != nil {
		return err
	}
	before := kube.Restarts(cs, crioguest.SDNPod)
	sdn, _ := runningContainer(cs, crioguest.SDNPod)
	from := time.Now()
	if !p.delsOver.IsZero() && sdn.ID != "" {
		// Only timing depends on the clock: a node that cannot say
		// watches from now.
		if clock, err := kube.ReadClock(ctx, p.node); err == nil {
			from = LivenessWindowStart(p.delsOver, clock.FromWall(sdn.CreatedAt), ProbePeriod, time.Now())
		}
	}
	window := 3*ProbePeriod + 2*time.Second
	wait := time.Until(from.Add(window))
	p.step("liveness", fmt.Sprintf("watching the hostNetwork sdn pod for three probe periods (%s) from %s, %s more",
		3*ProbePeriod, from.UTC().Format("15:04:05.0"), max(wait, 0).Round(100*time.Millisecond)))
	if err := harness.Sleep(ctx, max(wait, 0)); err != nil {
		return err
	}
	if cs, err = kube.Containers(ctx, p.node); err != nil {
		return err
	}
	after := kube.Restarts(cs, crioguest.SDNPod)
	still, _ := runningContainer(cs, crioguest.SDNPod)
	p.res.Record(scenarios.CheckSDNNotRestarted, "", kube.AllRunning(cs, p.pods()...) && after == before && still.ID == sdn.ID,
		fmt.Sprintf("restarts %d → %d, container %s → %s over %s", before, after, short(sdn.ID), short(still.ID), time.Since(from).Round(100*time.Millisecond)))
	failures, err := p.livenessFailures(ctx)
	if err != nil {
		return err
	}
	p.res.Record(scenarios.CheckNoLivenessFailure, "", len(failures) == 0, command.LastLines(strings.Join(failures, "\n"), 5))
	return nil
}

// LivenessWindowStart is when a watch of a hostNetwork pod's liveness may
// count from: after the DELs were over, and a probe period after its
// container was created (kubelet's first probe comes within a period of
// the start), never later than now.
func LivenessWindowStart(delsOver, created time.Time, period time.Duration, now time.Time) time.Time {
	from := delsOver
	if c := created.Add(period); c.After(from) {
		from = c
	}
	if from.After(now) {
		from = now
	}
	return from
}

// runningContainer is the running container of that name, the newest if
// several.
func runningContainer(cs []kube.Container, name string) (kube.Container, bool) {
	var out kube.Container
	for _, c := range cs {
		if c.Name == name && c.State == kube.Running && (out.ID == "" || c.CreatedAt.After(out.CreatedAt)) {
			out = c
		}
	}
	return out, out.ID != ""
}

// short is a container ID as crictl shows it.
func short(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
