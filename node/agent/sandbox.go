package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// PinDir is where pinned namespaces are bind-mounted, as `ip netns` does.
// It is on /run, so a reboot removes every pin.
const PinDir = "/run/netns"

// CreateSandbox starts a holder process in a new network namespace (the
// pod's infra process) and records how the runtime references that netns.
// A pid > 0 asks for the holder to get exactly that PID, so a run can keep
// holder PIDs away from the low PIDs a fresh boot hands out.
func (a *Agent) CreateSandbox(ctx context.Context, id string, mode agentapi.NetnsMode, pid int) (agentapi.Sandbox, error) {
	sb := agentapi.Sandbox{ID: id, Mode: mode}
	if err := checkID(id); err != nil {
		return sb, err
	}
	if mode != agentapi.Ephemeral && mode != agentapi.Pinned {
		return sb, fmt.Errorf("create sandbox %s: unknown mode %q: use ephemeral or pinned", id, mode)
	}
	// Single-threaded, like the host's holders: a Go holder starts its
	// runtime threads in its first milliseconds, and one of them took the
	// PID the next sandbox's SpawnAtPID had just set ns_last_pid for
	// ("pid is in use by a thread of process 29000 (nodeagent)", seen once
	// in 50 runs under load).
	argv, err := holderArgv()
	if err != nil {
		return sb, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	if pid > 0 {
		_, err = spawnAtPID(ctx, pid, argv, syscall.CLONE_NEWNET, !a.OneProcessManySteps)
	} else {
		pid, err = spawn(argv, syscall.CLONE_NEWNET)
	}
	if err != nil {
		return sb, fmt.Errorf("create sandbox %s: start holder: %w", id, err)
	}
	sb.HolderPID = pid
	ephemeral := fmt.Sprintf("/proc/%d/ns/net", sb.HolderPID)

	if sb.NetnsInode, err = netnsInode(ephemeral); err != nil {
		return sb, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	host, err := HostNetnsInode()
	if err != nil {
		return sb, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	if sb.NetnsInode == host {
		return sb, fmt.Errorf("create sandbox %s: holder %d shares the host netns", id, sb.HolderPID)
	}

	sb.NetnsPath = ephemeral
	if mode == agentapi.Pinned {
		if sb.NetnsPath, err = pinNetns(ephemeral, id); err != nil {
			_ = syscall.Kill(sb.HolderPID, syscall.SIGTERM)
			return sb, fmt.Errorf("create sandbox %s: %w", id, err)
		}
	}
	if sb.BootID, err = BootID(); err != nil {
		return sb, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	sb.CreatedAt = time.Now().UTC()
	if err := a.saveSandbox(sb); err != nil {
		return sb, err
	}
	return sb, nil
}

// pinNetns bind-mounts the netns at /run/netns/<id>, which keeps it alive
// without its holder and gives it a name that cannot be reused.
func pinNetns(src, id string) (string, error) {
	if err := os.MkdirAll(PinDir, 0o755); err != nil {
		return "", fmt.Errorf("pin netns: %w", err)
	}
	dst := filepath.Join(PinDir, id)
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return "", fmt.Errorf("pin netns: create %s: %w", dst, err)
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("pin netns: bind-mount %s at %s: %w", src, dst, err)
	}
	return dst, nil
}
