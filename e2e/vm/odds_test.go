//go:build e2e

package vm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/harness/odds"
)

// `pidreuse odds` as a user runs it, cut to two reboots: the report must
// have its shape (a cycle each with the old PIDs, their DELs as recorded
// and as CRI-O logged them, host lo, the sdn pod; the rate with its
// interval; the plot; the raw records) and nothing may be left behind.
// Not a rate: two natural reboots say nothing about one (the long runs
// are in the README).
var _ = Describe("pidreuse odds", Ordered, Label("vm", "odds"), func() {
	var cli string
	BeforeAll(func(ctx SpecContext) {
		e2eutil.SkipWithoutSources(ctx, "crio-1.17")
		cli = e2eutil.CLIDir(ctx)
	}, NodeTimeout(5*time.Minute))

	It("measures two natural reboots on crio-1.17 and writes the report", func(ctx SpecContext) {
		host, err := e2eutil.ReadHostNet()
		Expect(err).NotTo(HaveOccurred())
		tmp := e2eutil.VMTempDir("odds-")
		reports := filepath.Join(e2eutil.ReportDir(), "odds", filepath.Base(tmp))

		args := []string{"odds", "--node", "crio-1.17", "--reboots", "2", "--pods", "1", "--json", "--report-dir", reports}
		cmd := exec.CommandContext(ctx, cli, args...)
		// A spec timeout stops the run the way a user would, so the CLI
		// still removes its VM.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 2 * time.Minute
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, GinkgoWriter
		By("pidreuse " + strings.Join(args, " "))
		err = cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			Fail(fmt.Sprintf("pidreuse odds exited %d, want 0; stdout:\n%s", exit.ExitCode(), stdout.String()))
		}
		Expect(err).NotTo(HaveOccurred())

		var rep struct {
			odds.Report
			ReportDir string `json:"reportDir"`
		}
		Expect(json.Unmarshal(stdout.Bytes(), &rep)).To(Succeed(), "stdout is one JSON report:\n%s", stdout.String())
		AddReportEntry("odds", rep.Report)
		Expect(rep.Node.Profile).To(Equal("crio-1.17"))
		Expect(rep.Runtime).To(ContainSubstring("1.17.5"))
		Expect(rep.Pinning).To(Equal("manage_ns_lifecycle = false"))
		Expect(rep.DelPath).To(ContainSubstring("/proc/<old infra pid>/ns/net"))
		Expect(rep.PIDMax).To(BeNumerically(">", 0))
		Expect(rep.Stopped).To(BeEmpty())
		Expect(rep.Finished).To(BeTemporally(">", rep.Started))
		Expect(rep.Cycles).To(HaveLen(2))
		Expect(rep.Rate.Trials).To(Equal(2))
		Expect(rep.Rate.Lo).To(BeNumerically("<=", rep.Rate.P))
		Expect(rep.Rate.Hi).To(BeNumerically(">=", rep.Rate.P))
		for _, c := range rep.Cycles {
			Expect(c.Error).To(BeEmpty())
			Expect(c.BootID).NotTo(BeEmpty())
			// web, batch and odds-1 have a pod network: one DEL each.
			Expect(c.Sandboxes).To(HaveLen(3), "cycle %d", c.Index)
			for _, o := range c.Sandboxes {
				Expect(o.PID).To(BeNumerically(">", 0))
				Expect(o.PID).To(BeNumerically("<", 20000), "the PID floor must not have run: odds wants the node's own PIDs")
				Expect(o.PIDSource).To(Equal("infra"))
				Expect(o.Dels).To(BeNumerically(">=", 1), "cycle %d: %s's DEL was not recorded", c.Index, o.Pod)
				Expect(o.Journal).NotTo(BeEmpty(), "cycle %d: CRI-O logged no DEL for %s", c.Index, o.Pod)
				Expect([]string{odds.EnteredHost, odds.EnteredOther, odds.EnteredGone, odds.EnteredNothing}).To(ContainElement(o.Entered))
				Expect(o.Hit).To(Equal(o.Entered == odds.EnteredHost))
			}
			Expect(c.LastDelSec).To(BeNumerically(">", 0))
			Expect(c.NsLastPIDMax).To(BeNumerically(">", 0))
			// lo after the DELs is what the cycle's DELs did to it; a
			// cycle that took it down set it up again.
			Expect(c.Symptom.LoSetUp).To(Equal(!c.Symptom.LoUp))
		}

		By("the report dir")
		Expect(rep.ReportDir).To(HavePrefix(reports))
		md, err := os.ReadFile(filepath.Join(rep.ReportDir, odds.SummaryFile))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(md)).To(ContainSubstring("95% Wilson"))
		Expect(string(md)).To(ContainSubstring("](" + odds.PlotFile + ")"))
		Expect(string(md)).To(ContainSubstring("| 2"))
		svg, err := os.ReadFile(filepath.Join(rep.ReportDir, odds.PlotFile))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(svg)).To(ContainSubstring("<svg"))
		recs, err := os.ReadFile(filepath.Join(rep.ReportDir, odds.RecordsFile))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(recs)).To(ContainSubstring(`"command":"DEL"`))
		_, err = os.Stat(filepath.Join(rep.ReportDir, odds.JSONFile))
		Expect(err).NotTo(HaveOccurred())

		By("nothing left behind")
		// Only this run's domain: other suites may run VMs on the machine.
		runID := filepath.Base(rep.ReportDir)
		lv, err := libvirt.Connect(ctx, "")
		Expect(err).NotTo(HaveOccurred())
		defer lv.Close()
		left, err := lv.ListDomains(ctx, "pidreuse-"+runID)
		Expect(err).NotTo(HaveOccurred())
		Expect(left).To(BeEmpty(), "the run's domain outlived it")
		entries, err := os.ReadDir(tmp)
		Expect(err).NotTo(HaveOccurred())
		Expect(entries).To(BeEmpty(), "the run left files in its TMPDIR (overlay, layer disk, console log)")
		now, err := e2eutil.ReadHostNet()
		Expect(err).NotTo(HaveOccurred())
		Expect(now).To(Equal(host), "the real machine's network changed")
	}, NodeTimeout(45*time.Minute))
})
