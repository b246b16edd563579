// Package agent implements the node agent's steps: the things that must run
// inside a node (sandbox holders, CNI through libcni, PID reuse, link state).
// Both tiers run exactly this code, through cmd/nodeagent.
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// DefaultStateDir is on disk in a VM, so sandbox records survive a reboot.
const DefaultStateDir = "/var/lib/pidreuse"

// SandboxBootIDFile lets a sandbox node, which shares the kernel with the
// machine, have a boot ID of its own: it lives on the node's private /run,
// which every sandbox reboot replaces. A VM has no such file and the
// kernel's boot ID is used.
const SandboxBootIDFile = "/run/pidreuse/boot_id"

// Agent carries the node-local settings every step needs.
type Agent struct {
	StateDir string
	// OneProcessManySteps is set in a process that plays several steps
	// (`trials`): one that loses a PID to its own thread reports it
	// rather than re-executing itself, which would replay the steps
	// before.
	OneProcessManySteps bool
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func checkID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("invalid sandbox id %q: use letters, digits, '.', '_' or '-'", id)
	}
	return nil
}

func (a *Agent) sandboxPath(id string) string {
	return filepath.Join(a.StateDir, "sandboxes", id+".json")
}

// CNICacheDir keeps libcni's result cache in the state dir rather than
// /var/lib/cni, so a sandbox node never writes to the real machine's cache.
func (a *Agent) CNICacheDir() string { return filepath.Join(a.StateDir, "cni-cache") }

func (a *Agent) saveSandbox(sb agentapi.Sandbox) error {
	p := a.sandboxPath(sb.ID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("save sandbox %s: %w", sb.ID, err)
	}
	data, err := json.MarshalIndent(sb, "", "  ")
	if err != nil {
		return fmt.Errorf("save sandbox %s: %w", sb.ID, err)
	}
	// Write then rename so a reboot mid-write cannot leave half a record.
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("save sandbox %s: %w", sb.ID, err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("save sandbox %s: %w", sb.ID, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("save sandbox %s: %w", sb.ID, err)
	}
	return nil
}

// syncFile flushes a record to disk: a VM reboot must not lose it.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// LoadSandbox reads a sandbox record written by CreateSandbox.
func (a *Agent) LoadSandbox(id string) (agentapi.Sandbox, error) {
	var sb agentapi.Sandbox
	if err := checkID(id); err != nil {
		return sb, err
	}
	data, err := os.ReadFile(a.sandboxPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return sb, fmt.Errorf("no sandbox %q in %s: run `nodeagent sandbox create --id %s` first", id, a.StateDir, id)
	}
	if err != nil {
		return sb, fmt.Errorf("load sandbox %s: %w", id, err)
	}
	if err := json.Unmarshal(data, &sb); err != nil {
		return sb, fmt.Errorf("load sandbox %s: %w", id, err)
	}
	return sb, nil
}

// BootID names the current boot of the node.
func BootID() (string, error) {
	for _, p := range []string{SandboxBootIDFile, "/proc/sys/kernel/random/boot_id"} {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read boot id: %w", err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	return "", errors.New("read boot id: no boot id file")
}
