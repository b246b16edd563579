//go:build e2e

package vm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/images/cniplugins"
	"github.com/pidreuse/pidreuse/images/components"
	"github.com/pidreuse/pidreuse/images/versions"
)

// A CRI-O bisect step as a developer runs it: `pidreuse bisect --tier vm`
// with their own crio, kubelet and pinns. The binaries are the cached
// builds with a few bytes appended (a loader ignores them), so their
// hashes differ from the image's: the run only passes if the guest runs
// the given files, laid over the cached image without rebuilding it.
var _ = Describe("pidreuse bisect --tier vm with your own CRI-O, kubelet, pinns and CNI plugins", Ordered, Label("vm", "crio", "byo"), func() {
	var cli string
	BeforeAll(func(ctx SpecContext) { cli = e2eutil.CLIDir(ctx) }, NodeTimeout(5*time.Minute))

	It("lays them over the cached image, runs crio-kubelet-reboot with them and exits 0 (host lo survived)", func(ctx SpecContext) {
		croot, err := components.CacheRoot()
		Expect(err).NotTo(HaveOccurred())
		mine := GinkgoT().TempDir()
		args := []string{"bisect", "--tier", "vm", "--scenario", "crio-kubelet-reboot", "--json"}
		marker := fmt.Sprintf("\npidreuse-e2e-byo %d\n", time.Now().UnixNano())
		for _, name := range []string{components.CRIO, components.Kubelet, components.Pinns} {
			src, err := components.Build(ctx, croot, name, func(s string) { GinkgoWriter.Println(s) })
			Expect(err).NotTo(HaveOccurred())
			dst := filepath.Join(mine, name)
			Expect(copyWithMarker(src, dst, marker)).To(Succeed())
			args = append(args, "--"+name, dst)
		}

		// And a plugin build for CRI-O's plugin_dirs: its loopback lands
		// over Debian's, bridge and host-local stay Debian's.
		plugins, err := cniplugins.Dir(ctx, mustCNICache(), versions.DefaultCNIPlugin, func(s string) { GinkgoWriter.Println(s) })
		Expect(err).NotTo(HaveOccurred())
		args = append(args, "--cni-bin-dir", plugins)

		tmp := e2eutil.VMTempDir("byo-")
		reports := filepath.Join(e2eutil.ReportDir(), "byo", filepath.Base(tmp))
		cmd := exec.CommandContext(ctx, cli, append(args, "--report-dir", reports)...)
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		var stdout strings.Builder
		cmd.Stdout = &stdout
		cmd.Stderr = GinkgoWriter
		By("pidreuse " + strings.Join(args, " "))
		err = cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			Fail(fmt.Sprintf("pidreuse bisect exited %d, want 0; stdout:\n%s", exit.ExitCode(), stdout.String()))
		}
		Expect(err).NotTo(HaveOccurred())

		var res struct {
			Scenario  string `json:"scenario"`
			LoUp      bool   `json:"loUp"`
			PIDReused bool   `json:"pidReused"`
			Pass      bool   `json:"pass"`
			Checks    []struct {
				Name string `json:"name"`
				OK   bool   `json:"ok"`
			} `json:"checks"`
		}
		Expect(json.Unmarshal([]byte(stdout.String()), &res)).To(Succeed(), stdout.String())
		Expect(res.Scenario).To(Equal("crio-kubelet-reboot"))
		Expect(res.LoUp && res.PIDReused && res.Pass).To(BeTrue(), stdout.String())
		Expect(res.Checks).NotTo(BeEmpty())

		By("checking the report names the binaries it judged")
		summaries, err := filepath.Glob(filepath.Join(reports, "*", "summary.md"))
		Expect(err).NotTo(HaveOccurred())
		Expect(summaries).To(HaveLen(1))
		md, err := os.ReadFile(summaries[0])
		Expect(err).NotTo(HaveOccurred())
		for _, name := range []string{components.CRIO, components.Kubelet, components.Pinns} {
			Expect(string(md)).To(ContainSubstring("- %s: `%s` sha256 ", name, filepath.Join(mine, name)))
		}
		Expect(string(md)).To(ContainSubstring("- CNI plugins: `%s`", plugins))

		By("checking the run left no domain or disk behind")
		expectNothingLeft(ctx, tmp)
	}, NodeTimeout(40*time.Minute))

	// A build that passes the checks on the host but cannot run in the
	// node — here /bin/true as crio: it answers --version, then never
	// tells systemd it is ready — is "skip" (125) in about a boot's time,
	// never a verdict.
	It("says 125, and blames crio, when the given crio cannot start", func(ctx SpecContext) {
		crio := filepath.Join(GinkgoT().TempDir(), "crio")
		Expect(copyWithMarker("/bin/true", crio, "")).To(Succeed())
		tmp := e2eutil.VMTempDir("byo-bad-")
		cmd := exec.CommandContext(ctx, cli, "bisect", "--tier", "vm", "--scenario", "crio-kubelet-reboot",
			"--crio", crio, "--report-dir", filepath.Join(e2eutil.ReportDir(), "byo", filepath.Base(tmp)))
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		var stderr strings.Builder
		cmd.Stderr = io.MultiWriter(&stderr, GinkgoWriter)
		start := time.Now()
		err := cmd.Run()
		var exit *exec.ExitError
		Expect(errors.As(err, &exit)).To(BeTrue(), "want exit 125, got %v", err)
		Expect(exit.ExitCode()).To(Equal(125))
		Expect(stderr.String()).To(ContainSubstring("is the crio under test a working build for this node?"))
		Expect(stderr.String()).To(ContainSubstring("Failed with result 'protocol'"))
		AddReportEntry("exit 125 after", time.Since(start).String())
		kept := expectOnlyArtifactsLeft(ctx, tmp)
		Expect(kept).To(ContainElements("console.log", "crio.log", "kubelet.log", "layer.txt"), "a run without a verdict keeps what explains it")
	}, NodeTimeout(15*time.Minute))
})

func mustCNICache() string {
	root, err := cniplugins.CacheRoot()
	Expect(err).NotTo(HaveOccurred())
	return root
}

// copyWithMarker copies an executable and appends marker: the ELF loader
// ignores bytes past the last segment, the hash changes.
func copyWithMarker(src, dst, marker string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if _, err := io.WriteString(out, marker); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
