//go:build e2e

package vm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/scenarios"
)

// pluginVersions run on the VM: the newest, and the last one whose DEL
// fails on a missing path with the write-up's error line.
var pluginVersions = []string{versions.DefaultCNIPlugin, "v1.0.1"}

// startVM boots a VM from img through the suites' one node fixture. A
// start that fails is tried once more on a fresh domain, and the first
// failure goes into the report ("start retried") and the suite's failure
// digest: a TCG guest on a loaded CI machine is not what the suite
// judges, but a node that fails twice is a failure, with both errors.
func startVM(ctx context.Context, failures *e2eutil.Failures, what string, img *images.Image, opts vm.Options) *vm.Node {
	GinkgoHelper()
	host := e2eutil.LibvirtTarget()
	opts.URI, opts.Image = host.URI, img
	AddReportEntry("libvirt host", fmt.Sprintf("Ginkgo process %d: %s", GinkgoParallelProcess(), host))
	opts.Progress = func(s string) { GinkgoWriter.Println(s) }
	name := e2eutil.NodeName(what)
	node := e2eutil.StartNode(ctx, failures, name, func(ctx context.Context) (*vm.Node, error) {
		first, err := vm.Start(ctx, nodeOptions(opts, name))
		if err == nil || ctx.Err() != nil {
			return first, err
		}
		e2eutil.NoteStartRetried(name, err)
		second, err2 := vm.Start(ctx, nodeOptions(opts, name+"-again"))
		if err2 != nil {
			return nil, fmt.Errorf("%w\nand on the second try: %w", err, err2)
		}
		return second, nil
	})
	AddReportEntry("boot to SSH", node.Timing.Boot.String())
	return node
}

// nodeOptions names a node's domain, dir and failure console.
func nodeOptions(opts vm.Options, name string) vm.Options {
	opts.Name, opts.Dir = name, filepath.Join(os.TempDir(), name)
	opts.FailureConsole = filepath.Join(e2eutil.ReportDir(), "artifacts", name, "console.log")
	return opts
}

// The legacy runtime's story on one VM: every scenario prepares its own
// sandbox, the VM reboots once for real, then each scenario's PID is reused
// and its DEL judged. The runner judges each scenario's checks; the suite
// adds what only a test knows: the real machine's network is unchanged.
var _ = Describe("legacy runtime on a VM", Ordered, Label("vm", "legacy"), func() {
	var (
		node     *vm.Node
		r        *runner.Runner
		host     e2eutil.HostNet
		byKey    = map[string]*runner.Trial{}
		failures = e2eutil.TrackFailures()
	)

	BeforeAll(func(ctx SpecContext) {
		var err error
		host, err = e2eutil.ReadHostNet()
		Expect(err).NotTo(HaveOccurred())
		img, err := images.LoadDir(imageDir)
		Expect(err).NotTo(HaveOccurred())
		node = startVM(ctx, failures, "legacy", img, vm.Options{})

		r = runner.New(node, runner.Options{Tier: scenarios.TierVM, OnStep: func(sc, step string) { By(sc + ": " + step) }})
		for _, v := range pluginVersions {
			for _, sc := range scenarios.All() {
				if !sc.RunsOn(scenarios.TierVM) || sc.NeedsCRIONode() {
					continue
				}
				t, err := r.PrepareWith(ctx, sc, runner.Plugins{Dir: images.GuestPluginDir(v), Version: v})
				Expect(err).NotTo(HaveOccurred(), "%s with %s", sc.Name, v)
				byKey[sc.Name+"@"+v] = t
			}
		}
	}, NodeTimeout(15*time.Minute))

	It("reboots the VM for real", func(ctx SpecContext) {
		before := node.BootID()
		Expect(r.Reboot(ctx)).To(Succeed())
		Expect(node.BootID()).NotTo(Equal(before))
		AddReportEntry("reboot to SSH", node.Timing.Reboot.String())
	}, NodeTimeout(15*time.Minute))

	for _, v := range pluginVersions {
		for _, sc := range scenarios.All() {
			if !sc.RunsOn(scenarios.TierVM) || sc.NeedsCRIONode() {
				continue
			}
			expect := "keeps host lo UP"
			if sc.Reproduces() {
				expect = "takes host lo DOWN (bug reproduced)"
			}
			It(fmt.Sprintf("%s with CNI plugins %s %s", sc.Name, v, expect), Label(sc.Name, "plugins:"+v), func(ctx SpecContext) {
				t := byKey[sc.Name+"@"+v]
				Expect(t).NotTo(BeNil())
				res := r.Finish(ctx, t)
				AddReportEntry("result", res)
				e2eutil.ExpectVerdict(res)
				now, err := e2eutil.ReadHostNet()
				Expect(err).NotTo(HaveOccurred())
				Expect(now).To(Equal(host), "the real machine's network changed")
			}, NodeTimeout(5*time.Minute))
		}
	}
})
