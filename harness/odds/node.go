package odds

import (
	"context"
	"fmt"
	"github.com/pidreuse/pidreuse/harness/deadline"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/internal/shell"
	"github.com/pidreuse/pidreuse/node/agentapi"
)

// What the odds run reads from and does to the node, one small function
// each; the judging is elsewhere (judge.go).

// oldSandboxes lists the ready pod-network sandboxes of the current boot,
// each with the PID an ephemeral netns path would name it by: the infra
// process's, or the pod's own process where the runtime runs no infra
// process (CRI-O 1.34 drops it).
func oldSandboxes(ctx context.Context, n harness.Node) ([]Sandbox, error) {
	sbs, err := kube.Sandboxes(ctx, n)
	if err != nil {
		return nil, err
	}
	var cs []kube.Container
	var out []Sandbox
	for _, sb := range sbs {
		if sb.HostNetwork || sb.State != "SANDBOX_READY" {
			continue
		}
		s := Sandbox{Pod: podName(sb), ID: sb.ID, PID: sb.InfraPID, PIDSource: "infra"}
		if s.PID == 0 {
			if cs == nil {
				if cs, err = kube.Containers(ctx, n); err != nil {
					return nil, err
				}
			}
			for _, c := range cs {
				if c.SandboxID == sb.ID && c.State == kube.Running && c.PID > 0 {
					s.PID, s.PIDSource = c.PID, "container"
					break
				}
			}
		}
		if s.PID == 0 {
			return nil, fmt.Errorf("sandbox %s (%s) has no infra PID and no running container: nothing to watch", s.Pod, short(s.ID))
		}
		out = append(out, s)
	}
	return out, nil
}

// podName drops the node name kubelet appends to a static pod's name.
func podName(sb kube.Sandbox) string {
	return strings.TrimSuffix(sb.Name, "-pidreuse-node")
}

// watch writes the PIDs the recorder reports at every CNI command of the
// next boot, on the node's disk.
func watch(ctx context.Context, n harness.Node, old []Sandbox) error {
	var words []string
	for _, s := range old {
		words = append(words, strconv.Itoa(s.PID))
	}
	script := fmt.Sprintf("mkdir -p \"$(dirname %[1]s)\" && echo %[2]s > %[1]s && sync", shell.Quote(crioguest.OddsWatchFile), shell.Quote(strings.Join(words, " ")))
	_, err := harness.Shell(ctx, n, script)
	return err
}

// records reads the recorder's lines of one boot (grep runs in the node,
// so earlier boots' lines do not cross SSH).
func records(ctx context.Context, n harness.Node, boot string) ([]agentapi.CNIRecord, int, error) {
	script := fmt.Sprintf("grep -F %s %s 2>/dev/null || true", shell.Quote(`"bootID":"`+boot+`"`), shell.Quote(crioguest.OddsRecordFile))
	out, err := harness.Shell(ctx, n, script)
	if err != nil {
		return nil, 0, err
	}
	recs, skipped := ParseRecords(out, boot)
	return recs, skipped, nil
}

// waitDels polls the recorder until every old sandbox has a DEL of this
// boot, or timeout passes (not an error: the cycle notes the missing ones).
func waitDels(ctx context.Context, n harness.Node, boot string, old []Sandbox, timeout time.Duration) ([]agentapi.CNIRecord, error) {
	deadline := time.Now().Add(timeout)
	for {
		recs, _, err := records(ctx, n, boot)
		if err != nil {
			return nil, err
		}
		missing := 0
		for _, s := range old {
			if len(DelsOf(recs, s.ID)) == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return recs, nil
		}
		if err := harness.Sleep(ctx, 3*time.Second); err != nil {
			return nil, err
		}
	}
}

func lo(ctx context.Context, n harness.Node, verb string) (agentapi.Link, error) {
	var l agentapi.Link
	err := harness.Agent(ctx, n, &l, "link", verb, "lo")
	return l, err
}

func probeOwnAddress(ctx context.Context, n harness.Node) (agentapi.Probe, error) {
	var p agentapi.Probe
	err := harness.Agent(ctx, n, &p, "probe", "--addr", crioguest.NodeIP, "--timeout", "5s")
	return p, err
}

// liveness reads kubelet's failed liveness probes of the sdn pod in this
// boot and how often the sdn container was restarted.
func liveness(ctx context.Context, n harness.Node) ([]string, int, error) {
	lines, err := kube.JournalGrep(ctx, n, crioguest.KubeletUnit, kube.LivenessGrep)
	if err != nil {
		return nil, 0, err
	}
	sbs, err := kube.Sandboxes(ctx, n)
	if err != nil {
		return nil, 0, err
	}
	cs, err := kube.Containers(ctx, n)
	if err != nil {
		return nil, 0, err
	}
	return kube.LivenessFailures(lines, crioguest.SDNPod), restartsThisBoot(sbs, cs, crioguest.SDNPod), nil
}

// restartsThisBoot is how often kubelet restarted a container in its pod's
// ready sandbox, the current boot's. Attempt numbers carry over from the
// container of the pod's previous sandbox (kubelet counts on from the last
// status it knows), so the restarts are the spread of the attempts in the
// ready sandbox. Kubelet's GC keeps one dead instance per container, so
// past one restart this counts low, never zero.
func restartsThisBoot(sbs []kube.Sandbox, cs []kube.Container, name string) int {
	ready := map[string]bool{}
	for _, sb := range sbs {
		ready[sb.ID] = sb.State == "SANDBOX_READY"
	}
	lo, hi := -1, -1
	for _, c := range cs {
		if !ready[c.SandboxID] || c.Name != name {
			continue
		}
		if lo < 0 || c.Attempt < lo {
			lo = c.Attempt
		}
		if c.Attempt > hi {
			hi = c.Attempt
		}
	}
	if lo < 0 {
		return 0
	}
	return hi - lo
}

// waitPods waits until every named container runs.
func waitPods(ctx context.Context, n harness.Node, pods []string, timeout time.Duration, progress func(string)) error {
	timeout = deadline.Scaled(ctx, timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := kube.WaitRunning(ctx, n, progress, pods...); err != nil {
		return fmt.Errorf("CRI-O and kubelet did not run the static pods within %s: %w", timeout, err)
	}
	return nil
}
