// Package bisect proves that `git bisect run pidreuse bisect` finds the
// commit that brought the loopback bug back: it builds a throw-away history
// of a loopback plugin, good then bad, and lets git and pidreuse find the
// regression with real namespaces and Debian's real loopback plugin.
package bisect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
)

// realLoopback is Debian's loopback plugin (`make deps` installs it). The
// plugin under bisection delegates to it, so every verdict comes from the
// real plugin entering a real netns.
const realLoopback = "/usr/lib/cni/loopback"

// pluginGoMod has no requirements, so building a commit needs no network.
const pluginGoMod = "module example.invalid/loopback\n\ngo 1.22\n"

// pluginSource is one commit's loopback plugin. With guard it refuses a DEL
// whose netns is the node's own (the ephemeral-path bug after PID reuse);
// without it, it hands every call to the real plugin, as v1.x does.
func pluginSource(version string, guard bool) string {
	var b strings.Builder
	b.WriteString(`// Command loopback is the CNI loopback plugin of this history: it hands
// every call to Debian's plugin, which does the real work.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
)

const version = "` + version + `"

const realPlugin = "` + realLoopback + `"

func main() {
`)
	if guard {
		b.WriteString(`	// A DEL naming the host's netns comes from a stale /proc/PID/ns/net
	// path whose PID now belongs to a host process: the pod's netns is
	// gone, so there is nothing to delete, and delegating would set the
	// host's lo down. Per the CNI spec a successful DEL prints nothing.
	if os.Getenv("CNI_COMMAND") == "DEL" && isHostNetns(os.Getenv("CNI_NETNS")) {
		os.Exit(0)
	}
`)
	}
	b.WriteString(`	// Exec keeps stdin (the network config), args and env as they are.
	err := syscall.Exec(realPlugin, append([]string{realPlugin}, os.Args[1:]...), os.Environ())
	msg, _ := json.Marshal(fmt.Sprintf("loopback %s: exec %s: %v (install Debian's containernetworking-plugins)", version, realPlugin, err))
	fmt.Printf("{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":%s}\n", msg)
	os.Exit(1)
}
`)
	if guard {
		b.WriteString(`
// isHostNetns says whether path names the same netns as PID 1's: an
// nsfs inode is the namespace's identity.
func isHostNetns(path string) bool {
	if path == "" {
		return false
	}
	var ns, host syscall.Stat_t
	if syscall.Stat(path, &ns) != nil || syscall.Stat("/proc/1/ns/net", &host) != nil {
		// Let the real plugin report what is wrong with the path.
		return false
	}
	return ns.Dev == host.Dev && ns.Ino == host.Ino
}
`)
	}
	return b.String()
}

// history is the throw-away repository: commit i (1-based) is good when
// i < firstBad.
const (
	commits  = 8
	firstBad = 5
)

func TestBisectFindsFirstBadCommit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: pidreuse's sandbox tier creates pid, net and mount namespaces")
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	if _, err := os.Stat(realLoopback); err != nil {
		t.Fatalf("Debian's loopback plugin: %v: run `make deps` (installs containernetworking-plugins)", err)
	}
	for _, tool := range []string{"go", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not on PATH: %v (go test puts GOROOT/bin on PATH; install git with apt-get)", tool, err)
		}
	}
	hostBefore, err := e2eutil.ReadHostNet()
	if err != nil {
		t.Fatal(err)
	}
	if !hostBefore.LoUp {
		t.Fatalf("the real machine's lo is already down (%s) before the test: set it up (ip link set lo up), or the verdicts mean nothing", hostBefore.LoFlags)
	}

	// pidreuse finds nodeagent and failonce next to itself: one dir.
	toolDir := t.TempDir()
	for _, name := range []string{"pidreuse", "nodeagent", "failonce"} {
		run(ctx, t, e2eutil.RepoRoot(), []string{"CGO_ENABLED=0"},
			"go", "build", "-trimpath", "-o", filepath.Join(toolDir, name), "./cmd/"+name)
	}
	pidreuse := filepath.Join(toolDir, "pidreuse")
	pluginDir := t.TempDir()

	repo := t.TempDir()
	// The global and system git config are not ours: a commit.gpgsign or
	// hook there must not change this history.
	gitEnv := []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}
	git := func(args ...string) string { return run(ctx, t, repo, gitEnv, "git", args...) }
	git("init", "-q", "-b", "main")
	git("config", "user.name", "pidreuse bisect test")
	git("config", "user.email", "bisect-test@example.invalid")
	hashes := make([]string, commits+1) // 1-based
	for i := 1; i <= commits; i++ {
		good := i < firstBad
		msg := fmt.Sprintf("loopback v0.%d.0", i)
		if i == firstBad {
			msg += ": delegate every DEL to the real plugin (drops the host-netns guard)"
		}
		writeFile(t, filepath.Join(repo, "go.mod"), pluginGoMod)
		writeFile(t, filepath.Join(repo, "main.go"), pluginSource(fmt.Sprintf("v0.%d.0", i), good))
		git("add", "-A")
		git("commit", "-q", "-m", msg)
		hashes[i] = git("rev-parse", "HEAD")
	}
	first, last, want := hashes[1], hashes[commits], hashes[firstBad]

	// The same environment for the endpoint checks and for the bisect
	// script, so both judge the same builds.
	// TMPDIR and PIDREUSE_REPORT_DIR keep pidreuse's node dirs, the
	// artifacts it keeps of every "good" verdict (a mismatch with the
	// scenario's expectation) and its reports inside this test's dirs.
	buildEnv := append([]string{
		"GOTOOLCHAIN=local", "GOFLAGS=", "GOWORK=off", "CGO_ENABLED=0",
		"BIN=" + pluginDir, "PIDREUSE=" + pidreuse,
		"TMPDIR=" + t.TempDir(), "PIDREUSE_REPORT_DIR=" + t.TempDir(),
	}, gitEnv...)
	judge := func(commit string) (int, string) {
		git("checkout", "-q", commit)
		run(ctx, t, repo, buildEnv, "go", "build", "-o", filepath.Join(pluginDir, "loopback"), ".")
		return exitCode(ctx, t, repo, buildEnv, pidreuse, "bisect", "--tier", "sandbox", "--scenario", "ephemeral-reused", "--cni-bin-dir", pluginDir)
	}
	// Both endpoints first: if the good one were bad or the bad one good,
	// bisect would still name some commit and this test would prove nothing.
	if code, out := judge(first); code != 0 {
		t.Fatalf("commit 1 (%s, with the guard): pidreuse bisect exit %d, want 0 (host lo survived):\n%s", first, code, out)
	}
	if code, out := judge(last); code != 1 {
		t.Fatalf("commit %d (%s, without the guard): pidreuse bisect exit %d, want 1 (host lo went down):\n%s", commits, last, code, out)
	}
	git("checkout", "-q", "main")

	git("bisect", "start", last, first)
	script := `go build -o "$BIN/loopback" . || exit 125; "$PIDREUSE" bisect --tier sandbox --scenario ephemeral-reused --cni-bin-dir "$BIN"`
	code, out := exitCode(ctx, t, repo, buildEnv, "git", "bisect", "run", "sh", "-c", script)
	t.Logf("git bisect run:\n%s", out)
	if code != 0 {
		t.Fatalf("git bisect run exit %d, want 0 (it names a first bad commit)", code)
	}
	m := regexp.MustCompile(`(?m)^([0-9a-f]{40}) is the first bad commit$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in git bisect's output (a skipped commit makes the answer ambiguous)", "<hash> is the first bad commit")
	}
	if m[1] != want {
		t.Errorf("git bisect says %s is the first bad commit, want commit %d %s", m[1], firstBad, want)
	}
	if bad := git("rev-parse", "refs/bisect/bad"); bad != want {
		t.Errorf("refs/bisect/bad is %s, want commit %d %s", bad, firstBad, want)
	}

	// Every bad verdict above set a sandbox node's lo down, never this
	// machine's.
	hostAfter, err := e2eutil.ReadHostNet()
	if err != nil {
		t.Fatal(err)
	}
	if !hostAfter.LoUp || hostAfter.NetnsInode != hostBefore.NetnsInode {
		t.Fatalf("the real machine's network changed: lo %s (was %s), netns inode %d (was %d): run `ip link set lo up` at once",
			hostAfter.LoFlags, hostBefore.LoFlags, hostAfter.NetnsInode, hostBefore.NetnsInode)
	}
	// A second witness, as an operator would look: lo's operstate is
	// UNKNOWN, so the UP that counts is the flag in <...>.
	out = run(ctx, t, "/", nil, "ip", "-br", "link", "show", "lo")
	if flags := regexp.MustCompile(`<([^>]*)>`).FindStringSubmatch(out); flags == nil || !slices.Contains(strings.Split(flags[1], ","), "UP") {
		t.Fatalf("ip -br link show lo: %q: the real machine's lo is not UP: run `ip link set lo up` at once", out)
	}
	t.Logf("bisect test took %s", time.Since(start).Round(time.Millisecond))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// run runs a command that must succeed and returns its trimmed stdout.
func run(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	code, out := exitCode(ctx, t, dir, env, name, args...)
	if code != 0 {
		t.Fatalf("%s %s (in %s): exit %d:\n%s", name, strings.Join(args, " "), dir, code, out)
	}
	return strings.TrimSpace(out)
}

// exitCode runs a command and returns its exit code with stdout and stderr
// together (git bisect prints its answer on stdout, the script's stderr
// explains a skip). The command runs in its own process group so a timeout
// also stops the pidreuse it started, not just sh.
func exitCode(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: %v (the whole test has 3 minutes; a step that hangs points at a node that did not start):\n%s", name, strings.Join(args, " "), ctx.Err(), out.String())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	return 0, out.String()
}
