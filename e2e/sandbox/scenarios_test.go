package sandbox_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/sandbox"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// Plugins whose loopback DEL fails on a missing netns path, with the exact
// line of the write-up.
var statfsOnMissing = map[string]bool{"v0.8.7": true, "v1.0.1": true}

// startNode boots a sandbox node for one spec and registers its teardown;
// diagnostics are registered after it so (last in, first out) they are
// collected while the node still exists.
func startNode(ctx SpecContext, name string) *sandbox.Node {
	dir := GinkgoT().TempDir()
	node, err := sandbox.Start(ctx, sandbox.Options{
		Name:      fmt.Sprintf("pidreuse-e2e-%d-%s", GinkgoParallelProcess(), name),
		Dir:       filepath.Join(dir, "node"),
		AgentPath: env.AgentPath,
	})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		Expect(node.Close(ctx)).To(Succeed())
	}, NodeTimeout(30*time.Second))
	DeferCleanup(func(ctx SpecContext) {
		if CurrentSpecReport().Failed() {
			art := filepath.Join(reportDir(), "artifacts", strings.ReplaceAll(CurrentSpecReport().FullText(), " ", "_"))
			if err := node.CollectArtifacts(ctx, art); err == nil {
				AddReportEntry("artifacts", art)
			}
		}
	}, NodeTimeout(30*time.Second))
	return node
}

var _ = Describe("scenario matrix", Label("sandbox"), func() {
	for _, version := range versionsUnderTest {
		Context("with CNI plugins "+version, Label("plugins:"+version), func() {
			for _, sc := range scenarios.All() {
				if !sc.RunsOn(scenarios.TierSandbox) {
					continue
				}
				expect := "keeps host lo UP"
				if sc.Reproduces() {
					expect = "takes host lo DOWN (bug reproduced)"
				}
				It(sc.Name+" "+expect, Label(sc.Name), func(ctx SpecContext) {
					node := startNode(ctx, sc.Name)
					r := runner.New(node, runner.Options{
						Tier: scenarios.TierSandbox, PluginDir: env.PluginDirs[version], PluginVersion: version,
						OnStep: func(_, step string) { By(step) },
					})
					trial, err := r.Prepare(ctx, sc)
					Expect(err).NotTo(HaveOccurred())
					Expect(r.Reboot(ctx)).To(Succeed())
					res := r.Finish(ctx, trial)
					AddReportEntry("result", res)

					Expect(res.Error).To(BeEmpty(), "no verdict")
					Expect(res.BootIDAfter).NotTo(Equal(res.BootIDBefore), "the node did not really reboot")
					Expect(res.LoUp).To(Equal(sc.ExpectLoUp), "host lo after DEL (DEL error: %q)", res.DelError)
					assertScenarioDetails(sc, version, res)
				}, SpecTimeout(2*time.Minute))
			}
		})
	}
})

// assertScenarioDetails checks that each scenario got there the way the
// write-up says, not just to the right lo state.
func assertScenarioDetails(sc scenarios.Scenario, version string, res runner.Result) {
	Expect(res.PIDReused).To(Equal(sc.ReusePID), "a host process held the old PID at DEL time")
	switch {
	case sc.Netns == agentapi.Pinned:
		Expect(res.NetnsPath).To(HavePrefix("/run/netns/"))
		Expect(res.DelTarget).To(Equal(string(agentapi.TargetMissing)), "the pin must be gone after the reboot")
	case sc.ReusePID:
		Expect(res.NetnsPath).To(MatchRegexp(`^/proc/\d+/ns/net$`))
		Expect(res.DelTarget).To(Equal(string(agentapi.TargetHost)), "DEL must have named the host netns")
	default:
		Expect(res.DelTarget).To(Equal(string(agentapi.TargetMissing)))
	}
	if sc.Netns == agentapi.Ephemeral && !sc.ReusePID && statfsOnMissing[version] {
		Expect(res.DelError).To(ContainSubstring(fmt.Sprintf(`failed to Statfs %q: no such file or directory`, res.NetnsPath)),
			"the write-up's error line")
	}
	if sc.RetryDEL {
		Expect(res.FirstDelError).NotTo(BeEmpty(), "the first DEL must fail for a runtime to retry")
	}
	if !res.LoUp {
		Expect(res.ProbeWhileDown).NotTo(Equal("none"), "the node reached its own address with lo down")
		Expect(res.Restored).To(BeTrue(), "setting lo up must make the node reach itself again")
	}
}
