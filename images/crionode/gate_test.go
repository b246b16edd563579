package crionode

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/internal/crioguest"
)

// gateSetup lays the image's CNI gate over a fake plugin that records its
// arguments, stdin and netns, as the stop-race scenario does in the node.
func gateSetup(t *testing.T) (plugin, gate string, env func(cmd, id string) []string) {
	t.Helper()
	files := render(t, CRIDockerd, nil)
	script, ok := files[crioguest.GateScript]
	if !ok {
		t.Fatalf("the image has no %s", crioguest.GateScript)
	}
	dir := t.TempDir()
	gate = filepath.Join(dir, "gate")
	plugin = filepath.Join(dir, "loopback")
	if err := os.MkdirAll(gate, 0o755); err != nil {
		t.Fatal(err)
	}
	real := `#!/bin/sh
echo "$CNI_COMMAND $CNI_NETNS $* stdin=$(cat)" >> "$(dirname "$0")/calls"
[ "$CNI_COMMAND" = DEL ] && exit 3
exit 0
`
	if err := os.WriteFile(plugin+crioguest.GatedSuffix, []byte(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env = func(cmd, id string) []string {
		return append(os.Environ(), "PIDREUSE_CNI_GATE_DIR="+gate, "PIDREUSE_CNI_RECORD_DIR="+filepath.Join(dir, "record"), "CNI_COMMAND="+cmd, "CNI_CONTAINERID="+id, "CNI_NETNS=/proc/4242/ns/net", "CNI_IFNAME=eth0")
	}
	return plugin, gate, env
}

func runPlugin(t *testing.T, plugin string, env []string) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command(plugin, "arg1")
	cmd.Env = env
	cmd.Stdin = strings.NewReader(`{"type":"loopback"}`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done
}

// The armed sandbox's first DEL waits at the gate until released, says
// what the runtime gave it, then runs the real plugin with the same
// arguments and stdin and passes on its exit code.
func TestGateHoldsTheArmedDEL(t *testing.T) {
	plugin, gate, env := gateSetup(t)
	os.WriteFile(filepath.Join(gate, "armed"), []byte("sb1\n"), 0o644)

	_, done := runPlugin(t, plugin, env("DEL", "sb1"))
	var held map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; {
		data, err := os.ReadFile(filepath.Join(gate, "held"))
		if err == nil {
			if err := json.Unmarshal(data, &held); err != nil {
				t.Fatalf("held %q: %v", data, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the DEL never reached the gate")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if held["netns"] != "/proc/4242/ns/net" || held["container_id"] != "sb1" || held["plugin"] != "loopback" {
		t.Errorf("held = %v", held)
	}
	select {
	case err := <-done:
		t.Fatalf("DEL went through the closed gate: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(plugin), "calls")); err == nil {
		t.Fatal("the real plugin ran before the gate opened")
	}
	os.WriteFile(filepath.Join(gate, "release"), nil, 0o644)
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err == nil || !strings.Contains(err.Error(), "exit status 3") || !errors.As(err, &exit) {
			t.Errorf("DEL's exit = %v, want the real plugin's 3", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DEL still held after the release")
	}
	calls, _ := os.ReadFile(filepath.Join(filepath.Dir(plugin), "calls"))
	if got := strings.TrimSpace(string(calls)); got != `DEL /proc/4242/ns/net arg1 stdin={"type":"loopback"}` {
		t.Errorf("the real plugin got %q", got)
	}
	doneData, _ := os.ReadFile(filepath.Join(gate, "done"))
	var d map[string]any
	if err := json.Unmarshal(doneData, &d); err != nil || d["exit"] != float64(3) || d["released"] != true {
		t.Errorf("done = %q (%v)", doneData, err)
	}
}

// Every other call — ADD, another sandbox's DEL, a second DEL — goes
// straight through.
func TestGatePassesTheRest(t *testing.T) {
	plugin, gate, env := gateSetup(t)
	os.WriteFile(filepath.Join(gate, "armed"), []byte("sb1\n"), 0o644)
	for _, c := range []struct{ cmd, id string }{{"ADD", "sb1"}, {"DEL", "sb2"}} {
		_, done := runPlugin(t, plugin, env(c.cmd, c.id))
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s of %s held", c.cmd, c.id)
		}
	}
	os.WriteFile(filepath.Join(gate, "held"), []byte("{}"), 0o644)
	_, done := runPlugin(t, plugin, env("DEL", "sb1"))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a second DEL of the armed sandbox was held")
	}
	calls, _ := os.ReadFile(filepath.Join(filepath.Dir(plugin), "calls"))
	if n := strings.Count(string(calls), "\n"); n != 3 {
		t.Errorf("the real plugin ran %d times, want 3:\n%s", n, calls)
	}
}

// With the record dir there, every DEL is written down, held or not, and
// nothing else.
func TestGateRecordsEveryDEL(t *testing.T) {
	plugin, _, env := gateSetup(t)
	record := filepath.Join(filepath.Dir(plugin), "record")
	os.MkdirAll(record, 0o755)
	for _, c := range []struct{ cmd, id string }{{"ADD", "sb1"}, {"DEL", "sb1"}, {"DEL", "sb2"}} {
		_, done := runPlugin(t, plugin, env(c.cmd, c.id))
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s of %s held", c.cmd, c.id)
		}
	}
	data, _ := os.ReadFile(filepath.Join(record, "dels.jsonl"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"container_id":"sb1","netns":"/proc/4242/ns/net"`) || !strings.Contains(lines[1], `"container_id":"sb2"`) {
		t.Errorf("dels.jsonl:\n%s", data)
	}
}

// The runc gate holds the create of a container joining the armed pause's
// netns, runs the real create, and says which namespaces its init got.
func TestRuncGateHoldsTheJoiningCreate(t *testing.T) {
	files := render(t, Containerd, nil)
	script, ok := files[crioguest.RuncGateScript]
	if !ok {
		t.Fatalf("the image has no %s", crioguest.RuncGateScript)
	}
	dir := t.TempDir()
	gate, gateBin, real := filepath.Join(dir, "gate"), filepath.Join(dir, "runc"), filepath.Join(dir, "runc.real")
	os.MkdirAll(gate, 0o755)
	// The fake runc leaves a "container init" waiting, as runc create
	// does: a sleep, in the test's own namespaces.
	fake := `#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls"
prev=
for a in "$@"; do
	if [ "$prev" = --pid-file ]; then sleep 5 & echo $! > "$a"; fi
	prev="$a"
done
exit 0
`
	os.WriteFile(real, []byte(fake), 0o755)
	os.WriteFile(gateBin, []byte(script), 0o755)
	bundle := filepath.Join(dir, "bundle")
	os.MkdirAll(bundle, 0o755)
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"linux":{"namespaces":[{"type":"network","path":"/proc/4242/ns/net"},{"type":"ipc","path":"/proc/4242/ns/ipc"},{"type":"uts","path":"/proc/4242/ns/uts"},{"type":"mount"}]}}`), 0o644)
	os.WriteFile(filepath.Join(gate, "armed"), []byte("4242\n"), 0o644)
	env := append(os.Environ(), "PIDREUSE_RUNC_GATE_DIR="+gate, "PIDREUSE_RUNC_REAL="+real)

	// Not a create: straight through.
	state := exec.Command(gateBin, "--root", "/run/x", "state", "c1")
	state.Env = env
	if out, err := state.CombinedOutput(); err != nil {
		t.Fatalf("state: %v %s", err, out)
	}
	create := exec.Command(gateBin, "--root", "/run/x", "--log", "/tmp/l.json", "create", "--bundle", bundle, "--pid-file", filepath.Join(dir, "init.pid"), "c1")
	create.Env = env
	if err := create.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- create.Wait() }()
	var held map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; {
		if data, err := os.ReadFile(filepath.Join(gate, "held")); err == nil {
			if err := json.Unmarshal(data, &held); err != nil {
				t.Fatalf("held %q: %v", data, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("create never reached the gate")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if held["joins"] != "/proc/4242/ns/net /proc/4242/ns/ipc /proc/4242/ns/uts" || held["container_id"] != "c1" || held["bundle"] != bundle {
		t.Errorf("held = %v", held)
	}
	select {
	case err := <-done:
		t.Fatalf("create went through the closed gate: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	os.WriteFile(filepath.Join(gate, "release"), nil, 0o644)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("create: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("create still held after the release")
	}
	data, _ := os.ReadFile(filepath.Join(gate, "done"))
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("done %q: %v", data, err)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	if d["exit"] != float64(0) || d["released"] != true || d["pid"] == float64(0) || d["net"] != self {
		t.Errorf("done = %v, want exit 0 and net %s", d, self)
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	if n := strings.Count(string(calls), "\n"); n != 2 {
		t.Errorf("the real runc ran %d times, want 2:\n%s", n, calls)
	}
}
