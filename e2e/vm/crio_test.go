//go:build e2e

package vm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/kubescenario"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// crioImage builds (or loads) the node image with CRI-O and kubelet.
func crioImage(ctx context.Context) *images.Image {
	dir, err := os.MkdirTemp("", "pidreuse-e2e-crio-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	agent, err := e2eutil.BuildAgent(ctx, dir)
	Expect(err).NotTo(HaveOccurred())
	By("building or loading the CRI-O node image")
	img, err := crionode.BuildImage(ctx, filepath.Dir(agent), func(s string) { GinkgoWriter.Println(s) })
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry("crio image", img.Manifest.InputHash+" (built in "+img.Manifest.BuildDuration.String()+")")
	return img
}

// expectVerdict fails the spec unless the scenario had a verdict, every
// check held and host lo ended as expected; the timeline and checks go
// into the report either way.
func expectVerdict(res runner.Result) {
	var timeline []string
	for _, e := range res.Timeline {
		timeline = append(timeline, e.At.Format("15:04:05.000")+" "+e.Step+" "+e.Detail)
	}
	AddReportEntry("timeline", strings.Join(timeline, "\n"))
	for _, c := range res.Checks {
		AddReportEntry("check", fmt.Sprintf("%v %s: %s", c.OK, c.Name, c.Detail))
	}
	Expect(res.Error).To(BeEmpty(), "no verdict")
	for _, c := range res.Checks {
		Expect(c.OK).To(BeTrue(), "%s: %s", c.Name, c.Detail)
	}
	Expect(res.LoUp).To(Equal(res.ExpectedLoUp), "host lo")
	Expect(res.Pass).To(BeTrue())
}

var _ = Describe("CRI-O and kubelet on a VM", Ordered, ContinueOnFailure, Label("vm", "crio"), func() {
	var (
		node   *vm.Node
		report = func(s string) { GinkgoWriter.Println(s) }
		failed bool
	)
	// The node is shared: the last spec's report alone does not say
	// whether an earlier one failed, and the artifacts are taken once.
	AfterEach(func() { failed = failed || CurrentSpecReport().Failed() })

	BeforeAll(func(ctx SpecContext) {
		img := crioImage(ctx)
		name := fmt.Sprintf("pidreuse-e2e-%d-%d-crio", time.Now().Unix()%100000, GinkgoParallelProcess())
		By("booting VM " + name)
		var err error
		node, err = vm.Start(ctx, vm.Options{Name: name, Dir: filepath.Join(os.TempDir(), name), Image: img, Progress: report, Artifacts: crionode.Artifacts})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			Expect(node.Close(ctx)).To(Succeed())
		}, NodeTimeout(2*time.Minute))
		DeferCleanup(func(ctx SpecContext) {
			if !failed && !CurrentSpecReport().Failed() {
				return
			}
			art := filepath.Join(reportDir(), "artifacts", name)
			err := node.CollectArtifacts(ctx, art)
			AddReportEntry("artifacts", fmt.Sprintf("%s (collect error: %v)", art, err))
		}, NodeTimeout(2*time.Minute))
		AddReportEntry("boot to SSH", node.Timing.Boot.String())
	}, NodeTimeout(40*time.Minute))

	play := func(ctx context.Context, name string, plugins runner.Plugins) runner.Result {
		sc, err := scenarios.Select(name, scenarios.TierVM)
		Expect(err).NotTo(HaveOccurred())
		return kubescenario.Run(ctx, node, sc[0], kubescenario.Options{
			Plugins: plugins, Progress: report,
			OnStep: func(_, step string) { By(step) },
		})
	}

	It("crio-kubelet-reboot: CRI-O finds its pinned netns gone after the reboot, host processes hold the old PIDs, host lo stays UP", Label("crio-kubelet-reboot"), func(ctx SpecContext) {
		res := play(ctx, "crio-kubelet-reboot", runner.Plugins{})
		expectVerdict(res)
		Expect(res.PIDReused).To(BeTrue())
		Expect(res.DelError).To(ContainSubstring("failed to Statfs"))
	}, NodeTimeout(30*time.Minute))

	It("legacy-symptom: the legacy runtime's DEL takes lo down, kubelet's liveness probe fails, lo up fixes it", Label("legacy-symptom"), func(ctx SpecContext) {
		res := play(ctx, "legacy-symptom", runner.Plugins{Dir: images.GuestPluginDir(versions.DefaultCNIPlugin), Version: versions.DefaultCNIPlugin})
		expectVerdict(res)
		Expect(res.DelTarget).To(Equal(string(agentapi.TargetHost)))
		Expect(res.ProbeWhileDown).NotTo(Equal("none"))
		Expect(res.Restored).To(BeTrue())
	}, NodeTimeout(30*time.Minute))
})
