package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/internal/nodebin"
)

// binDir holds pidreuse, nodeagent and failonce built for these tests: the
// CLI is tested as a user runs it, as a separate process with exit codes.
var binDir string

func TestMain(m *testing.M) {
	// Not named pidreuse-*: `pidreuse clean` would take it for a leftover.
	dir, err := os.MkdirTemp("", "clitest-pidreuse-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // the not-root test runs the binary as nobody
	for _, name := range append([]string{"pidreuse"}, nodebin.All()...) {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			panic(string(out))
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, cred *syscall.Credential, args ...string) cliResult {
	t.Helper()
	return runCLIEnv(t, cred, nil, args...)
}

// runCLIEnv is runCLI with env added to the test's environment.
func runCLIEnv(t *testing.T, cred *syscall.Credential, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "pidreuse"), args...)
	cmd.Env = append(append(os.Environ(), "PIDREUSE_REPORT_DIR="+t.TempDir()), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run pidreuse: %v", err)
	}
	return cliResult{code, stdout.String(), stderr.String()}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the sandbox tier creates namespaces")
	}
}

// Bad input never reaches a verdict: exit 125 and one clear line.
func TestBadInputIsNoVerdict(t *testing.T) {
	needRoot(t)
	empty := t.TempDir()
	notExec := t.TempDir()
	os.WriteFile(filepath.Join(notExec, "loopback"), []byte("x"), 0o644)
	notCNI := t.TempDir()
	if data, err := os.ReadFile("/bin/false"); err == nil {
		os.WriteFile(filepath.Join(notCNI, "loopback"), data, 0o755)
	}
	notELF := t.TempDir()
	os.WriteFile(filepath.Join(notELF, "loopback"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	aFile := filepath.Join(t.TempDir(), "report")
	os.WriteFile(aFile, nil, 0o644)
	cases := []struct {
		name string
		args []string
		want string
		env  []string
		code int // exit code; 0 means exitNoVerdict
	}{
		{"unknown scenario", []string{"run", "--scenario", "nope"}, `unknown scenario "nope"`, nil, exitUsage},
		{"unknown scenario, bisect", []string{"bisect", "--scenario", "nope"}, `unknown scenario "nope"`, nil, 0},
		{"a scenario named twice", []string{"run", "--scenario", "del-retry,del-retry"}, `"del-retry" is named twice`, nil, exitUsage},
		{"plugin versions as a list", []string{"run", "--plugin-version", "v1.6.2,v1.10.0,v1.6.2"}, `"v1.6.2" is named twice`, nil, exitUsage},
		{"a plugin version that is not pinned", []string{"bisect", "--scenario", "ephemeral-reused", "--plugin-version", "v1.9.9"}, `CNI plugin version "v1.9.9": want one of v0.8.7`, nil, 0},
		{"a plugin version with a path", []string{"run", "--plugin-version", "v/../../../../x"}, `CNI plugin version "v/../../../../x"`, nil, exitUsage},
		{"plugin version and a plugin dir", []string{"run", "--plugin-version", "v1.6.2", "--cni-bin-dir", empty}, "name one", nil, exitUsage},
		{"libvirt uri on the sandbox tier", []string{"run", "--libvirt-uri", "qemu:///system"}, "--libvirt-uri applies to --tier vm", nil, exitUsage},
		{"reboot on the sandbox tier", []string{"bisect", "--scenario", "ephemeral-reused", "--reboot", "reset"}, "--reboot applies to --tier vm", nil, 0},
		{"bad PIDREUSE_KEEP", []string{"run"}, `PIDREUSE_KEEP "sometimes": use never, on-failure or always`, []string{"PIDREUSE_KEEP=sometimes"}, exitUsage},
		{"bad PIDREUSE_NODEAGENT", []string{"run"}, "PIDREUSE_NODEAGENT: nodeagent /nonexistent/nodeagent is missing", []string{"PIDREUSE_NODEAGENT=/nonexistent/nodeagent"}, exitUsage},
		{"bad PIDREUSE_TIMEOUT_SCALE", []string{"bisect", "--scenario", "ephemeral-reused"}, "PIDREUSE_TIMEOUT_SCALE: timeout scale \"-1\"", []string{"PIDREUSE_TIMEOUT_SCALE=-1"}, 0},
		{"bad --timeout-scale", []string{"run", "--timeout-scale", "0"}, `--timeout-scale: timeout scale "0"`, nil, exitUsage},
		{"missing plugin dir", []string{"run", "--cni-bin-dir", "/nonexistent/cni"}, "has no loopback plugin", nil, 0},
		{"dir without loopback", []string{"run", "--cni-bin-dir", empty}, "has no loopback plugin", nil, 0},
		{"non-executable plugin", []string{"run", "--cni-bin-dir", notExec}, "is not an executable file", nil, 0},
		{"a binary that is no CNI plugin", []string{"run", "--cni-bin-dir", notCNI}, "does not run (CNI_COMMAND=VERSION)", nil, 0},
		{"not an ELF plugin", []string{"bisect", "--scenario", "ephemeral-reused", "--cni-bin-dir", notELF}, "is not an ELF executable", nil, 0},
		{"unknown tier", []string{"run", "--tier", "cloud"}, `unknown tier "cloud"`, nil, exitUsage},
		{"crio on the cri-dockerd node", []string{"bisect", "--tier", "vm", "--node", "cri-dockerd", "--scenario", "stop-race", "--crio", "/bin/true"}, "--crio: node cri-dockerd runs docker, not crio", nil, 0},
		{"cri-dockerd on a CRI-O node", []string{"run", "--tier", "vm", "--node", "crio-1.34", "--scenario", "stop-race", "--cri-dockerd", "/bin/true"}, "--cri-dockerd: node crio-1.34 runs cri-o, not cri-dockerd", nil, exitUsage},
		{"join-race on a CRI-O node", []string{"bisect", "--tier", "vm", "--node", "crio-1.34", "--scenario", "join-race"}, "node crio-1.34 cannot play join-race", nil, 0},
		{"odds on a node without CRI-O", []string{"odds", "--node", "containerd", "--reboots", "1"}, "odds: --node containerd runs containerd: odds measures CRI-O's DELs", nil, exitUsage},
		{"a CRI-O scenario on the containerd node", []string{"run", "--tier", "vm", "--node", "containerd", "--scenario", "crio-kubelet-reboot"}, "node containerd cannot play crio-kubelet-reboot", nil, 0},
		{"unknown plugin version", []string{"run", "--plugin-version", "latest"}, `CNI plugin version "latest": want one of`, nil, exitUsage},
		{"no libvirtd", []string{"run", "--tier", "vm", "--scenario", "ephemeral-reused", "--libvirt-socket", "/nonexistent/libvirt-sock"}, "libvirtd not reachable at /nonexistent/libvirt-sock: run `make deps`", nil, 0},
		{"vm bisect, missing agent", []string{"bisect", "--tier", "vm", "--scenario", "ephemeral-reused", "--agent", "/nonexistent/nodeagent"}, "nodeagent /nonexistent/nodeagent is missing", nil, 0},
		{"bisect with two scenarios", []string{"bisect", "--scenario", "all"}, "name exactly one --scenario", nil, 0},
		{"crio on the sandbox tier", []string{"bisect", "--scenario", "ephemeral-reused", "--crio", "/bin/true"}, "--crio applies to --tier vm", nil, 0},
		{"crio with a scenario that runs no CRI-O", []string{"bisect", "--tier", "vm", "--scenario", "ephemeral-reused", "--crio", "/bin/true"}, "--crio only matters to the scenarios that run CRI-O", nil, 0},
		{"crio that is not an ELF", []string{"bisect", "--tier", "vm", "--scenario", "crio-kubelet-reboot", "--crio", filepath.Join(notELF, "loopback")}, "--crio: " + filepath.Join(notELF, "loopback") + " is not an ELF executable", nil, 0},
		{"kubelet without --version", []string{"bisect", "--tier", "vm", "--scenario", "crio-kubelet-reboot", "--kubelet", "/bin/false"}, "--kubelet: `/bin/false --version` failed", nil, 0},
		{"report dir is a file", []string{"run", "--report-dir", aFile}, "report dir " + aFile + " cannot be created", nil, 0},
		{"report dir is read-only", []string{"bisect", "--scenario", "ephemeral-reused", "--report-dir", "/proc/sys"}, "report dir /proc/sys is not writable", nil, 0},
		{"unknown node", []string{"run", "--tier", "vm", "--node", "crio-0.1", "--scenario", "crio-kubelet-reboot"}, `--node: unknown node "crio-0.1": choose one of containerd, cri-dockerd, crio-1.16, crio-1.17, crio-1.34`, nil, exitUsage},
		{"forced pinning on a CRI-O without the switch", []string{"bisect", "--tier", "vm", "--node", "crio-1.34", "--scenario", "crio-unpinned-reboot"}, "crio-unpinned-reboot: node crio-1.34: CRI-O v1.34.0 has no namespace pinning switch", nil, 0},
		{"missing pinns", []string{"bisect", "--tier", "vm", "--scenario", "crio-kubelet-reboot", "--pinns", "/nonexistent/pinns"}, "--pinns: stat /nonexistent/pinns: no such file", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.code
			if want == 0 {
				want = exitNoVerdict
			}
			reports := filepath.Join(t.TempDir(), "reports")
			r := runCLIEnv(t, nil, append([]string{"PIDREUSE_REPORT_DIR=" + reports}, c.env...), c.args...)
			if r.code != want {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, want, r.stderr)
			}
			if _, err := os.Stat(reports); err == nil && !strings.HasPrefix(c.name, "report dir") {
				t.Errorf("a refused run created its report dir %s", reports)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) {
				t.Fatalf("stderr %q: want one line containing %q", r.stderr, c.want)
			}
			if strings.Contains(r.stdout, "pass") || strings.Contains(r.stdout, "FAIL") {
				t.Fatalf("printed a verdict on bad input: %s", r.stdout)
			}
		})
	}
}

// A bug-era node whose CRI-O source is nowhere (no PIDREUSE_CRIO_SOURCES,
// no cached clone, upstream unreachable) is refused at once by every
// command that would build or boot it: exit 125, one line naming the tag,
// what was tried and the variable, and nothing created.
func TestNoCRIOSourceIsNoVerdictAtOnce(t *testing.T) {
	for _, c := range []struct {
		tag  string
		args []string
	}{
		{versions.CRIO117, []string{"run", "--tier", "vm", "--node", "crio-1.17", "--scenario", "crio-kubelet-reboot"}},
		{versions.CRIO116, []string{"bisect", "--tier", "vm", "--node", "crio-1.16", "--scenario", "crio-kubelet-reboot"}},
		{versions.CRIO117, []string{"odds", "--node", "crio-1.17", "--reboots", "1"}},
		{versions.CRIO116, []string{"image", "build", "--node", "crio-1.16"}},
		{versions.CRIO117, []string{"image", "hash", "--node", "crio-1.17"}},
	} {
		t.Run(strings.Join(c.args[:2], " "), func(t *testing.T) {
			cache, tmp, reports := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "reports")
			start := time.Now()
			// Nothing listens on port 1 of loopback: refused at once, as an
			// unreachable upstream is here.
			r := runCLIEnv(t, nil, []string{"PIDREUSE_CACHE_DIR=" + cache, "PIDREUSE_CRIO_SOURCES=", "PIDREUSE_CRIO_UPSTREAM=https://127.0.0.1:1/cri-o/cri-o",
				"TMPDIR=" + tmp, "PIDREUSE_REPORT_DIR=" + reports}, c.args...)
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("took %s to refuse", took)
			}
			if r.code != exitNoVerdict {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitNoVerdict, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			want := []string{"CRI-O " + c.tag + " source not available", "PIDREUSE_CRIO_SOURCES (unset)", "fetching tag " + c.tag, "set PIDREUSE_CRIO_SOURCES to a dir holding a clone of upstream CRI-O as cri-o/"}
			for _, w := range want {
				if len(lines) != 1 || !strings.Contains(lines[0], w) {
					t.Errorf("stderr %q: want one line containing %q", r.stderr, w)
				}
			}
			for _, dir := range []string{tmp, reports} {
				if entries, _ := os.ReadDir(dir); len(entries) > 0 {
					t.Errorf("a refused run left %v in %s", entries, dir)
				}
			}
		})
	}
}

// A loopback plugin whose DEL never returns ends a bisect step as "timed
// out", 125, once the step's deadline passes (scaled down here), with the
// node torn down and nothing of the plugin left running.
func TestStuckDELTimesOutAsNoVerdict(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/usr/lib/cni/loopback"); err != nil {
		t.Skip("needs Debian's CNI plugins (make deps)")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "loopback"), "./testdata/stuckdel")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the stuck plugin: %v\n%s", err, out)
	}
	tmp := t.TempDir()
	before := hostNet(t)
	start := time.Now()
	// 0.05 × the agent step's 2 minutes: 6 s.
	r := runCLIEnv(t, nil, []string{"TMPDIR=" + tmp}, "bisect", "--tier", "sandbox", "--scenario", "ephemeral-reused", "--cni-bin-dir", dir, "--timeout-scale", "0.05")
	took := time.Since(start)
	if r.code != exitNoVerdict {
		t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitNoVerdict, r.stderr)
	}
	if !strings.Contains(r.stderr, "timed out: nodeagent cni del after 6s") {
		t.Errorf("stderr does not say which step timed out: %s", r.stderr)
	}
	if took > time.Minute {
		t.Errorf("took %s", took)
	}
	if after := hostNet(t); after != before {
		t.Errorf("the real machine's lo or netns changed: %+v, was %+v", after, before)
	}
	// Only this test's plugin and its child (another run's may be alive
	// on the machine): both are named after the plugin's path.
	for _, pattern := range []string{filepath.Join(dir, "loopback"), filepath.Join(dir, "loopback") + "-sleep 3600"} {
		if out, _ := exec.Command("pgrep", "-f", pattern).Output(); len(out) > 0 {
			t.Errorf("%s is still running: pids %s", pattern, out)
		}
	}
	// A failed run keeps only the node's artifacts, which it names.
	runs, _ := filepath.Glob(filepath.Join(tmp, "pidreuse-*"))
	for _, run := range runs {
		entries, _ := os.ReadDir(run)
		if len(entries) != 1 || entries[0].Name() != "artifacts" || !strings.Contains(r.stderr, filepath.Join(run, "artifacts")) {
			t.Errorf("the run left %v in %s (stderr: %s)", entries, run, r.stderr)
		}
	}
}

// realNet is what the CLI's tests check of the machine they run on: its lo
// flags (IFF_UP is bit 0) and the netns of this process.
type realNet struct {
	loFlags string
	netns   uint64
}

func hostNet(t *testing.T) realNet {
	t.Helper()
	flags, err := os.ReadFile("/sys/class/net/lo/flags")
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	n := realNet{loFlags: strings.TrimSpace(string(flags)), netns: st.Ino}
	if v, err := strconv.ParseUint(strings.TrimPrefix(n.loFlags, "0x"), 16, 32); err != nil || v&1 == 0 {
		t.Fatalf("the real machine's lo is not up (flags %s): fix the machine first", n.loFlags)
	}
	return n
}

// pidreuse nodes lists every profile with what decides the bug on it.
func TestNodes(t *testing.T) {
	r := runCLI(t, nil, "nodes")
	if r.code != exitGood {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"crio-1.34 (default)", "crio-1.17", "crio-1.16", "v1.17.5", "manage_ns_lifecycle", "manage_network_ns_lifecycle", "/proc/<old infra pid>/ns/net", "v1 (cgroupfs)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("pidreuse nodes lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestNotRootIsNoVerdict(t *testing.T) {
	needRoot(t)
	r := runCLI(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "run", "--tier", "sandbox", "--plugin-version", versions.DebianCNIPlugins)
	if r.code != exitNoVerdict || !strings.Contains(r.stderr, "needs root") {
		t.Fatalf("exit %d, stderr %q: want 125 and a 'needs root' line", r.code, r.stderr)
	}
}

// Help is on stdout with exit 0: the overview names every command, and
// each command's help has its usage lines and flags with value names.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		r := runCLI(t, nil, args...)
		if r.code != exitGood {
			t.Errorf("%v: exit %d", args, r.code)
		}
		for _, c := range commands {
			if !strings.Contains(r.stdout, "  "+c.name+" ") {
				t.Errorf("%v does not list %s:\n%s", args, c.name, r.stdout)
			}
		}
		if !strings.Contains(r.stdout, "125  no verdict") {
			t.Errorf("%v has no exit code table", args)
		}
	}
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "-h"}, {"help", c.name}} {
			r := runCLI(t, nil, args...)
			if r.code != exitGood || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "pidreuse "+c.name) || strings.Contains(r.stderr, "help requested") {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stdout, "-node pidreuse") {
				t.Errorf("%v: a flag's value name is a phrase:\n%s", args, r.stdout)
			}
		}
	}
}

func TestUsage(t *testing.T) {
	if r := runCLI(t, nil, "frobnicate"); r.code != exitUsage {
		t.Fatalf("exit %d, want %d", r.code, exitUsage)
	}
}

// The JSON output carries the documented fields and real verdicts.
func TestRunJSON(t *testing.T) {
	needRoot(t)
	r := runCLI(t, nil, "run", "--tier", "sandbox", "--scenario", "all", "--plugin-version", versions.DebianCNIPlugins, "--json")
	if r.code != exitGood {
		t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	seen := map[string]bool{}
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		for _, k := range []string{"scenario", "tier", "pluginVersion", "netnsPath", "pidReused", "delError", "loUp", "expectedLoUp", "pass", "durationMs"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%v: no %q", m["scenario"], k)
			}
		}
		if m["pass"] != true || m["loUp"] != m["expectedLoUp"] {
			t.Errorf("%v: pass=%v loUp=%v expected=%v", m["scenario"], m["pass"], m["loUp"], m["expectedLoUp"])
		}
		checks, _ := m["checks"].([]any)
		if len(checks) < 3 {
			t.Errorf("%v: checks %v: want the scenario's checks", m["scenario"], m["checks"])
		}
		for _, c := range checks {
			if c.(map[string]any)["ok"] != true {
				t.Errorf("%v: check failed: %v", m["scenario"], c)
			}
		}
		seen[m["scenario"].(string)] = true
	}
	if len(seen) != 4 {
		t.Fatalf("got scenarios %v, want all 4", seen)
	}
}

// bisect judges the plugin, not the expectation: 1 when lo went down.
func TestBisectExitCodes(t *testing.T) {
	needRoot(t)
	for scenario, want := range map[string]int{"ephemeral-reused": exitBad, "pinned-reused": exitGood} {
		r := runCLI(t, nil, "bisect", "--tier", "sandbox", "--scenario", scenario, "--cni-bin-dir", versions.DebianCNIPluginDir)
		if r.code != want {
			t.Errorf("%s: exit %d, want %d; stderr: %s", scenario, r.code, want, r.stderr)
		}
	}
}

// SIGINT at any point of a sandbox run leaves no node process and no work
// dir behind, says "no verdict", and the next run works.
func TestInterruptLeavesNothing(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	for _, delay := range []time.Duration{150 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
		cmd := exec.Command(filepath.Join(binDir, "pidreuse"), "run", "--tier", "sandbox", "--plugin-version", "all")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "PIDREUSE_REPORT_DIR="+t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() != exitNoVerdict {
			t.Errorf("SIGINT after %s: exit %d, want %d (no verdict); stderr: %s", delay, exit.ExitCode(), exitNoVerdict, stderr.String())
		}
		if err == nil {
			t.Logf("SIGINT after %s: the run had already finished", delay)
		}
		if left := nodeProcesses(); len(left) > 0 {
			t.Fatalf("SIGINT after %s left processes: %v", delay, left)
		}
		if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
			t.Fatalf("SIGINT after %s left %d entries in TMPDIR, first %s", delay, len(entries), entries[0].Name())
		}
	}
	if r := runCLI(t, nil, "run", "--tier", "sandbox", "--plugin-version", versions.DebianCNIPlugins); r.code != exitGood {
		t.Fatalf("the run after the interrupts: exit %d; %s", r.code, r.stderr)
	}
}

// nodeProcesses lists running processes of this test's nodeagent binary.
func nodeProcesses() []string {
	agent := filepath.Join(binDir, "nodeagent")
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err == nil && strings.TrimSuffix(exe, " (deleted)") == agent {
			out = append(out, e.Name())
		}
	}
	return out
}

// `image hash` prints the plain node image's input hash alone on stdout
// without building the image (a CI cache key): stable, and another for
// another Debian mirror.
func TestImageHash(t *testing.T) {
	needRoot(t) // the plugin cache is root's
	hash := func(env ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, "pidreuse"), "image", "hash")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("image hash %v: %v", env, err)
		}
		h := strings.TrimSpace(string(out))
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			t.Fatalf("image hash printed %q, want 64 hex digits alone", out)
		}
		return h
	}
	a, b := hash(), hash()
	if a != b {
		t.Errorf("two hashes of the same inputs: %s, %s", a, b)
	}
	if m := hash("PIDREUSE_DEBIAN_MIRROR=http://127.0.0.1:9/debian"); m == a {
		t.Errorf("another mirror, same hash %s", m)
	}
	if r := runCLI(t, nil, "image", "hash", "--node", "nope"); r.code != exitNoVerdict || !strings.Contains(r.stderr, "--node") {
		t.Errorf("unknown node: exit %d, stderr %q", r.code, r.stderr)
	}
}
