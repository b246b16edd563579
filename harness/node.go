// Package harness defines what a node is to the scenarios: a place where the
// node agent runs, that can be rebooted, and whose diagnostics can be
// collected. The sandbox (namespaces) and vm (libvirt) backends implement it.
package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/node/agentapi"
)

// ExecResult is what one command inside a node produced.
type ExecResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Node is one machine a scenario runs on.
type Node interface {
	// Name identifies the node in logs and artifacts; it carries the run ID.
	Name() string
	// Exec runs argv inside the node (in its host namespaces) and waits for
	// it. argv[0] "nodeagent" names the node agent wherever it is installed.
	// A non-zero exit is not an error; failing to run the command is.
	Exec(ctx context.Context, argv ...string) (ExecResult, error)
	// Reboot restarts the node for real and returns once it answers again
	// with a boot ID different from the one it had before.
	Reboot(ctx context.Context) error
	// CollectArtifacts writes the node's diagnostics (logs, console, agent
	// state) under dir.
	CollectArtifacts(ctx context.Context, dir string) error
	// Close tears the node down and removes everything it created.
	Close(ctx context.Context) error
}

// AgentError is a node agent step that exited non-zero.
type AgentError struct {
	Args     []string
	ExitCode int
	Stderr   string
}

func (e *AgentError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = "no output"
	}
	return fmt.Sprintf("nodeagent %s: exit %d: %s", shortArgs(e.Args), e.ExitCode, msg)
}

// shortArgs prints a step's arguments for an error, a long one (a JSON
// request of several trials) cut to its start.
func shortArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 80 {
			a = a[:80] + "…"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// Agent runs one node agent step and decodes its JSON answer into out
// (which may be nil). The step has deadline.AgentStep (scaled): a plugin
// that never returns ends the step as a *deadline.TimedOut, and the node
// backend kills what it ran (the sandbox its whole node, a VM the SSH
// session; the run's teardown destroys the rest).
func Agent(ctx context.Context, n Node, out any, args ...string) error {
	return AgentWithin(ctx, n, deadline.AgentStep, out, args...)
}

// AgentWithin is Agent with a deadline of its own (scaled): a call that
// plays several steps, each bounded by the agent itself.
func AgentWithin(ctx context.Context, n Node, within time.Duration, out any, args ...string) error {
	var res ExecResult
	err := deadline.Run(ctx, stepName(args), within, func(ctx context.Context) error {
		var err error
		res, err = n.Exec(ctx, append([]string{"nodeagent"}, args...)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: nodeagent %s: %w", n.Name(), shortArgs(args), err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%s: %w", n.Name(), &AgentError{Args: args, ExitCode: res.ExitCode, Stderr: string(res.Stderr)})
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res.Stdout, out); err != nil {
		return fmt.Errorf("%s: nodeagent %s: decode %q: %w", n.Name(), shortArgs(args), res.Stdout, err)
	}
	return nil
}

// Shell runs a script in the node and returns its stdout; a non-zero exit
// is an error naming the node and the script, with stderr.
func Shell(ctx context.Context, n Node, script string) (string, error) {
	var res ExecResult
	err := deadline.Run(ctx, "shell `"+firstLine(script)+"` on "+n.Name(), deadline.ShellStep, func(ctx context.Context) error {
		var err error
		res, err = n.Exec(ctx, "sh", "-c", script)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", n.Name(), err)
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("%s: %s: exit %d: %s", n.Name(), script, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return string(res.Stdout), nil
}

// stepName names an agent step by its command words ("nodeagent cni
// del"), without the flags that follow them.
func stepName(args []string) string {
	name := "nodeagent"
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		name += " " + a
	}
	return name
}

// firstLine is a script's first line, cut to 60 bytes: enough to say
// which command a timed-out step was.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// BootID asks the node's agent for the kernel's boot id: a new one proves
// a real reboot.
func BootID(ctx context.Context, n Node) (string, error) {
	var b agentapi.Boot
	err := Agent(ctx, n, &b, "boot")
	return b.BootID, err
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
