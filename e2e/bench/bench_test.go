// Benchmarks for the speed targets: a cache-hit image build (under 5 s), the
// sandbox matrix as a whole process
// (target: under 3 s wall for one plugin version, warm caches), and the VM
// matrix against one boot plus one reboot (target: ratio <= 1.15).
package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/scenarios"
)

func buildCLI(b *testing.B) string {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	cli, err := e2eutil.BuildCLI(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return cli
}

// BenchmarkSandboxMatrixCLI times `pidreuse run --tier sandbox --scenario
// all` as a user runs it: one process, one plugin version, warm caches.
func BenchmarkSandboxMatrixCLI(b *testing.B) {
	cli := buildCLI(b)
	// Warm the plugin cache outside the timed loop.
	if out, err := exec.Command(cli, "plugins", "--plugin-version", versions.DefaultCNIPlugin).CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := exec.Command(cli, "run", "--tier", "sandbox", "--scenario", "all").CombinedOutput()
		if err != nil {
			b.Fatalf("run %d: %v\n%s", i, err, out)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/matrix")
}

// BenchmarkVMMatrix boots one VM, plays the legacy matrix with one shared
// reboot, and reports wall time against boot + reboot: the cost of the
// scenarios themselves on top of the unavoidable boot cycle.
func BenchmarkVMMatrix(b *testing.B) {
	vmBenchEnabled(b)
	buildCLI(b) // root check
	ctx := context.Background()
	dir := b.TempDir()
	agent, err := e2eutil.BuildAgent(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	img, err := images.BuildNode(ctx, filepath.Dir(agent), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var scs []scenarios.Scenario
	all, _ := scenarios.Select("all", scenarios.TierVM)
	for _, sc := range all {
		if !sc.NeedsCRIONode() {
			scs = append(scs, sc)
		}
	}
	b.ResetTimer()
	var ratio float64
	for i := 0; i < b.N; i++ {
		name := "pidreuse-bench-" + time.Now().Format("150405")
		start := time.Now()
		node, err := vm.Start(ctx, vm.Options{Name: name, Dir: filepath.Join(os.TempDir(), name), Image: img})
		if err != nil {
			b.Fatal(err)
		}
		res := runner.Run(ctx, node, scs, runner.Options{Tier: scenarios.TierVM,
			PluginDir: images.GuestPluginDir(versions.DefaultCNIPlugin), PluginVersion: versions.DefaultCNIPlugin})
		wall := time.Since(start)
		t := node.Timing
		node.Close(ctx)
		for _, r := range res {
			if !r.Pass {
				b.Fatalf("%s: %s %s", r.Scenario, r.Verdict(), r.Error)
			}
		}
		ratio = wall.Seconds() / (t.Boot + t.Reboot).Seconds()
		b.Logf("wall %s, boot to SSH %s, reboot to SSH %s, ratio %.3f", wall.Round(100*time.Millisecond),
			t.Boot.Round(100*time.Millisecond), t.Reboot.Round(100*time.Millisecond), ratio)
	}
	b.ReportMetric(ratio, "wall/(boot+reboot)")
}

// BenchmarkImageBuildCacheHit times `pidreuse image build` when the node
// image is already cached (target: under 5 s): the input hash of every
// component and the cache lookup, as each run and suite pays it.
func BenchmarkImageBuildCacheHit(b *testing.B) {
	cli := buildCLI(b)
	// The first build may be a real one; only cache hits are timed.
	if out, err := exec.Command(cli, "image", "build").CombinedOutput(); err != nil {
		b.Fatalf("image build: %v\n%s", err, out)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command(cli, "image", "build").CombinedOutput(); err != nil {
			b.Fatalf("image build %d: %v\n%s", i, err, out)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/build")
}
