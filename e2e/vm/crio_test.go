//go:build e2e

package vm_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/kubescenario"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/tier"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/images/versions"
	"github.com/pidreuse/pidreuse/scenarios"
)

// crioImage builds (or loads) the node image of a CRI-O node profile.
func crioImage(ctx context.Context, profile crionode.Profile) *images.Image {
	GinkgoHelper()
	dir := e2eutil.LockedTempDir("pidreuse-e2e-crio-")
	agent, err := e2eutil.BuildAgent(ctx, dir)
	Expect(err).NotTo(HaveOccurred())
	By("building or loading the " + profile.Name + " node image")
	img, err := crionode.BuildImage(ctx, profile, filepath.Dir(agent), func(s string) { GinkgoWriter.Println(s) })
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry(profile.Name+" image", img.Manifest.InputHash+" (built in "+img.Manifest.BuildDuration.String()+")")
	if img.Manifest.PrimeError != "" {
		// Not a failure: the first boot loads the pod image instead.
		AddReportEntry(profile.Name+" image: pod image left to the first boot", img.Manifest.PrimeError)
	}
	return img
}

// crioNode is one CRI-O VM of the suite: a profile, how CRI-O's namespace
// pinning is set on it (it must be in place before the first pod: one VM
// per setting), and the scenarios it plays in order, each with what the
// spec wants to see besides the runner's checks.
type crioNode struct {
	profile string
	pinning scenarios.Pinning
	specs   []crioSpec
}

type crioSpec struct {
	scenario string
	title    string
	// wantChecks must be among the result's checks: the scenario model
	// must have applied them to this CRI-O.
	wantChecks []string
	// wantLoUp is the host lo the CRI-O under test's configuration makes
	// the scenario expect.
	wantLoUp bool
}

var crioNodes = []crioNode{
	{crionode.CRIO134, scenarios.PinningDefault, []crioSpec{
		{"crio-kubelet-reboot", "CRI-O 1.34 pins: host processes hold the old PIDs, the pins are gone, host lo stays UP", []string{"pin-gone", "del-no-stale-path", "no-liveness-failure"}, true},
		{"legacy-symptom", "a legacy runtime's DEL takes lo down next to CRI-O, kubelet's liveness probe fails, lo up fixes it", []string{"liveness-restart", "liveness-recovers"}, false},
		// Last: it stops the web pod for good.
		{"stop-race", "CRI-O 1.34's DEL gets the pin, which still names the pod's netns while a host process holds the PID of the pod's last process: host lo stays UP", []string{"del-held-at-gate", "pid-taken-by-host", "del-path-not-host", "sdn-probes-answered", "sdn-not-restarted", "no-liveness-failure"}, true},
	}},
	{crionode.CRIO117, scenarios.PinningDefault, []crioSpec{
		{"crio-kubelet-reboot", "CRI-O 1.17 does not pin by default: its own DEL enters /proc/<old infra pid>/ns/net, the host's, and takes host lo DOWN", []string{"del-stale-path", "own-address-unreachable", "liveness-restart", "lo-up-restores", "liveness-recovers"}, false},
	}},
	{crionode.CRIO117, scenarios.PinningOn, []crioSpec{
		{"crio-pinned-reboot", "CRI-O 1.17 with manage_ns_lifecycle=true: the pins are gone after the reboot, host lo stays UP", []string{"pin-gone", "del-no-stale-path", "sdn-probes-answered", "sdn-not-restarted", "no-liveness-failure"}, true},
	}},
	{crionode.CRIDockerd, scenarios.PinningDefault, []crioSpec{
		{"stop-race", "cri-dockerd's DEL gets the dead pause's /proc/<pid>/ns/net, which a host process now holds: host lo DOWN, kubelet restarts the hostNetwork pod until lo is up", []string{"del-held-at-gate", "pause-gone-before-del", "pid-taken-by-host", "del-proc-path-names-host", "own-address-unreachable", "liveness-restart", "lo-up-restores", "liveness-recovers"}, false},
		{"kubelet-reboot", "the negative control: after a real reboot Docker reports Pid 0 for the old pauses, so cri-dockerd's DELs get no path although host processes hold the old PIDs: host lo UP", []string{"real-reboot", "pid-taken-by-host", "old-netns-ref-gone", "old-sandbox-del-recorded", "del-no-stale-path", "no-liveness-failure"}, true},
	}},
	{crionode.Containerd, scenarios.PinningDefault, []crioSpec{
		{"stop-race", "containerd's DEL gets the sandbox's pin, which still names the pod's netns while a host process holds the pause's PID: host lo stays UP", []string{"del-held-at-gate", "pause-gone-before-del", "pid-taken-by-host", "del-path-not-host", "sdn-probes-answered", "sdn-not-restarted", "no-liveness-failure"}, true},
		{"join-race", "containerd#5630: a restarted container joins the sandbox by /proc/<pause pid>/ns/*, which a host process now holds: it gets the host's net, ipc and uts namespaces", []string{"create-held-at-gate", "pause-gone-before-del", "pid-taken-by-host", "joined-host-namespaces"}, true},
		{"kubelet-reboot", "the negative control: after a real reboot containerd's pins are gone, so its DELs of the old sandboxes get no path although host processes hold the old pauses' PIDs: host lo UP", []string{"real-reboot", "pid-taken-by-host", "old-netns-ref-gone", "old-sandbox-del-recorded", "del-no-stale-path", "no-liveness-failure"}, true},
	}},
	{crionode.CRIO116, scenarios.PinningDefault, []crioSpec{
		{"crio-kubelet-reboot", "CRI-O 1.16 passes the stale path unchecked: host lo DOWN, and the spare pod's DEL logs the write-up's `failed to Statfs`", []string{"del-stale-path", "crio-statfs-line", "liveness-restart"}, false},
	}},
}

// The Kubernetes-node scenarios on every node profile, played by
// kubescenario exactly as the CLI plays them: the suite asserts the
// verdict, the checks the runtime under test must have been judged by, and
// the real machine's network. Every spec here has the label kube; the
// CRI-O nodes' also crio, each its profile's name.
var _ = Describe("Kubernetes nodes (CRI-O, cri-dockerd) on a VM", Label("vm", "kube"), func() {
	for _, cn := range crioNodes {
		labels := Label(cn.profile)
		if p, err := crionode.Lookup(cn.profile); err == nil && p.IsCRIO() {
			labels = Label(cn.profile, "crio")
		}
		Context(fmt.Sprintf("on %s, namespace pinning %s", cn.profile, cn.pinning), Ordered, ContinueOnFailure, labels, func() {
			var (
				node     *vm.Node
				host     e2eutil.HostNet
				profile  crionode.Profile
				failures = e2eutil.TrackFailures()
			)
			BeforeAll(func(ctx SpecContext) {
				e2eutil.SkipWithoutSources(ctx, cn.profile)
				var err error
				host, err = e2eutil.ReadHostNet()
				Expect(err).NotTo(HaveOccurred())
				profile, err = crionode.Lookup(cn.profile)
				Expect(err).NotTo(HaveOccurred())
				opts := vm.Options{Artifacts: profile.Artifacts()}
				opts.Layer.Files, err = tier.PinningLayer(profile, cn.pinning)
				Expect(err).NotTo(HaveOccurred())
				node = startVM(ctx, failures, strings.TrimPrefix(cn.profile, "crio-"), crioImage(ctx, profile), opts)
			}, NodeTimeout(60*time.Minute))

			for i, s := range cn.specs {
				It(s.scenario+": "+s.title, Label(s.scenario), func(ctx SpecContext) {
					sc, err := scenarios.Select(s.scenario, scenarios.TierVM)
					Expect(err).NotTo(HaveOccurred())
					opts := kubescenario.Options{
						Plugins: runner.Plugins{Dir: images.GuestPluginDir(versions.DefaultCNIPlugin), Version: versions.DefaultCNIPlugin},
						Index:   i, Node: tier.KubeNode(profile),
						Progress: func(s string) { GinkgoWriter.Println(s) },
						OnStep:   func(_, step string) { By(step) },
					}
					if i == 0 {
						// The first spec's phases start at the domain's start.
						opts.Started, opts.SSHUp = node.Timing.Started, node.Timing.SSHUp
					}
					res := kubescenario.Run(ctx, node, sc[0], opts)
					if res.Phases != nil {
						AddReportEntry("phases", *res.Phases)
					}
					AddReportEntry("result", res)
					e2eutil.ExpectVerdict(res)
					Expect(res.ExpectedLoUp).To(Equal(s.wantLoUp), "the expectation the CRI-O under test gives")
					var ids []string
					for _, c := range res.Checks {
						ids = append(ids, c.ID)
					}
					Expect(ids).To(ContainElements(s.wantChecks), "checks the scenario model must have applied to this CRI-O")
					now, err := e2eutil.ReadHostNet()
					Expect(err).NotTo(HaveOccurred())
					Expect(now).To(Equal(host), "the real machine's network changed")
				}, NodeTimeout(30*time.Minute))
			}
		})
	}
})
