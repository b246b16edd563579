package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/images/components"
	"github.com/pidreuse/pidreuse/images/crionode"
)

// The CRI-O scenarios whose wall the speed goal bounds by their two boots:
// wall <= 1.5 x (boot + reboot), all measured in one run.
var crioBenchCases = []struct{ node, scenario string }{
	{crionode.CRIO134, "crio-kubelet-reboot"},
	{crionode.CRIO117, "crio-unpinned-reboot"},
}

func vmBenchEnabled(b *testing.B) {
	b.Helper()
	if os.Getenv("PIDREUSE_BENCH_VM") == "" {
		b.Skip("set PIDREUSE_BENCH_VM=1 (make bench does) to boot VMs")
	}
}

// skipWithoutSource skips a bug-era node whose CRI-O source is not at
// hand, saying why (docs/crio-nodes.md).
func skipWithoutSource(b *testing.B, node string) {
	b.Helper()
	p, err := crionode.Lookup(node)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.CheckSources(context.Background()); err != nil {
		if components.IsNoSource(err) {
			b.Skip(err.Error())
		}
		b.Fatal(err)
	}
}

// BenchmarkCRIOScenario runs each CRI-O scenario as a user does
// (`pidreuse run --tier vm`) and reports, from its result's phases, the
// wall against boot + reboot. The first iteration may build the node
// image; its time is in the CLI's wall, not in the phases.
func BenchmarkCRIOScenario(b *testing.B) {
	vmBenchEnabled(b)
	cli := buildCLI(b)
	for _, c := range crioBenchCases {
		b.Run(c.node+"/"+c.scenario, func(b *testing.B) {
			skipWithoutSource(b, c.node)
			var ratio float64
			for i := 0; i < b.N; i++ {
				res, took := runScenario(b, cli, "--node", c.node, "--scenario", c.scenario)
				ph := res.Phases
				ratio = ph.WallS / (ph.BootS + ph.RebootS)
				b.Logf("%s %s: wall %.1fs = boot %.1f + ready %.1f + pods %.1f + prepare %.1f + reboot %.1f + DEL %.1f + checks %.1f + teardown %.1f; wall/(boot+reboot) %.3f; the CLI's whole run %s",
					c.node, c.scenario, ph.WallS, ph.BootS, ph.ReadyS, ph.PodsS, ph.PrepareS, ph.RebootS, ph.DelS, ph.ChecksS, ph.TeardownS, ratio, took.Round(100*time.Millisecond))
			}
			b.ReportMetric(ratio, "wall/(boot+reboot)")
		})
	}
}

// runScenario runs `pidreuse run --tier vm ARGS` into a report dir of its
// own and returns the one result, which must pass and carry its phases.
func runScenario(b *testing.B, cli string, args ...string) (runner.Result, time.Duration) {
	b.Helper()
	reports := b.TempDir()
	start := time.Now()
	out, err := exec.Command(cli, append([]string{"run", "--tier", "vm", "--report-dir", reports}, args...)...).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("pidreuse run %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	files, _ := filepath.Glob(filepath.Join(reports, "*", "results", "*.json"))
	if len(files) != 1 {
		b.Fatalf("want one result in %s, found %v", reports, files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		b.Fatal(err)
	}
	var res runner.Result
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&res); err != nil {
		b.Fatalf("%s: %v", files[0], err)
	}
	if !res.Pass || res.Phases == nil {
		b.Fatalf("%s: %s, phases %v\n%s", files[0], res.Verdict(), res.Phases, out)
	}
	return res, took
}

// BenchmarkCRIOBisectStep times one step of a CRI-O bisect as
// docs/bisecting.md writes it: `pidreuse build crio` of a commit, then
// `pidreuse bisect --tier vm` with its binaries. The Go cache is warmed by
// building the commit before it first, as the previous step of a bisect
// would have. It needs a clone of upstream CRI-O under
// PIDREUSE_CRIO_SOURCES (as cri-o/), and skips without one.
func BenchmarkCRIOBisectStep(b *testing.B) {
	vmBenchEnabled(b)
	cli := buildCLI(b)
	const node, scenario = crionode.CRIO117, "crio-unpinned-reboot"
	skipWithoutSource(b, node)
	repo := filepath.Join(os.Getenv(components.SourcesEnv), "cri-o")
	if out, err := exec.Command("git", "--git-dir", gitDir(repo), "rev-parse", "--verify", "v1.17.5^{commit}").CombinedOutput(); err != nil {
		b.Skipf("the bisect step needs a clone with history as $%s/cri-o (%s: %v %s)", components.SourcesEnv, repo, err, out)
	}
	prev, step := tree(b, repo, "v1.17.5^"), tree(b, repo, "v1.17.5")
	warm := b.TempDir()
	if out, err := exec.Command(cli, "build", "crio", "--src", prev, "--out", warm).CombinedOutput(); err != nil {
		b.Fatalf("build the commit before: %v\n%s", err, out)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bin := filepath.Join(b.TempDir(), "bin")
		start := time.Now()
		if out, err := exec.Command(cli, "build", "crio", "--src", step, "--out", bin).CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
		built := time.Since(start)
		cmd := exec.Command(cli, "bisect", "--tier", "vm", "--node", node, "--scenario", scenario,
			"--crio", filepath.Join(bin, "crio"), "--pinns", filepath.Join(bin, "pinns"), "--report-dir", b.TempDir())
		out, err := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		// v1.17.5 unpinned takes host lo down: bisect's "bad".
		if code != 1 {
			b.Fatalf("bisect step exited %d (%v), want 1 (lo DOWN)\n%s", code, err, out)
		}
		total := time.Since(start)
		b.Logf("bisect step on v1.17.5: build %s + run %s = %s", built.Round(100*time.Millisecond), (total - built).Round(100*time.Millisecond), total.Round(100*time.Millisecond))
		b.ReportMetric(built.Seconds(), "build-s")
		b.ReportMetric(total.Seconds(), "step-s")
	}
}

// gitDir is repo's git dir: repo itself when it is bare.
func gitDir(repo string) string {
	if _, err := os.Stat(filepath.Join(repo, ".git")); err == nil {
		return filepath.Join(repo, ".git")
	}
	return repo
}

// tree writes rev's tree of repo into a fresh dir, as a checkout would
// have it.
func tree(b *testing.B, repo, rev string) string {
	b.Helper()
	dir := b.TempDir()
	archive := exec.Command("git", "--git-dir", gitDir(repo), "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	untar.Stdin = pipe
	var stderr bytes.Buffer
	archive.Stderr, untar.Stderr = &stderr, &stderr
	if err := untar.Start(); err != nil {
		b.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		b.Fatalf("git archive %s: %v %s", rev, err, stderr.String())
	}
	if err := untar.Wait(); err != nil {
		b.Fatalf("untar %s: %v %s", rev, err, stderr.String())
	}
	return dir
}
