package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/images/layer"
	"github.com/pidreuse/pidreuse/internal/command"
)

// CollectArtifacts implements harness.Node: the serial console (every
// boot), the journals of this and the previous boot, and the agent's state.
func (n *Node) CollectArtifacts(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("collect %s: %w", n.opts.Name, err)
	}
	var errs []error
	errs = append(errs, n.fetchConsole(ctx))
	if data, err := os.ReadFile(n.console); err == nil {
		errs = append(errs, os.WriteFile(filepath.Join(dir, "console.log"), data, 0o644))
	}
	for file, cmd := range map[string][]string{
		"journal-boot-0.log":  {"journalctl", "-b", "0", "--no-pager", "-o", "short-precise"},
		"journal-boot-1.log":  {"journalctl", "-b", "-1", "--no-pager", "-o", "short-precise"},
		"agent-state.txt":     {"sh", "-c", "for f in $(find /var/lib/pidreuse -type f | sort); do echo \"== $f\"; cat \"$f\"; echo; done"},
		"links-and-netns.txt": {"sh", "-c", "ip -d link; echo; ip netns list; echo; ls -l /run/netns /proc/1/ns/net"},
		"layer.txt":           {"sh", "-c", "systemctl is-enabled " + layer.UnitName + " >/dev/null 2>&1 || exit 0; systemctl --no-pager status " + layer.UnitName + "; findmnt -t overlay,ext4; sha256sum /usr/local/bin/*"},
	} {
		res, err := n.Exec(ctx, cmd...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
			continue
		}
		out := append(res.Stdout, res.Stderr...)
		if len(bytes.TrimSpace(out)) == 0 {
			continue
		}
		errs = append(errs, os.WriteFile(filepath.Join(dir, file), out, 0o644))
	}
	for file, script := range n.opts.Artifacts {
		res, err := n.Exec(ctx, "sh", "-c", script)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
			continue
		}
		errs = append(errs, os.WriteFile(filepath.Join(dir, file), append(res.Stdout, res.Stderr...), 0o644))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("collect %s: %w", n.opts.Name, err)
	}
	return nil
}

// keepFailedConsole copies the serial console of a node whose start
// failed to Options.FailureConsole, before Close removes the node's dir,
// and says where in the returned error; not when the start was
// interrupted (startCtx canceled, or the error says so).
func (n *Node) keepFailedConsole(startCtx context.Context, startErr error) error {
	dst := n.opts.FailureConsole
	// An interrupted start (Ctrl-C) keeps nothing: the user stopped it.
	interrupted := errors.Is(startErr, context.Canceled) || errors.Is(startCtx.Err(), context.Canceled)
	if dst == "" || n.console == "" || interrupted {
		return startErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.fetchConsole(ctx); err != nil {
		return fmt.Errorf("%w (the serial console is lost: %v)", startErr, err)
	}
	data, err := os.ReadFile(n.console)
	if errors.Is(err, os.ErrNotExist) {
		return startErr // the domain never started
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(dst), 0o755)
	}
	if err == nil {
		err = os.WriteFile(dst, data, 0o644)
	}
	if err != nil {
		return fmt.Errorf("%w (the serial console is lost: %v)", startErr, err)
	}
	return fmt.Errorf("%w\n(the whole serial console: %s)", startErr, dst)
}

// ConsoleTail returns the last lines of a console log, for error messages.
func ConsoleTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no console log: %v)", err)
	}
	tail := command.LastLines(strings.ReplaceAll(string(data), "\r", ""), lines)
	return "  " + strings.ReplaceAll(tail, "\n", "\n  ")
}
