package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness/agentapi"
)

const nsLastPIDFile = "/proc/sys/kernel/ns_last_pid"

// maxPIDAttempts bounds the ns_last_pid loop. Each miss is some other
// process (or a new runtime thread) taking the PID between our write and
// our fork; on an idle node a few tries are enough.
const maxPIDAttempts = 500

// SpawnAtPID starts the command newCmd builds so that it gets exactly pid,
// by writing pid-1 to ns_last_pid right before each fork. It returns the
// started command and the number of forks it took.
func SpawnAtPID(ctx context.Context, pid int, newCmd func() *exec.Cmd) (*exec.Cmd, int, error) {
	if pid < 2 {
		return nil, 0, fmt.Errorf("spawn at pid %d: pid must be 2 or more", pid)
	}
	for attempt := 1; attempt <= maxPIDAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, attempt - 1, fmt.Errorf("spawn at pid %d: %w", pid, err)
		}
		if comm, ok := pidComm(pid); ok {
			return nil, attempt - 1, fmt.Errorf("spawn at pid %d: pid is in use by %q", pid, comm)
		}
		if err := os.WriteFile(nsLastPIDFile, []byte(strconv.Itoa(pid-1)), 0); err != nil {
			return nil, attempt - 1, fmt.Errorf("spawn at pid %d: write %s (needs root in the node's pid namespace): %w", pid, nsLastPIDFile, err)
		}
		cmd := newCmd()
		if err := cmd.Start(); err != nil {
			return nil, attempt, fmt.Errorf("spawn at pid %d: start %s: %w", pid, cmd.Path, err)
		}
		if cmd.Process.Pid == pid {
			return cmd, attempt, nil
		}
		// Someone else took the PID first: discard this process and retry.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return nil, maxPIDAttempts, fmt.Errorf("spawn at pid %d: still missed after %d attempts: the node is forking too fast", pid, maxPIDAttempts)
}

func pidComm(pid int) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(data)), true
}

// holdCommand builds a detached `nodeagent hold` that outlives the step
// that started it; the node's init (or systemd) reaps it.
func holdCommand(self string, role string) *exec.Cmd {
	cmd := exec.Command(self, "hold", "--role", role)
	cmd.SysProcAttr = detachedAttr()
	return cmd
}

// ReusePID makes a host process (one in the node's own network namespace)
// take pid, and verifies that /proc/<pid>/ns/net now names the host netns.
func (a *Agent) ReusePID(ctx context.Context, pid int) (agentapi.PIDReuse, error) {
	start := time.Now()
	res := agentapi.PIDReuse{PID: pid}
	self, err := os.Executable()
	if err != nil {
		return res, fmt.Errorf("reuse pid %d: %w", pid, err)
	}
	cmd, attempts, err := SpawnAtPID(ctx, pid, func() *exec.Cmd { return holdCommand(self, "host-process") })
	res.Attempts = attempts
	if err != nil {
		return res, fmt.Errorf("reuse pid: %w", err)
	}
	_ = cmd.Process.Release()
	if res.NetnsInode, err = netnsInode(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil {
		return res, fmt.Errorf("reuse pid %d: %w", pid, err)
	}
	if res.HostNetnsInode, err = HostNetnsInode(); err != nil {
		return res, fmt.Errorf("reuse pid %d: %w", pid, err)
	}
	res.IsHostNetns = res.NetnsInode == res.HostNetnsInode
	res.DurationMs = time.Since(start).Milliseconds()
	if !res.IsHostNetns {
		return res, fmt.Errorf("reuse pid %d: the new process is in netns %d, not the host's %d", pid, res.NetnsInode, res.HostNetnsInode)
	}
	return res, nil
}

// PIDStatus reports who owns pid now and what its netns is.
func PIDStatus(pid int) (agentapi.PIDStatus, error) {
	st := agentapi.PIDStatus{PID: pid, NetnsTarget: agentapi.TargetMissing}
	comm, ok := pidComm(pid)
	if !ok {
		return st, nil
	}
	st.Exists, st.Comm = true, comm
	target, err := ClassifyNetns(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("pid status %d: %w", pid, err)
	}
	st.NetnsTarget = target
	return st, nil
}
