package sandbox_test

import (
	"context"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/sandbox"
	"github.com/pidreuse/pidreuse/scenarios"
)

// startNode boots a sandbox node for one spec through the suites' one
// node fixture (artifacts on failure, then teardown).
func startNode(ctx context.Context, failures *e2eutil.Failures, what string) *sandbox.Node {
	GinkgoHelper()
	name := e2eutil.NodeName(what)
	return e2eutil.StartNode(ctx, failures, name, func(ctx context.Context) (*sandbox.Node, error) {
		return sandbox.Start(ctx, sandbox.Options{Name: name, Dir: filepath.Join(GinkgoT().TempDir(), "node"), AgentPath: env.AgentPath})
	})
}

// Every scenario with every plugin version, each on its own node. The
// runner judges every expectation of the scenario (its checks); the suite
// asserts the verdict, and (AfterEach in the suite file) what only a test
// can know: the real machine's lo and netns are untouched.
var _ = Describe("scenario matrix", Label("sandbox"), func() {
	failures := e2eutil.TrackFailures()
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
					node := startNode(ctx, failures, sc.Name)
					res := runner.Run(ctx, node, []scenarios.Scenario{sc}, runner.Options{
						Tier: scenarios.TierSandbox, PluginDir: env.PluginDirs[version], PluginVersion: version,
						OnStep: func(_, step string) { By(step) },
					})[0]
					AddReportEntry("result", res)
					e2eutil.ExpectVerdict(res)
				}, SpecTimeout(2*time.Minute))
			}
		})
	}
})
