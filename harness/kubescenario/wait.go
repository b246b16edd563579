package kubescenario

import (
	"context"
	"fmt"
	"github.com/pidreuse/pidreuse/harness/deadline"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/internal/command"
	"github.com/pidreuse/pidreuse/internal/crioguest"
)

// waitPods waits for both static pods. A crio or kubelet that keeps
// failing (a build under test that cannot start) ends the wait early: no
// verdict in a minute rather than after the whole timeout.
func (p *play) waitPods(ctx context.Context, when string, timeout time.Duration) ([]kube.Container, error) {
	timeout = deadline.Scaled(ctx, timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	for {
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		cs, err := kube.WaitRunning(wctx, p.node, nil, p.pods()...)
		wcancel()
		if err == nil {
			return cs, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: the runtime and kubelet did not run the static pods within %s (see the runtime's log and kubelet.log in the artifacts): %w", when, timeout, err)
		}
		if why := p.failingUnit(ctx); why != "" {
			return nil, fmt.Errorf("%s: %s", when, why)
		}
		p.progress(fmt.Sprintf("%s: waiting for pods %s (%s)", p.node.Name(), strings.Join(p.pods(), ", "), time.Since(start).Round(time.Second)))
	}
}

// failingUnit says why crio or kubelet keeps failing, with the end of the
// journal of the one to blame; "" when both look alive (or cannot be
// asked: the pod wait goes on and its timeout speaks).
func (p *play) failingUnit(ctx context.Context) string {
	units, err := kube.Units(ctx, p.node, append(p.opts.Node.runtimeUnits(), crioguest.KubeletUnit)...)
	if err != nil {
		return ""
	}
	blame, failing := kube.Failing(units)
	if !failing {
		return ""
	}
	tail, _ := kube.JournalTail(ctx, p.node, blame.Name, 6)
	return kube.FailingMessage(units, blame, tail)
}

// livenessFailures returns kubelet's lines of this boot saying the sdn
// container's liveness probe failed, but those of p.livenessBefore: an
// earlier scenario on the same boot (legacy-symptom takes lo down) is not
// this one's failure.
func (p *play) livenessFailures(ctx context.Context) ([]string, error) {
	lines, err := kube.JournalGrep(ctx, p.node, crioguest.KubeletUnit, kube.LivenessGrep)
	if err != nil {
		return nil, err
	}
	return NewLines(kube.LivenessFailures(lines, crioguest.SDNPod), p.livenessBefore), nil
}

// markLivenessBefore notes the failed probes logged before this scenario
// on a boot it did not start.
func (p *play) markLivenessBefore(ctx context.Context) error {
	failures, err := p.livenessFailures(ctx)
	if err != nil {
		return err
	}
	p.livenessBefore = map[string]bool{}
	for _, f := range failures {
		p.livenessBefore[f] = true
	}
	return nil
}

// NewLines returns the lines not in seen, in order.
func NewLines(lines []string, seen map[string]bool) []string {
	var out []string
	for _, l := range lines {
		if !seen[l] {
			out = append(out, l)
		}
	}
	return out
}

// waitLivenessRestart polls until kubelet has logged a failed liveness
// probe and restarted the sdn container, or timeout passes (not an error:
// the check records it). The restart is one more restart than before, or
// an sdn container created after the first failure logged once the DELs
// under judgement were over (p.delsOver): kubelet may have failed and
// restarted the container before this wait began (after a reboot the DEL
// takes lo down while the pods still start, and the sdn container's first
// probe may come before the other pods run). Counting only restarts from
// the wait's start missed that one and waited for the next, which
// crash-loop back-off held back 30 s.
func (p *play) waitLivenessRestart(ctx context.Context, before int, timeout time.Duration) (bool, string, error) {
	until := time.Now().Add(deadline.Scaled(ctx, timeout))
	var clock kube.Clock
	if !p.delsOver.IsZero() {
		var err error
		if clock, err = kube.ReadClock(ctx, p.node); err != nil {
			return false, "", err
		}
	}
	for {
		failures, err := p.livenessFailures(ctx)
		if err != nil {
			return false, "", err
		}
		cs, err := kube.Containers(ctx, p.node)
		if err != nil {
			return false, "", err
		}
		last := command.LastLines(strings.Join(failures, "\n"), 3)
		if len(failures) > 0 && (kube.Restarts(cs, crioguest.SDNPod) > before || p.restartedAfterDELs(cs, failures, clock)) {
			return true, last, nil
		}
		if time.Now().After(until) {
			return false, last, nil
		}
		// Each look is two reads in the node (~0.4 s under TCG).
		if err := harness.Sleep(ctx, time.Second); err != nil {
			return false, "", err
		}
	}
}

// restartedAfterDELs says whether an sdn container was created after the
// first of kubelet's failed-probe lines logged once the DELs were over;
// false without a DEL time or a clock.
func (p *play) restartedAfterDELs(cs []kube.Container, failures []string, clock kube.Clock) bool {
	if p.delsOver.IsZero() || clock.At.IsZero() {
		return false
	}
	for _, f := range failures {
		at, err := kube.LineTime(f, clock)
		if err != nil || clock.FromWall(at).Before(p.delsOver) {
			continue
		}
		return kube.CreatedAfter(cs, crioguest.SDNPod, at)
	}
	return false
}

// retry calls try until it succeeds or timeout (scaled) passes, and
// returns its last error: for what the node settles into by itself (a
// sandbox kubelet is recreating), not for what a scenario caused.
func (p *play) retry(ctx context.Context, timeout time.Duration, what string, try func() error) error {
	until := time.Now().Add(deadline.Scaled(ctx, timeout))
	for {
		err := try()
		if err == nil || time.Now().After(until) {
			return err
		}
		p.progress(fmt.Sprintf("%s: %s: %v", p.node.Name(), what, err))
		if err := harness.Sleep(ctx, 2*time.Second); err != nil {
			return err
		}
	}
}
