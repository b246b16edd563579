// Package kube reads a Kubernetes node's state for the scenarios where a
// real CRI-O and kubelet run: CRI-O's sandboxes and containers through the
// node's nodecri (CRI v1 or v1alpha2, whichever the CRI-O under
// test speaks: crictl >= 1.26 speaks v1 only, CRI-O 1.16/1.17 v1alpha2
// only), systemd's units, and the journal.
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/node/agentapi"
)

// Container is one container as CRI-O reports it.
type Container = agentapi.CRIContainer

// Sandbox is one pod sandbox as CRI-O reports it.
type Sandbox = agentapi.CRISandbox

// Running is the CRI state of a running container.
const Running = agentapi.ContainerRunning

// cri runs a nodecri step (cmd/nodecri, installed in the CRI-O node
// images) and decodes its JSON answer.
func cri(ctx context.Context, n harness.Node, out any, step string) error {
	return criRun(ctx, n, out, step, "--timeout", "20s")
}

// criRun runs nodecri with args and decodes its JSON into out.
func criRun(ctx context.Context, n harness.Node, out any, args ...string) error {
	// nodecri asks the runtime the node's /etc/crictl.yaml names.
	argv := append([]string{"nodecri"}, args...)
	res, err := n.Exec(ctx, argv...)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", n.Name(), strings.Join(argv, " "), err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%s: %s: exit %d: %s", n.Name(), strings.Join(argv, " "), res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	if err := json.Unmarshal(res.Stdout, out); err != nil {
		return fmt.Errorf("%s: %s: decode %q: %w", n.Name(), strings.Join(argv, " "), res.Stdout, err)
	}
	return nil
}

// Runtime names the runtime and the CRI version the agent spoke to it.
func Runtime(ctx context.Context, n harness.Node) (agentapi.CRIRuntime, error) {
	var out agentapi.CRIRuntime
	err := cri(ctx, n, &out, "version")
	return out, err
}

// Containers lists every container, running or not, each running one with
// its PID.
func Containers(ctx context.Context, n harness.Node) ([]Container, error) {
	var out agentapi.CRIContainers
	err := cri(ctx, n, &out, "containers")
	return out.Containers, err
}

// Sandboxes lists the pod sandboxes with their netns paths (CRI-O >= 1.19
// reports them) and infra PIDs (CRI-O 1.16/1.17 keep one per sandbox).
func Sandboxes(ctx context.Context, n harness.Node) ([]Sandbox, error) {
	var out agentapi.CRIPods
	err := cri(ctx, n, &out, "pods")
	return out.Sandboxes, err
}

// ContainerPIDs returns the host PIDs of the running containers.
func ContainerPIDs(cs []Container) []int {
	var pids []int
	for _, c := range cs {
		if c.State == Running && c.PID > 0 {
			pids = append(pids, c.PID)
		}
	}
	return pids
}

// AllRunning says whether every named container runs. Containers are
// named as in the pod spec; kubelet suffixes static pod names with the
// node's.
func AllRunning(cs []Container, names ...string) bool { return agentapi.AllRunning(cs, names...) }

// Restarts is the highest attempt number of the named container: kubelet
// bumps it each time it restarts the container (after a failed liveness
// probe, for instance).
func Restarts(cs []Container, name string) int {
	n := 0
	for _, c := range cs {
		if c.Name == name && c.Attempt > n {
			n = c.Attempt
		}
	}
	return n
}

// runningWindow bounds one wait in the node: the node answers as soon as
// the pods run, and between windows the caller reports progress and looks
// for a unit that keeps failing.
const runningWindow = 10 * time.Second

// WaitRunning waits until every named container runs, reporting progress.
// The node waits (nodecri containers --running): one process per window
// instead of one per look, on a guest that is still starting its pods.
func WaitRunning(ctx context.Context, n harness.Node, progress func(string), pods ...string) ([]Container, error) {
	start := time.Now()
	last := time.Now()
	var lastErr error
	for {
		window := runningWindow
		if d, ok := ctx.Deadline(); ok {
			window = min(window, time.Until(d)-500*time.Millisecond)
		}
		window = max(window, time.Second).Round(100 * time.Millisecond)
		asked := time.Now()
		var out agentapi.CRIContainers
		err := criRun(ctx, n, &out, "containers", "--running", strings.Join(pods, ","), "--timeout", window.String())
		if err == nil && AllRunning(out.Containers, pods...) {
			return out.Containers, nil
		}
		lastErr = err
		if time.Since(last) > 15*time.Second && progress != nil {
			last = time.Now()
			progress(fmt.Sprintf("waiting for pods %v to run (%s)", pods, time.Since(start).Round(time.Second)))
		}
		// A call that failed at once (SSH, not the wait) is not repeated
		// in a tight loop.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pods %v not running after %s (last CRI error: %v): %w", pods, time.Since(start).Round(time.Second), lastErr, ctx.Err())
		case <-time.After(time.Second - time.Since(asked)):
		}
	}
}

// Journal returns a unit's journal of the current boot.
func Journal(ctx context.Context, n harness.Node, unit string) (string, error) {
	res, err := n.Exec(ctx, "journalctl", "-b", "0", "-u", unit, "--no-pager", "-o", "short-precise")
	if err != nil {
		return "", err
	}
	return string(res.Stdout), nil
}

// JournalGrep returns the lines of a unit's journal (current boot) that
// match an extended regular expression; grep runs in the node, so a
// chatty journal does not cross SSH.
func JournalGrep(ctx context.Context, n harness.Node, unit, pattern string) (string, error) {
	res, err := n.Exec(ctx, "sh", "-c", `journalctl -b 0 -u "$1" --no-pager -o short-precise | grep -E -- "$2" || true`, "sh", unit, pattern)
	if err != nil {
		return "", err
	}
	return string(res.Stdout), nil
}
