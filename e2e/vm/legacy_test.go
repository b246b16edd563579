//go:build e2e

package vm_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// pluginVersions run on the VM: the newest, and the last one whose DEL
// fails on a missing path with the write-up's error line.
var pluginVersions = []string{versions.DefaultCNIPlugin, "v1.0.1"}

// The legacy runtime's story on one VM: every scenario prepares its own
// sandbox, the VM reboots once for real, then each scenario's PID is reused
// and its DEL judged.
var _ = Describe("legacy runtime on a VM", Ordered, Label("vm", "legacy"), func() {
	var (
		node  *vm.Node
		r     *runner.Runner
		host  e2eutil.HostNet
		byKey = map[string]*runner.Trial{}
		// Ordered specs after a failure are skipped: remember it for the
		// artifacts.
		failed bool
	)
	AfterEach(func() { failed = failed || CurrentSpecReport().Failed() })

	BeforeAll(func(ctx SpecContext) {
		var err error
		host, err = e2eutil.ReadHostNet()
		Expect(err).NotTo(HaveOccurred())
		img, err := images.LoadDir(imageDir)
		Expect(err).NotTo(HaveOccurred())
		name := fmt.Sprintf("pidreuse-e2e-%d-%d-legacy", time.Now().Unix()%100000, GinkgoParallelProcess())
		By("booting VM " + name)
		node, err = vm.Start(ctx, vm.Options{
			Name: name, Dir: filepath.Join(os.TempDir(), name), Image: img,
			Progress: func(s string) { GinkgoWriter.Println(s) },
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			Expect(node.Close(ctx)).To(Succeed())
		}, NodeTimeout(2*time.Minute))
		// Registered after the teardown, so it runs first (LIFO) while
		// the VM still exists.
		DeferCleanup(func(ctx SpecContext) {
			if failed || CurrentSpecReport().Failed() {
				art := filepath.Join(reportDir(), "artifacts", name)
				err := node.CollectArtifacts(ctx, art)
				AddReportEntry("artifacts", fmt.Sprintf("%s (collect error: %v)", art, err))
			}
		}, NodeTimeout(2*time.Minute))
		AddReportEntry("boot to SSH", node.Timing.Boot.String())

		r = runner.New(node, runner.Options{Tier: scenarios.TierVM, OnStep: func(sc, step string) { By(sc + ": " + step) }})
		for _, v := range pluginVersions {
			for _, sc := range scenarios.All() {
				if !sc.RunsOn(scenarios.TierVM) || sc.NeedsCRIONode() {
					continue
				}
				t, err := r.PrepareWith(ctx, sc, runner.Plugins{Dir: images.GuestPluginDir(v), Version: v})
				Expect(err).NotTo(HaveOccurred(), "%s with %s", sc.Name, v)
				byKey[sc.Name+"@"+v] = t
			}
		}
	}, NodeTimeout(15*time.Minute))

	It("reboots the VM for real", func(ctx SpecContext) {
		before := node.BootID()
		Expect(r.Reboot(ctx)).To(Succeed())
		Expect(node.BootID()).NotTo(Equal(before))
		AddReportEntry("reboot to SSH", node.Timing.Reboot.String())
	}, NodeTimeout(15*time.Minute))

	for _, v := range pluginVersions {
		for _, sc := range scenarios.All() {
			if !sc.RunsOn(scenarios.TierVM) || sc.NeedsCRIONode() {
				continue
			}
			expect := "keeps host lo UP"
			if sc.Reproduces() {
				expect = "takes host lo DOWN (bug reproduced)"
			}
			It(fmt.Sprintf("%s with CNI plugins %s %s", sc.Name, v, expect), Label(sc.Name, "plugins:"+v), func(ctx SpecContext) {
				t := byKey[sc.Name+"@"+v]
				Expect(t).NotTo(BeNil())
				res := r.Finish(ctx, t)
				AddReportEntry("result", res)
				Expect(res.Error).To(BeEmpty(), "no verdict")
				Expect(res.BootIDAfter).NotTo(Equal(res.BootIDBefore), "no real reboot between ADD and DEL")
				Expect(res.LoUp).To(Equal(sc.ExpectLoUp), "the guest's host lo after DEL (DEL error: %q)", res.DelError)
				Expect(res.PIDReused).To(Equal(sc.ReusePID))
				if sc.Netns == agentapi.Ephemeral && sc.ReusePID {
					Expect(res.DelTarget).To(Equal(string(agentapi.TargetHost)))
				} else {
					Expect(res.DelTarget).To(Equal(string(agentapi.TargetMissing)))
				}
				if sc.Netns == agentapi.Ephemeral && !sc.ReusePID && v == "v1.0.1" {
					Expect(res.DelError).To(ContainSubstring(fmt.Sprintf("failed to Statfs %q: no such file or directory", res.NetnsPath)))
				}
				if !res.LoUp {
					Expect(strings.ToLower(res.ProbeWhileDown)).NotTo(Equal("none"), "the guest reached its own address with lo down")
					Expect(res.Restored).To(BeTrue(), "after `ip link set lo up` the guest reaches its own address again")
				}
				now, err := e2eutil.ReadHostNet()
				Expect(err).NotTo(HaveOccurred())
				Expect(now).To(Equal(host), "the real machine's network changed")
			}, NodeTimeout(5*time.Minute))
		}
	}
})
