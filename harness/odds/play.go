package odds

import (
	"context"
	"fmt"
	pdeadline "github.com/pidreuse/pidreuse/harness/deadline"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/internal/crioguest"
)

// delWait bounds the wait, once the pods run again, for the DELs of old
// sandboxes the recorder has not seen yet (kubelet stops an old sandbox
// before it starts the pod's new one, so they are normally all in).
const delWait = 90 * time.Second

// symptomWait bounds the wait for kubelet to fail the sdn pod's liveness
// probe and restart it while host lo is down (one probe's timeout, then
// the restart: seconds, slower under TCG).
const symptomWait = 2 * time.Minute

// cycle plays one reboot: it records the old sandboxes and has the
// recorder watch their PIDs, reboots, waits for the pods and for every old
// sandbox's DEL, reads what the recorder and CRI-O's journal say, looks at
// host lo and the sdn pod, sets lo up again if it went down, and judges.
func (r *run) cycle(ctx context.Context, index int) (Cycle, error) {
	start := time.Now()
	c := Cycle{Index: index}
	old, err := oldSandboxes(ctx, r.node)
	if err != nil {
		return c, err
	}
	if len(old) == 0 {
		return c, fmt.Errorf("no ready pod-network sandbox before the reboot: nothing to measure")
	}
	if err := watch(ctx, r.node, old); err != nil {
		return c, err
	}
	r.step(index, fmt.Sprintf("rebooting; old sandbox PIDs %s", pidList(old)))
	rebootStart := time.Now()
	if err := r.node.Reboot(ctx); err != nil {
		return c, fmt.Errorf("reboot: %w", err)
	}
	rebootSec := time.Since(rebootStart).Seconds()
	boot, err := harness.BootID(ctx, r.node)
	if err != nil {
		return c, err
	}
	if boot == r.boot {
		return c, fmt.Errorf("the node did not reboot: boot id %s unchanged", boot)
	}
	r.boot = boot
	r.step(index, "new boot "+boot+": waiting for the pods and the old sandboxes' DELs")
	if err := waitPods(ctx, r.node, r.opts.Node.Pods, r.opts.PodTimeout, r.opts.Progress); err != nil {
		return c, err
	}
	recs, err := waitDels(ctx, r.node, boot, old, pdeadline.Scaled(ctx, delWait))
	if err != nil {
		return c, err
	}
	journal, err := kube.Journal(ctx, r.node, crioguest.CRIOUnit)
	if err != nil {
		return c, err
	}
	sym, err := r.symptom(ctx, index)
	if err != nil {
		return c, err
	}
	c = NewCycle(index, boot, JudgeDels(old, recs, journal), recs, sym)
	c.RebootSec, c.DurationSec = rebootSec, time.Since(start).Seconds()
	return c, nil
}

// symptom reads host lo once every DEL ran. Down, it waits for kubelet to
// fail the sdn pod's liveness probe and restart it (the write-up's
// symptom), then sets lo up so the next cycle starts clean, and checks the
// node reaches its own address again. Up, it reads what kubelet logged so
// far: no waiting, a cycle without a hit costs nothing more.
func (r *run) symptom(ctx context.Context, index int) (Symptom, error) {
	var s Symptom
	l, err := lo(ctx, r.node, "show")
	if err != nil {
		return s, err
	}
	s.LoUp = l.Up
	if !s.LoUp {
		r.step(index, "host lo DOWN: waiting for kubelet to fail the sdn pod's liveness probe and restart it")
		deadline := time.Now().Add(pdeadline.Scaled(ctx, symptomWait))
		for {
			lines, restarts, err := liveness(ctx, r.node)
			if err != nil {
				return s, err
			}
			s.LivenessLines, s.SDNRestarts = lines, restarts
			if (len(lines) > 0 && restarts > 0) || time.Now().After(deadline) {
				break
			}
			if err := harness.Sleep(ctx, 5*time.Second); err != nil {
				return s, err
			}
		}
		if _, err := lo(ctx, r.node, "up"); err != nil {
			return s, fmt.Errorf("set host lo up again: %w", err)
		}
		s.LoSetUp = true
		p, err := probeOwnAddress(ctx, r.node)
		if err != nil {
			return s, err
		}
		s.OwnAddressAfter = p.OK
		r.step(index, fmt.Sprintf("ip link set lo up: own address reachable=%v", p.OK))
	} else if s.LivenessLines, s.SDNRestarts, err = liveness(ctx, r.node); err != nil {
		return s, err
	}
	s.LivenessFailed = len(s.LivenessLines) > 0
	if len(s.LivenessLines) > 3 {
		s.LivenessLines = s.LivenessLines[len(s.LivenessLines)-3:]
	}
	return s, nil
}

func pidList(old []Sandbox) string {
	var parts []string
	for _, s := range old {
		parts = append(parts, fmt.Sprintf("%s=%d", s.Pod, s.PID))
	}
	return strings.Join(parts, " ")
}
