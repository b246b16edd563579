package kubescenario

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/deadline"
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
	if err := harness.Agent(ctx, p.node, &down, "probe", "--addr", crioguest.NodeIP, "--timeout", runner.ProbeDownTimeout.String()); err != nil {
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
	upAt := time.Now()
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
	return p.watchRecovery(ctx, upAt)
}

// probeWatchLimit bounds a wait for answered probes, counted from when the
// sdn container is seen running (a wait begins after the pods run): kubelet
// probes a new container at its first tick past the initial delay, then
// each probe comes a period after the last one ended and may take its
// timeout; 5 s more for a busy host. Measured from
// the container's creation instead, a node with two guests on two cores
// once started the container 8 s after creating it and the window closed
// after the first answer.
func probeWatchLimit(ctx context.Context) time.Duration {
	p, t := crioguest.SDNProbePeriod, crioguest.SDNProbeTimeout
	return deadline.Scaled(ctx, crioguest.SDNProbeInitialDelay+p+probesWanted*(p+t)+5*time.Second)
}

// probesWanted is how many liveness probes the sdn pod must answer to show
// the node reaches its own address: the first shows it at that moment, the
// second, a period later, that it stayed so.
const probesWanted = 2

// watchRecovery: once lo is back (since: when it was set up, or later), the
// sdn pod answers kubelet's probes again and kubelet stops restarting it.
func (p *play) watchRecovery(ctx context.Context, since time.Time) error {
	cs, err := p.waitPods(ctx, "after lo came back", 4*time.Minute)
	if err != nil {
		return err
	}
	settled := kube.Restarts(cs, crioguest.SDNPod)
	p.step("liveness", fmt.Sprintf("waiting for the sdn pod to answer %d of kubelet's probes", probesWanted))
	w, err := p.waitProbesAnswered(ctx, since, time.Now().Add(probeWatchLimit(ctx)))
	if err != nil {
		return err
	}
	now := kube.Restarts(w.after, crioguest.SDNPod)
	p.res.Record(scenarios.CheckLivenessRecovers, "", kube.AllRunning(w.after, crioguest.SDNPod) && now == settled && w.enough(),
		fmt.Sprintf("%s; restarts %d → %d", w, settled, now))
	return nil
}

// watchLiveness watches the hostNetwork sdn pod after the DELs under
// judgement (p.delsOver; zero: from now): kubelet's liveness probes, which
// go to the node's own address and so through the host's lo, must reach
// it — probesWanted of them — while the same container keeps running, and
// kubelet must log no failed probe.
func (p *play) watchLiveness(ctx context.Context) error {
	cs, err := kube.Containers(ctx, p.node)
	if err != nil {
		return err
	}
	before := kube.Restarts(cs, crioguest.SDNPod)
	sdn, _ := runningContainer(cs, crioguest.SDNPod)
	from := p.delsOver
	if from.IsZero() {
		from = time.Now()
	}
	until := time.Now().Add(probeWatchLimit(ctx))
	p.step("liveness", fmt.Sprintf("waiting for the hostNetwork sdn pod to answer %d of kubelet's probes sent after %s (until %s at the latest)",
		probesWanted, from.UTC().Format("15:04:05.0"), until.UTC().Format("15:04:05.0")))
	w, err := p.waitProbesAnswered(ctx, from, until)
	if err != nil {
		return err
	}
	p.res.Record(scenarios.CheckProbesAnswered, "", w.enough() && w.sdn.ID == sdn.ID, w.String())
	after := kube.Restarts(w.after, crioguest.SDNPod)
	still, _ := runningContainer(w.after, crioguest.SDNPod)
	p.res.Record(scenarios.CheckSDNNotRestarted, "", kube.AllRunning(w.after, p.pods()...) && after == before && still.ID == sdn.ID,
		fmt.Sprintf("restarts %d → %d, container %s → %s", before, after, short(sdn.ID), short(still.ID)))
	failures, err := p.livenessFailures(ctx)
	if err != nil {
		return err
	}
	p.res.Record(scenarios.CheckNoLivenessFailure, "", len(failures) == 0, command.LastLines(strings.Join(failures, "\n"), 5))
	return nil
}

// probeWatch is what waitProbesAnswered saw.
type probeWatch struct {
	since time.Time
	// sdn is the running sdn container whose log was read (ID "": none ran).
	sdn kube.Container
	// answered are the times (the harness's clock) of its answers at or
	// after since.
	answered []time.Time
	// after are the containers at the end of the wait.
	after []kube.Container
}

func (w probeWatch) enough() bool { return len(w.answered) >= probesWanted }

func (w probeWatch) String() string {
	if w.sdn.ID == "" {
		return "no sdn container ran"
	}
	at := make([]string, len(w.answered))
	for i, t := range w.answered {
		at[i] = t.UTC().Format("15:04:05.0")
	}
	probes := "probes"
	if len(w.answered) == 1 {
		probes = "probe"
	}
	return fmt.Sprintf("container %s answered %d %s sent after %s (at %s)", short(w.sdn.ID), len(w.answered), probes,
		w.since.UTC().Format("15:04:05.0"), runner.OrNone(strings.Join(at, ", ")))
}

// waitProbesAnswered reads the running sdn container's log (podserver
// writes a line per answered /healthz) until it shows probesWanted answers
// at or after since, or until passes: kubelet's probe of the node's own
// address reached the pod, so the host's lo carried it.
func (p *play) waitProbesAnswered(ctx context.Context, since, until time.Time) (probeWatch, error) {
	w := probeWatch{since: since}
	clock, err := kube.ReadClock(ctx, p.node)
	if err != nil {
		return w, err
	}
	for {
		cs, err := kube.Containers(ctx, p.node)
		if err != nil {
			return w, err
		}
		w.after, w.answered = cs, nil
		var ok bool
		if w.sdn, ok = runningContainer(cs, crioguest.SDNPod); ok {
			answers, err := kube.ProbesAnswered(ctx, p.node, w.sdn)
			if err != nil {
				return w, err
			}
			for _, a := range answers {
				// A probe answered before since may have been sent
				// before it: only those after count.
				if at := clock.FromWall(a.At); !at.Before(since) {
					w.answered = append(w.answered, at)
				}
			}
		}
		if w.enough() || time.Now().After(until) {
			return w, nil
		}
		// A quarter of the probe period: an answer is seen soon after it comes,
		// for two short reads in the node per look.
		if err := harness.Sleep(ctx, crioguest.SDNProbePeriod/4); err != nil {
			return w, err
		}
	}
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
