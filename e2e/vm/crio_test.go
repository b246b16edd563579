//go:build e2e

package vm_test

import (
	"context"
	"os"
	"path/filepath"
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
	"github.com/pidreuse/pidreuse/scenarios"
)

// crioImage builds (or loads) the node image of a CRI-O node profile.
func crioImage(ctx context.Context, profile crionode.Profile) *images.Image {
	GinkgoHelper()
	dir, err := os.MkdirTemp("", "pidreuse-e2e-crio-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	agent, err := e2eutil.BuildAgent(ctx, dir)
	Expect(err).NotTo(HaveOccurred())
	By("building or loading the " + profile.Name + " node image")
	img, err := crionode.BuildImage(ctx, profile, filepath.Dir(agent), func(s string) { GinkgoWriter.Println(s) })
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry("crio image", img.Manifest.InputHash+" (built in "+img.Manifest.BuildDuration.String()+")")
	return img
}

// The CRI-O scenarios, played by kubescenario exactly as the CLI plays
// them: the suite asserts the verdict and the real machine's network.
var _ = Describe("CRI-O and kubelet on a VM", Ordered, ContinueOnFailure, Label("vm", "crio"), func() {
	var (
		node     *vm.Node
		host     e2eutil.HostNet
		failures = e2eutil.TrackFailures()
	)

	BeforeAll(func(ctx SpecContext) {
		var err error
		host, err = e2eutil.ReadHostNet()
		Expect(err).NotTo(HaveOccurred())
		profile, err := crionode.Lookup(crionode.CRIO134)
		Expect(err).NotTo(HaveOccurred())
		node = startVM(ctx, failures, "crio", crioImage(ctx, profile), vm.Options{Artifacts: crionode.Artifacts})
	}, NodeTimeout(40*time.Minute))

	play := func(ctx context.Context, name string, plugins runner.Plugins) {
		GinkgoHelper()
		sc, err := scenarios.Select(name, scenarios.TierVM)
		Expect(err).NotTo(HaveOccurred())
		res := kubescenario.Run(ctx, node, sc[0], kubescenario.Options{
			Plugins: plugins, Progress: func(s string) { GinkgoWriter.Println(s) },
			OnStep: func(_, step string) { By(step) },
		})
		AddReportEntry("result", res)
		e2eutil.ExpectVerdict(res)
		now, err := e2eutil.ReadHostNet()
		Expect(err).NotTo(HaveOccurred())
		Expect(now).To(Equal(host), "the real machine's network changed")
	}

	It("crio-kubelet-reboot: CRI-O finds its pinned netns gone after the reboot, host processes hold the old PIDs, host lo stays UP", Label("crio-kubelet-reboot"), func(ctx SpecContext) {
		play(ctx, "crio-kubelet-reboot", runner.Plugins{})
	}, NodeTimeout(30*time.Minute))

	It("legacy-symptom: the legacy runtime's DEL takes lo down, kubelet's liveness probe fails, lo up fixes it", Label("legacy-symptom"), func(ctx SpecContext) {
		play(ctx, "legacy-symptom", runner.Plugins{Dir: images.GuestPluginDir(versions.DefaultCNIPlugin), Version: versions.DefaultCNIPlugin})
	}, NodeTimeout(30*time.Minute))
})
