//go:build e2e

package vm_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
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
)

// Ctrl-C on `pidreuse run --tier vm` at any step leaves no domain, overlay
// or work dir, and says "no verdict" (125).
var _ = Describe("pidreuse run --tier vm interrupted", Ordered, Label("vm", "cleanup"), func() {
	var cli string
	BeforeAll(func(ctx SpecContext) { cli = e2eutil.CLIDir(ctx) }, NodeTimeout(5*time.Minute))

	// interruptAt runs the CLI and sends SIGINT delay after the first
	// progress line containing trigger.
	interruptAt := func(ctx SpecContext, trigger string, delay time.Duration) {
		tmp := e2eutil.VMTempDir("sigint-")
		cmd := exec.Command(cli, "run", "--tier", "vm", "--scenario", "ephemeral-reused")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "PIDREUSE_REPORT_DIR="+filepath.Join(tmp, "..", filepath.Base(tmp)+"-reports"))
		DeferCleanup(os.RemoveAll, filepath.Join(tmp, "..", filepath.Base(tmp)+"-reports"))
		stderr, err := cmd.StderrPipe()
		Expect(err).NotTo(HaveOccurred())
		Expect(cmd.Start()).To(Succeed())
		sc := bufio.NewScanner(stderr)
		var seen []string
		sent := false
		for sc.Scan() {
			line := sc.Text()
			seen = append(seen, line)
			GinkgoWriter.Println(line)
			if !sent && strings.Contains(line, trigger) {
				sent = true
				time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGINT) })
			}
		}
		err = cmd.Wait()
		Expect(sent).To(BeTrue(), "never saw %q in:\n%s", trigger, strings.Join(seen, "\n"))
		var exit *exec.ExitError
		Expect(errors.As(err, &exit)).To(BeTrue(), "the run finished before the interrupt")
		Expect(exit.ExitCode()).To(Equal(125), "an interrupted run has no verdict")

		expectNothingLeft(ctx, tmp)
	}

	It("during boot", func(ctx SpecContext) {
		interruptAt(ctx, "waiting for SSH", 0)
	}, NodeTimeout(10*time.Minute))

	It("during the reboot", func(ctx SpecContext) {
		interruptAt(ctx, "rebooting", 3*time.Second)
	}, NodeTimeout(10*time.Minute))

	It("during DEL", func(ctx SpecContext) {
		interruptAt(ctx, "ephemeral-reused: in the node: new boot, PID reuse, CNI DEL", 0)
	}, NodeTimeout(10*time.Minute))
})

// expectNothingLeft fails unless no domain of the CLI's run exists and
// tmp, the CLI's TMPDIR, is empty (no overlay, layer disk or console log).
func expectNothingLeft(ctx context.Context, tmp string) {
	expectNoDomainLeft(ctx, tmp)
	entries, err := os.ReadDir(tmp)
	Expect(err).NotTo(HaveOccurred())
	Expect(entries).To(BeEmpty(), "the CLI's run left files in its TMPDIR (overlay, layer disk, console log)")
}

// expectOnlyArtifactsLeft is expectNothingLeft for a run without a
// verdict: it keeps its artifacts by design, and nothing else.
func expectOnlyArtifactsLeft(ctx context.Context, tmp string) []string {
	expectNoDomainLeft(ctx, tmp)
	var kept []string
	Expect(filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tmp, p)
		Expect(strings.Split(rel, string(filepath.Separator))).To(ContainElement("artifacts"), "the run left %s behind", rel)
		kept = append(kept, filepath.Base(p))
		return nil
	})).To(Succeed())
	return kept
}

// expectNoDomainLeft fails if a domain of a CLI run whose TMPDIR was tmp
// exists: its metadata names its dir (libvirt.DomainSpec.OwnerDir), which
// is under tmp. Domains of other runs on the machine (a neighbour's make
// e2e, another engineer's pidreuse run) are none of this spec's business.
func expectNoDomainLeft(ctx context.Context, tmp string) {
	for _, d := range domainsUnder(ctx, tmp) {
		Fail(fmt.Sprintf("domain %s outlived the CLI's run", d))
	}
}

// domainsUnder lists the domains whose owner dir is under dir.
func domainsUnder(ctx context.Context, dir string) []string {
	GinkgoHelper()
	lv, err := libvirt.Connect(ctx, "")
	Expect(err).NotTo(HaveOccurred())
	defer lv.Close()
	domains, err := lv.ListDomains(ctx, "pidreuse-")
	Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, d := range domains {
		owner, err := lv.OwnerDir(ctx, d)
		if errors.Is(err, libvirt.ErrDomainNotFound) {
			continue // gone while we looked
		}
		Expect(err).NotTo(HaveOccurred())
		if strings.HasPrefix(owner, dir+string(filepath.Separator)) {
			out = append(out, d)
		}
	}
	return out
}
