package vm

import (
	"context"
	"fmt"
	"sync"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/ssh"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/internal/shell"
	"github.com/pidreuse/pidreuse/node/execserve"
)

// servedExec runs a node's commands through one long-lived `nodeagent
// serve` in the guest (node/execserve): a step costs a request line and an
// answer line instead of a new SSH session, sshd's fork and a login shell,
// which under TCG is most of a short step's time. Each command is still a
// fresh process in the guest, as it is under a session of its own.
//
// One call at a time goes through the stream; a call that finds it busy
// (a watcher beside the scenario's steps) opens a session of its own.
type servedExec struct {
	mu sync.Mutex
	// ssh is the connection the stream belongs to: after a reboot the node
	// has a new one and the stream is started again.
	ssh    *ssh.Client
	stream *ssh.Stream
	client *execserve.Client
	// off stops the node from trying again after the guest's agent could
	// not serve (an agent without `serve`, given with PIDREUSE_NODEAGENT).
	off bool
}

// exec runs argv through the stream when it is free. ok false means the
// caller runs argv in a session of its own: the stream is busy or could
// not be used, and nothing of argv ran.
func (s *servedExec) exec(ctx context.Context, c *ssh.Client, argv []string) (res harness.ExecResult, ok bool, err error) {
	if !s.mu.TryLock() {
		return res, false, nil
	}
	defer s.mu.Unlock()
	if s.off {
		return res, false, nil
	}
	if s.ssh != c {
		s.dropLocked()
		st, err := c.Stream(ctx, shell.Join([]string{images.GuestAgentPath, "serve"}))
		if err != nil {
			return res, false, nil
		}
		s.ssh, s.stream, s.client = c, st, execserve.NewClient(st.Stdin, st.Stdout)
		// A harmless first request proves the agent serves; one that
		// cannot (an older agent given with PIDREUSE_NODEAGENT) has
		// run nothing of argv, and the node goes on with sessions.
		if _, err := s.client.Call(ctx, []string{"true"}); err != nil {
			s.dropLocked()
			s.off = ctx.Err() == nil && !st.Lost()
			return res, false, nil
		}
	}
	resp, err := s.client.Call(ctx, argv)
	switch {
	case err != nil && ctx.Err() != nil:
		// Abandoned: the command may still run, as a session's would
		// after its deadline; the stream's next answer would be its.
		s.dropLocked()
		return res, true, fmt.Errorf("run %q: %w", shell.Join(argv), ctx.Err())
	case err != nil && s.stream.Lost():
		s.dropLocked()
		return res, true, fmt.Errorf("run %q: %w: %w", shell.Join(argv), ssh.ErrConnectionLost, err)
	case err != nil:
		// The server died under a live connection, perhaps before it
		// read the request: it cannot say whether argv ran. Rather than
		// run a step twice, report it; the next call starts a new one.
		s.dropLocked()
		return res, true, fmt.Errorf("run %q: the guest's exec server went away: %w", shell.Join(argv), err)
	case resp.Error != "" && ctx.Err() != nil:
		// Killed by the server at the deadline the request carried.
		return res, true, fmt.Errorf("run %q: %w", shell.Join(argv), ctx.Err())
	case resp.Error != "" && resp.ExitCode == 0:
		// Not started (not found, not executable): what a login shell
		// says with 127, and callers read exit codes, not errors.
		return harness.ExecResult{Stderr: []byte(resp.Error + "\n"), ExitCode: 127}, true, nil
	case resp.Error != "":
		return res, true, fmt.Errorf("run %q: %s", shell.Join(argv), resp.Error)
	}
	return harness.ExecResult{Stdout: resp.Stdout, Stderr: resp.Stderr, ExitCode: resp.ExitCode}, true, nil
}

// drop ends the stream; the node's next call starts another.
func (s *servedExec) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLocked()
}

func (s *servedExec) dropLocked() {
	if s.stream != nil {
		_ = s.stream.Close()
	}
	s.ssh, s.stream, s.client = nil, nil, nil
}
