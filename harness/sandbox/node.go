// Package sandbox is the fast node: fresh pid, net, mount and uts
// namespaces on this machine, with a private /run and a state dir on disk.
// Its PID 1 is `nodeagent init` (node/sandboxinit); a reboot kills that PID
// namespace and starts a new one with a fresh netns and a fresh /run,
// keeping the state dir. This package is the host side: it starts, drives
// and tears down the node.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/node/execserve"
)

// Options says how to make a sandbox node.
type Options struct {
	// Name carries the run ID; it is also the node's hostname.
	Name string
	// Dir is the node's own directory on disk (state dir, console log). It
	// is created, and removed by Close unless Keep is set.
	Dir string
	// AgentPath is the nodeagent binary (see cmd/nodeagent).
	AgentPath string
	// Keep leaves Dir in place at Close, for debugging.
	Keep bool
}

// Node is a sandbox node. It is safe for use by one goroutine at a time
// per call; Exec calls are serialised.
type Node struct {
	opts    Options
	mu      sync.Mutex
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	client  *execserve.Client
	console *os.File
	bootID  string
	closed  bool
}

var _ harness.Node = (*Node)(nil)

// Start boots a sandbox node.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the sandbox tier needs root (it creates pid, net and mount namespaces): run it as root")
	}
	if opts.Name == "" || opts.Dir == "" || opts.AgentPath == "" {
		return nil, errors.New("sandbox: Name, Dir and AgentPath are required")
	}
	if st, err := os.Stat(opts.AgentPath); err != nil || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("nodeagent %s is missing or not executable: run `make build`", opts.AgentPath)
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "state"), 0o755); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", opts.Name, err)
	}
	console, err := os.OpenFile(filepath.Join(opts.Dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", opts.Name, err)
	}
	n := &Node{opts: opts, console: console}
	if err := n.boot(ctx); err != nil {
		n.Close(context.Background())
		return nil, err
	}
	return n, nil
}

// Name implements harness.Node.
func (n *Node) Name() string { return n.opts.Name }

// Dir is the node's directory on disk.
func (n *Node) Dir() string { return n.opts.Dir }

// StateDir is the node's agent state dir, kept across reboots.
func (n *Node) StateDir() string { return filepath.Join(n.opts.Dir, "state") }

// BootID is the boot ID the node answered with last.
func (n *Node) BootID() string { return n.bootID }

func (n *Node) boot(ctx context.Context) error {
	fmt.Fprintf(n.console, "--- %s boot of %s\n", time.Now().UTC().Format(time.RFC3339Nano), n.opts.Name)
	cmd := exec.Command(n.opts.AgentPath, "init", "--hostname", n.opts.Name)
	cmd.Env = append(os.Environ(), "PIDREUSE_STATE_DIR="+n.StateDir())
	cmd.Stderr = n.console
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		// If the harness dies, so does the node (and with its PID 1 every
		// process in it).
		Pdeathsig: syscall.SIGKILL,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("boot %s: %w", n.opts.Name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("boot %s: %w", n.opts.Name, err)
	}
	// Pdeathsig follows the thread that forked: keep it alive and ours.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("boot %s: start init: %w", n.opts.Name, err)
	}
	n.cmd, n.stdin, n.client = cmd, stdin, execserve.NewClient(stdin, stdout)

	var b agentapi.Boot
	if err := harness.Agent(ctx, n, &b, "boot"); err != nil {
		return fmt.Errorf("boot %s: %w (console: %s)", n.opts.Name, err, filepath.Join(n.opts.Dir, "console.log"))
	}
	// Safety: a node that shares the machine's netns would let a DEL set the
	// real lo down. Refuse to go on.
	own, err := ownNetnsInode()
	if err != nil {
		return fmt.Errorf("boot %s: %w", n.opts.Name, err)
	}
	if b.NetnsInode == own {
		return fmt.Errorf("boot %s: the node shares this machine's network namespace: refusing to run", n.opts.Name)
	}
	n.bootID = b.BootID
	return nil
}

func ownNetnsInode() (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("stat own netns: %w", err)
	}
	return st.Ino, nil
}

// Exec implements harness.Node.
func (n *Node) Exec(ctx context.Context, argv ...string) (harness.ExecResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return harness.ExecResult{}, fmt.Errorf("exec on %s: node is not running", n.opts.Name)
	}
	resp, err := n.client.Call(ctx, argv)
	if err != nil {
		if ctx.Err() != nil {
			// The protocol has no cancel: a node that stops answering is killed.
			n.halt()
			return harness.ExecResult{}, fmt.Errorf("exec on %s: %w", n.opts.Name, ctx.Err())
		}
		return harness.ExecResult{}, fmt.Errorf("exec on %s: node init is gone: %w", n.opts.Name, err)
	}
	if resp.Error != "" {
		return harness.ExecResult{}, fmt.Errorf("exec on %s: %s", n.opts.Name, resp.Error)
	}
	return harness.ExecResult{Stdout: resp.Stdout, Stderr: resp.Stderr, ExitCode: resp.ExitCode}, nil
}

// halt kills the node's PID 1, which takes every process of the node with
// it, and waits for it. Callers hold n.mu or own n exclusively.
func (n *Node) halt() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.stdin.Close()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// Reboot implements harness.Node: the PID namespace dies (every process,
// mount and pin with it), a new one starts with a fresh netns and /run.
func (n *Node) Reboot(ctx context.Context) error {
	old := n.bootID
	n.mu.Lock()
	n.halt()
	n.mu.Unlock()
	if err := n.boot(ctx); err != nil {
		return fmt.Errorf("reboot %s: %w", n.opts.Name, err)
	}
	if n.bootID == old {
		return fmt.Errorf("reboot %s: boot id %s did not change", n.opts.Name, old)
	}
	return nil
}

// CollectArtifacts implements harness.Node: the console log and the agent's
// state dir.
func (n *Node) CollectArtifacts(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("collect %s: %w", n.opts.Name, err)
	}
	if err := copyTree(filepath.Join(n.opts.Dir, "console.log"), filepath.Join(dir, "console.log")); err != nil {
		return fmt.Errorf("collect %s: %w", n.opts.Name, err)
	}
	if err := copyTree(n.StateDir(), filepath.Join(dir, "state")); err != nil {
		return fmt.Errorf("collect %s: %w", n.opts.Name, err)
	}
	return nil
}

// Close implements harness.Node.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.halt()
	n.console.Close()
	if n.opts.Keep {
		return nil
	}
	if err := os.RemoveAll(n.opts.Dir); err != nil {
		return fmt.Errorf("close %s: %w", n.opts.Name, err)
	}
	return nil
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// Keep leaves the node's dir in place at Close, for debugging.
func (n *Node) Keep() { n.opts.Keep = true }
