package e2eutil

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/runner"
)

// ReportDir is where suites write artifacts of failed specs:
// $PIDREUSE_REPORT_DIR (make test and make e2e set it under reports/), or
// a dir under $TMPDIR.
func ReportDir() string {
	if d := os.Getenv("PIDREUSE_REPORT_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "pidreuse-e2e-report")
}

// NodeName names a suite's node after what it is for, with this Ginkgo
// process and a time stamp, so parallel processes and two suites on one
// machine never share a name (and `pidreuse clean` knows it by prefix).
func NodeName(what string) string {
	return fmt.Sprintf("pidreuse-e2e-%d-%d-%s", time.Now().UnixNano()%100000000, GinkgoParallelProcess(), what)
}

// Failures counts the failed specs of the container it was made in.
// Ordered containers share one node across their specs: the artifacts are
// wanted when any of them failed, which the last spec's report alone does
// not say.
type Failures struct{ n int }

// TrackFailures makes a Failures for the container being built: call it
// in a Describe or Context body.
func TrackFailures() *Failures {
	f := &Failures{}
	AfterEach(func() {
		if CurrentSpecReport().Failed() {
			f.n++
		}
	})
	return f
}

// StartNode is the one fixture every suite uses for a node: it starts one
// with start and registers its teardown: Close, and, run before it
// (DeferCleanup is last in, first out, so the node still exists), the
// collection of its artifacts under ReportDir()/artifacts/<name> if any
// spec failed since the node started. Call it from BeforeAll (a node for
// an Ordered container) or from BeforeEach/It (a node per spec).
func StartNode[N harness.Node](ctx context.Context, failures *Failures, name string, start func(context.Context) (N, error)) N {
	GinkgoHelper()
	base := failures.n
	By("starting node " + name)
	node, err := start(ctx)
	Expect(err).NotTo(HaveOccurred(), "start node %s", name)
	DeferCleanup(func(ctx SpecContext) {
		Expect(node.Close(ctx)).To(Succeed())
	}, NodeTimeout(2*time.Minute))
	DeferCleanup(func(ctx SpecContext) {
		if failures.n == base && !CurrentSpecReport().Failed() {
			return
		}
		dir := filepath.Join(ReportDir(), "artifacts", name)
		err := node.CollectArtifacts(ctx, dir)
		AddReportEntry("artifacts", fmt.Sprintf("%s (collect error: %v)", dir, err))
	}, NodeTimeout(2*time.Minute))
	return node
}

// ExpectVerdict is the one assertion on a scenario's result: it had a
// verdict and passed — host lo as expected and every check of the
// scenario held (the runner judged them; the suite adds nothing the CLI
// does not judge). The timeline and the checks go into the report.
func ExpectVerdict(res runner.Result) {
	GinkgoHelper()
	var timeline []string
	for _, e := range res.Timeline {
		timeline = append(timeline, e.At.Format("15:04:05.000")+" "+e.Step+" "+e.Detail)
	}
	AddReportEntry("timeline", strings.Join(timeline, "\n"))
	var checks []string
	for _, c := range res.Checks {
		checks = append(checks, fmt.Sprintf("%v %s: %s", c.OK, c.ID, c.Detail))
	}
	AddReportEntry("checks", strings.Join(checks, "\n"))
	Expect(res.Error).To(BeEmpty(), "no verdict")
	Expect(res.FailedChecks()).To(BeEmpty(), "checks that did not hold")
	Expect(res.LoUp).To(Equal(res.ExpectedLoUp), "host lo after DEL (DEL error: %q)", res.DelError)
	Expect(res.Pass).To(BeTrue())
	Expect(res.Checks).NotTo(BeEmpty(), "a scenario without checks judged nothing but lo")
}
