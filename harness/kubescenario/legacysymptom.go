package kubescenario

import (
	"context"
	"fmt"
	"time"

	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/scenarios"
)

// legacySymptom is legacy-symptom: next to CRI-O's pods, a legacy runtime
// (the node agent) records an ephemeral netns path; after the reboot a
// host process takes the PID and the legacy DEL sets the host's lo down.
// The runner plays that timeline, as on every node; this adds what a user
// of a Kubernetes node sees: kubelet fails the hostNetwork pod's liveness
// probe and restarts it while lo is down, and stops once lo is up again.
func (p *play) legacySymptom(ctx context.Context) error {
	if p.opts.Plugins.Dir == "" {
		return fmt.Errorf("legacy-symptom: no CNI plugin dir for the legacy runtime")
	}
	p.step("waiting for the static pods", crioguest.WebPod+", "+crioguest.SDNPod)
	if _, err := p.waitPods(ctx, "first boot", p.opts.PodTimeout); err != nil {
		return err
	}
	p.step(runner.StepPodsRunning, crioguest.WebPod+", "+crioguest.SDNPod)
	p.markReady(ctx)
	var before int
	r := runner.New(p.node, runner.Options{
		Tier: scenarios.TierVM, OnStep: p.opts.OnStep, FirstTrial: p.opts.Index,
		WhileLoDown: func(ctx context.Context) error {
			p.step("kubelet liveness", "waiting for kubelet to fail the sdn pod's probe and restart it")
			restarted, failures, err := p.waitLivenessRestart(ctx, before, 4*time.Minute)
			if err != nil {
				return err
			}
			p.res.Record(scenarios.CheckLivenessRestart, "", restarted, failures)
			return nil
		},
	})
	t, err := r.PrepareWith(ctx, p.sc, p.opts.Plugins)
	if err == nil {
		err = r.Reboot(ctx)
	}
	if err == nil {
		p.step("waiting for the static pods again", "")
		var cs []kube.Container
		if cs, err = p.waitPods(ctx, "after the reboot", p.opts.PodTimeout); err == nil {
			before = kube.Restarts(cs, crioguest.SDNPod)
			p.step("static pods Running again", crioguest.WebPod+", "+crioguest.SDNPod)
		}
	}
	if err != nil {
		return p.adopt(t.Result(), err)
	}
	if err := p.adopt(r.Play(ctx, t), nil); err != nil || p.res.LoUp {
		return err // lo UP: no symptom to show; the checks say whether one was expected
	}

	// The runner set lo up again: answers from now on count.
	return p.watchRecovery(ctx, time.Now())
}
