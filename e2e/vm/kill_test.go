//go:build e2e

package vm_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/libvirt"
)

// runIDLine is how `pidreuse run` names its run before its first node.
var runIDLine = regexp.MustCompile(`run (\S+): work dir `)

// SIGKILL of `pidreuse run --tier vm` runs no cleanup code at all: the
// domain dies with the harness's libvirt connection (autodestroy), at boot,
// after the destroy+start reboot, and at DEL. While the run lives, clean
// leaves it alone; once it is dead, clean removes the rest: the shut-off
// definition, the overlay, the work dir.
var _ = Describe("pidreuse run --tier vm killed", Ordered, Label("vm", "cleanup", "kill"), func() {
	var cli string
	BeforeAll(func(ctx SpecContext) { cli = e2eutil.CLIDir(ctx) }, NodeTimeout(5*time.Minute))

	// killAt runs the plain node's scenario and SIGKILLs the CLI delay
	// after the first progress line containing trigger; beforeKill runs
	// first, against the live run.
	killAt := func(ctx SpecContext, trigger string, delay time.Duration, beforeKill func(tmp, runID string)) {
		tmp := e2eutil.VMTempDir("sigkill-")
		reports := tmp + "-reports"
		DeferCleanup(os.RemoveAll, reports)
		cmd := exec.Command(cli, "run", "--tier", "vm", "--scenario", "ephemeral-reused")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "PIDREUSE_REPORT_DIR="+reports, "PIDREUSE_KEEP=never")
		stderr, err := cmd.StderrPipe()
		Expect(err).NotTo(HaveOccurred())
		Expect(cmd.Start()).To(Succeed())
		DeferCleanup(func() { cmd.Process.Kill() })

		var runID string
		var killed time.Time
		fired := false
		sc := bufio.NewScanner(stderr)
		var seen []string
		for sc.Scan() {
			line := sc.Text()
			seen = append(seen, line)
			GinkgoWriter.Println(line)
			if m := runIDLine.FindStringSubmatch(line); m != nil && runID == "" {
				runID = m[1]
				// A spec that fails before its own clean leaves no domain:
				// the run is killed (its lock goes with it), then cleaned.
				// Run before the kill registered above (last in, first out).
				id := runID
				DeferCleanup(func(ctx SpecContext) {
					if cmd.ProcessState == nil {
						cmd.Process.Kill()
						cmd.Wait() // its lock is free once it is gone
					}
					clean := exec.CommandContext(ctx, cli, "clean", "--run", id)
					clean.Env = append(os.Environ(), "TMPDIR="+tmp)
					out, err := clean.CombinedOutput()
					GinkgoWriter.Printf("after the spec: %s", out)
					Expect(err).NotTo(HaveOccurred(), "clean after the spec: %s", out)
				}, NodeTimeout(2*time.Minute))
			}
			if !fired && strings.Contains(line, trigger) {
				fired = true
				time.Sleep(delay)
				if beforeKill != nil {
					beforeKill(tmp, runID)
				}
				Expect(cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
				killed = time.Now()
			}
		}
		err = cmd.Wait()
		Expect(fired).To(BeTrue(), "never saw %q in:\n%s", trigger, strings.Join(seen, "\n"))
		Expect(runID).NotTo(BeEmpty(), "the run never said its ID")
		var exit *exec.ExitError
		Expect(errors.As(err, &exit)).To(BeTrue())
		Expect(exit.Sys().(syscall.WaitStatus).Signal()).To(Equal(syscall.SIGKILL), "the run ended before the kill")

		By("no domain of the run runs, right after the kill")
		name := "pidreuse-" + runID + "-vm0"
		lv, err := libvirt.Connect(ctx, "")
		Expect(err).NotTo(HaveOccurred())
		defer lv.Close()
		Eventually(func() libvirt.State {
			st, err := lv.State(ctx, name)
			Expect(err).NotTo(HaveOccurred(), "the domain's definition should outlive the kill, for clean")
			return st
		}).WithTimeout(15 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(libvirt.StateShutoff))
		stopped := time.Since(killed).Round(100 * time.Millisecond)
		out, _ := exec.CommandContext(ctx, "virsh", "-c", "qemu:///system", "list", "--all").CombinedOutput()
		AddReportEntry("virsh list --all after SIGKILL", "shut off "+stopped.String()+" after the kill\n"+string(out))
		Expect(string(out)).To(MatchRegexp(regexp.QuoteMeta(name) + `\s+shut off`))

		By("clean removes the rest once the run is dead")
		clean := exec.CommandContext(ctx, cli, "clean", "--run", runID)
		clean.Env = append(os.Environ(), "TMPDIR="+tmp)
		out, err = clean.CombinedOutput()
		GinkgoWriter.Printf("%s", out)
		Expect(err).NotTo(HaveOccurred(), "clean: %s", out)
		Expect(string(out)).To(ContainSubstring("removed domain " + name))
		Expect(string(out)).To(ContainSubstring("removed dir " + filepath.Join(tmp, "pidreuse-"+runID)))
		expectNothingLeft(ctx, tmp)
	}

	It("at boot: clean skips the live run, the kill takes its domain", func(ctx SpecContext) {
		killAt(ctx, "waiting for SSH", 0, func(tmp, runID string) {
			// A live run, and no --older-than: nothing of it may go.
			clean := exec.CommandContext(ctx, cli, "clean", "--run", runID)
			clean.Env = append(os.Environ(), "TMPDIR="+tmp)
			out, err := clean.CombinedOutput()
			GinkgoWriter.Printf("%s", out)
			Expect(err).NotTo(HaveOccurred(), "clean: %s", out)
			Expect(string(out)).To(ContainSubstring("skipped domain pidreuse-" + runID + "-vm0: in use"))
			Expect(string(out)).To(ContainSubstring("skipped dir " + filepath.Join(tmp, "pidreuse-"+runID) + ": in use"))
			Expect(string(out)).To(ContainSubstring("removed 0 domains, 0 dirs"))
			Expect(domainsUnder(ctx, tmp)).To(ConsistOf("pidreuse-" + runID + "-vm0"))
		})
	}, NodeTimeout(10*time.Minute))

	It("during the reboot", func(ctx SpecContext) {
		killAt(ctx, "rebooting", 3*time.Second, nil)
	}, NodeTimeout(10*time.Minute))

	It("after the reboot, during DEL", func(ctx SpecContext) {
		killAt(ctx, "ephemeral-reused: in the node: new boot, PID reuse, CNI DEL", 0, nil)
	}, NodeTimeout(10*time.Minute))
})
