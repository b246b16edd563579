// Package kube reads a node's CRI-O and kubelet state through crictl and
// the journal, for the scenarios where real CRI-O and kubelet issue DEL.
package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/internal/crioguest"
)

// endpoint is where crictl finds CRI-O in the node.
const endpoint = crioguest.CRISocket

// Container is one container as crictl reports it.
type Container struct {
	ID       string `json:"id"`
	Sandbox  string `json:"podSandboxId"`
	State    string `json:"state"`
	Metadata struct {
		Name    string `json:"name"`
		Attempt int    `json:"attempt"`
	} `json:"metadata"`
	Labels map[string]string `json:"labels"`
}

// Pod is the pod name kubelet gave the container.
func (c Container) Pod() string { return c.Labels["io.kubernetes.pod.name"] }

// Sandbox is one pod sandbox as crictl reports it, with what inspectp adds.
type Sandbox struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	// NetnsPath is the network namespace path in the sandbox's runtime
	// spec: CRI-O pins it under /var/run/netns/<uuid>.
	NetnsPath string `json:"netnsPath,omitempty"`
	// HostNetwork is true for hostNetwork pods (CRI-O still pins a netns
	// path for them: the host's).
	HostNetwork bool `json:"hostNetwork,omitempty"`
}

func crictl(ctx context.Context, n harness.Node, out any, args ...string) error {
	argv := append([]string{"crictl", "--runtime-endpoint", endpoint, "--timeout", "10s"}, args...)
	res, err := n.Exec(ctx, argv...)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("crictl %s: exit %d: %s", strings.Join(args, " "), res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	if err := json.Unmarshal(res.Stdout, out); err != nil {
		return fmt.Errorf("crictl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// Containers lists every container, running or not.
func Containers(ctx context.Context, n harness.Node) ([]Container, error) {
	var out struct {
		Containers []Container `json:"containers"`
	}
	err := crictl(ctx, n, &out, "ps", "-a", "-o", "json")
	return out.Containers, err
}

// Sandboxes lists the pod sandboxes with their netns paths.
func Sandboxes(ctx context.Context, n harness.Node) ([]Sandbox, error) {
	var out struct {
		Items []Sandbox `json:"items"`
	}
	if err := crictl(ctx, n, &out, "pods", "-o", "json"); err != nil {
		return nil, err
	}
	for i := range out.Items {
		var insp struct {
			Status struct {
				Linux struct {
					Namespaces struct {
						Options struct {
							Network string `json:"network"`
						} `json:"options"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"status"`
			Info struct {
				RuntimeSpec struct {
					Linux struct {
						Namespaces []struct {
							Type string `json:"type"`
							Path string `json:"path"`
						} `json:"namespaces"`
					} `json:"linux"`
				} `json:"runtimeSpec"`
			} `json:"info"`
		}
		if err := crictl(ctx, n, &insp, "inspectp", "-o", "json", out.Items[i].ID); err != nil {
			return nil, err
		}
		out.Items[i].HostNetwork = insp.Status.Linux.Namespaces.Options.Network == "NODE"
		for _, ns := range insp.Info.RuntimeSpec.Linux.Namespaces {
			if ns.Type == "network" {
				out.Items[i].NetnsPath = ns.Path
			}
		}
	}
	return out.Items, nil
}

// ContainerPIDs returns the host PIDs of the running containers.
func ContainerPIDs(ctx context.Context, n harness.Node) ([]int, error) {
	cs, err := Containers(ctx, n)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, c := range cs {
		if c.State != "CONTAINER_RUNNING" {
			continue
		}
		var insp struct {
			Info struct {
				PID int `json:"pid"`
			} `json:"info"`
		}
		if err := crictl(ctx, n, &insp, "inspect", "-o", "json", c.ID); err != nil {
			return nil, err
		}
		if insp.Info.PID > 0 {
			pids = append(pids, insp.Info.PID)
		}
	}
	return pids, nil
}

// Running says whether every named container runs. Containers are named
// as in the pod spec; kubelet suffixes static pod names with the node's.
func Running(cs []Container, names ...string) bool {
	for _, n := range names {
		ok := false
		for _, c := range cs {
			ok = ok || (c.Metadata.Name == n && c.State == "CONTAINER_RUNNING")
		}
		if !ok {
			return false
		}
	}
	return true
}

// Restarts is the highest attempt number of the named container: kubelet
// bumps it each time it restarts the container (after a failed liveness
// probe, for instance).
func Restarts(cs []Container, name string) int {
	n := 0
	for _, c := range cs {
		if c.Metadata.Name == name && c.Metadata.Attempt > n {
			n = c.Metadata.Attempt
		}
	}
	return n
}

// WaitRunning polls until every named container runs, reporting progress.
func WaitRunning(ctx context.Context, n harness.Node, progress func(string), pods ...string) ([]Container, error) {
	start := time.Now()
	last := time.Now()
	var lastErr error
	for {
		cs, err := Containers(ctx, n)
		if err == nil && Running(cs, pods...) {
			return cs, nil
		}
		lastErr = err
		if time.Since(last) > 15*time.Second && progress != nil {
			last = time.Now()
			progress(fmt.Sprintf("waiting for pods %v to run (%s)", pods, time.Since(start).Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pods %v not running after %s (last crictl error: %v): %w", pods, time.Since(start).Round(time.Second), lastErr, ctx.Err())
		case <-time.After(2 * time.Second):
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
