package sandbox_test

import (
	"fmt"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/sandbox"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/scenarios"
)

var _ = Describe("cleanup", Label("sandbox", "cleanup"), Serial, func() {
	It("leaves no processes, mounts or node dirs behind after 50 full runs", func(ctx SpecContext) {
		mountsBefore, err := e2eutil.Mounts()
		Expect(err).NotTo(HaveOccurred())
		Expect(e2eutil.Leftovers(env.AgentPath)).To(BeEmpty(), "agent processes running before the test")
		base := GinkgoT().TempDir()
		for i := range 50 {
			dir := filepath.Join(base, fmt.Sprintf("n%d", i))
			node, err := sandbox.Start(ctx, sandbox.Options{Name: fmt.Sprintf("pidreuse-e2e-loop%d", i), Dir: dir, AgentPath: env.AgentPath})
			Expect(err).NotTo(HaveOccurred())
			scs, err := scenarios.Select("all", scenarios.TierSandbox)
			Expect(err).NotTo(HaveOccurred())
			res := runner.Run(ctx, node, scs, runner.Options{
				Tier: scenarios.TierSandbox, PluginDir: env.PluginDirs[versions.DefaultCNIPlugin], PluginVersion: versions.DefaultCNIPlugin,
			})
			Expect(node.Close(ctx)).To(Succeed())
			for _, r := range res {
				Expect(r.Error).To(BeEmpty(), "run %d: %s", i, r.Scenario)
				Expect(r.Pass).To(BeTrue(), "run %d: %s", i, r.Scenario)
			}
			Expect(dir).NotTo(BeADirectory(), "run %d left its node dir", i)
		}
		Expect(e2eutil.Leftovers(env.AgentPath)).To(BeEmpty(), "agent processes (holders, inits) outlived their nodes")
		mountsAfter, err := e2eutil.Mounts()
		Expect(err).NotTo(HaveOccurred())
		Expect(mountsAfter).To(Equal(mountsBefore), "the real mount table changed")
	}, SpecTimeout(5*time.Minute))
})
