//go:build e2e

package vm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/agentapi"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/components"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/images/versions"
)

// livenessFailed matches kubelet's line for a failed liveness probe of the
// sdn pod (logged from --v=1 up; the image runs kubelet with --v=2).
const livenessFailed = `Probe failed.*probeType="Liveness".*sdn`

// probePeriod is the sdn pod's liveness period (images/crionode/rootfs/etc/kubernetes/manifests/sdn.yaml).
const probePeriod = 5 * time.Second

// crioImage builds (or loads) the node image with CRI-O and kubelet.
func crioImage(ctx context.Context) *images.Image {
	dir, err := os.MkdirTemp("", "pidreuse-e2e-crio-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	agent, err := e2eutil.BuildAgent(ctx, dir)
	Expect(err).NotTo(HaveOccurred())
	podserver := filepath.Join(dir, "podserver")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", podserver, "./cmd/podserver")
	build.Dir, build.Env = e2eutil.RepoRoot(), append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))

	croot, err := components.CacheRoot()
	Expect(err).NotTo(HaveOccurred())
	paths := map[string]string{}
	for _, c := range components.All() {
		By("getting " + c.Name + " " + c.Version)
		paths[c.Name], err = components.Build(ctx, croot, c.Name, func(s string) { GinkgoWriter.Println(s) })
		Expect(err).NotTo(HaveOccurred(), "component %s failed to build", c.Name)
	}
	By("building or loading the CRI-O node image")
	addCRIO := func(base images.Inputs) (images.Inputs, error) {
		return crionode.Inputs(base, crionode.Components{
			Kubelet: paths[components.Kubelet], CRIO: paths[components.CRIO], Pinns: paths[components.Pinns],
			Crictl: paths[components.Crictl], PodServer: podserver,
		}, filepath.Join(dir, "stage"))
	}
	img, err := images.BuildNode(ctx, filepath.Dir(agent), addCRIO, func(s string) { GinkgoWriter.Println("crio " + s) })
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry("crio image", img.Manifest.InputHash+" (built in "+img.Manifest.BuildDuration.String()+")")
	return img
}

func shell(ctx context.Context, n harness.Node, script string) string {
	res, err := n.Exec(ctx, "sh", "-c", script)
	Expect(err).NotTo(HaveOccurred())
	Expect(res.ExitCode).To(Equal(0), "%s: %s", script, res.Stderr)
	return string(res.Stdout)
}

func hostLo(ctx context.Context, n harness.Node) agentapi.Link {
	var l agentapi.Link
	Expect(harness.Agent(ctx, n, &l, "link", "show", "lo")).To(Succeed())
	return l
}

var _ = Describe("CRI-O and kubelet on a VM", Ordered, Label("vm", "crio"), func() {
	var (
		node   *vm.Node
		report = func(s string) { GinkgoWriter.Println(s) }
		failed bool
	)
	// Ordered specs after a failure are skipped, so the last spec's report
	// does not say whether the story failed: remember it.
	AfterEach(func() { failed = failed || CurrentSpecReport().Failed() })

	BeforeAll(func(ctx SpecContext) {
		img := crioImage(ctx)
		name := fmt.Sprintf("pidreuse-e2e-%d-%d-crio", time.Now().Unix()%100000, GinkgoParallelProcess())
		By("booting VM " + name)
		var err error
		node, err = vm.Start(ctx, vm.Options{Name: name, Dir: filepath.Join(os.TempDir(), name), Image: img, Progress: report})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			Expect(node.Close(ctx)).To(Succeed())
		}, NodeTimeout(2*time.Minute))
		DeferCleanup(func(ctx SpecContext) {
			if !failed && !CurrentSpecReport().Failed() {
				return
			}
			art := filepath.Join(reportDir(), "artifacts", name)
			err := node.CollectArtifacts(ctx, art)
			for file, script := range map[string]string{
				"crio.log":    "journalctl -b 0 -u crio --no-pager -o short-precise; echo; journalctl -b -1 -u crio --no-pager -o short-precise",
				"kubelet.log": "journalctl -b 0 -u kubelet --no-pager -o short-precise; echo; journalctl -b -1 -u kubelet --no-pager -o short-precise",
				"crictl.txt":  "crictl --runtime-endpoint " + crionode.CRISocket + " pods; crictl --runtime-endpoint " + crionode.CRISocket + " ps -a",
				"units.txt":   "systemctl --no-pager status crio kubelet pidreuse-squat pidreuse-load-images",
			} {
				if res, e := node.Exec(ctx, "sh", "-c", script); e == nil {
					_ = os.WriteFile(filepath.Join(art, file), append(res.Stdout, res.Stderr...), 0o644)
				}
			}
			AddReportEntry("artifacts", fmt.Sprintf("%s (collect error: %v)", art, err))
		}, NodeTimeout(2*time.Minute))
		AddReportEntry("boot to SSH", node.Timing.Boot.String())
		By("waiting for the static pods")
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
		defer cancel()
		_, err = kube.WaitRunning(wctx, node, report, crionode.WebPod, crionode.SDNPod)
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("SSH to static pods Running", time.Since(start).String())
	}, NodeTimeout(40*time.Minute))

	Context("crio-kubelet-reboot: CRI-O issues DEL for sandboxes it pinned", Ordered, Label("crio-kubelet-reboot"), func() {
		var old []kube.Sandbox
		var oldPIDs []int

		It("records each sandbox's pinned netns and its containers' PIDs", func(ctx SpecContext) {
			var err error
			old, err = kube.Sandboxes(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			Expect(old).To(HaveLen(2))
			for _, sb := range old {
				Expect(sb.NetnsPath).To(HavePrefix("/var/run/netns/"), "CRI-O pins every sandbox netns, %s included", sb.Metadata.Name)
				AddReportEntry("sandbox "+sb.Metadata.Name, fmt.Sprintf("%s netns=%s hostNetwork=%v", sb.ID, sb.NetnsPath, sb.HostNetwork))
			}
			oldPIDs, err = kube.ContainerPIDs(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			Expect(oldPIDs).NotTo(BeEmpty())
			var words []string
			for _, p := range oldPIDs {
				words = append(words, strconv.Itoa(p))
			}
			shell(ctx, node, fmt.Sprintf("mkdir -p /var/lib/pidreuse && echo %s > %s && sync", strings.Join(words, " "), crionode.SquatFile))
		}, NodeTimeout(2*time.Minute))

		It("reboots, and host processes take those PIDs before crio.service starts", func(ctx SpecContext) {
			Expect(node.Reboot(ctx)).To(Succeed())
			AddReportEntry("reboot to SSH", node.Timing.Reboot.String())
			out := shell(ctx, node, "cat "+crionode.SquatResult)
			var squat agentapi.Squat
			Expect(json.Unmarshal([]byte(out), &squat)).To(Succeed(), "squat result: %s", out)
			Expect(squat.Missed).To(BeEmpty(), "host processes must take every PID the containers had")
			taken := map[int]bool{}
			for _, r := range squat.Taken {
				Expect(r.IsHostNetns).To(BeTrue())
				taken[r.PID] = true
			}
			for _, p := range oldPIDs {
				Expect(taken).To(HaveKey(p), "PID %d was not taken by a host process", p)
			}
			AddReportEntry("PIDs taken after the reboot", fmt.Sprint(oldPIDs))
			order := shell(ctx, node, "systemctl show -p ExecMainExitTimestampMonotonic --value pidreuse-squat.service; systemctl show -p ExecMainStartTimestampMonotonic --value crio.service")
			f := strings.Fields(order)
			Expect(f).To(HaveLen(2))
			squatDone, _ := strconv.ParseInt(f[0], 10, 64)
			crioStart, _ := strconv.ParseInt(f[1], 10, 64)
			Expect(squatDone).To(BeNumerically(">", 0))
			Expect(squatDone).To(BeNumerically("<=", crioStart), "the PIDs must be taken before CRI-O starts")
		}, NodeTimeout(15*time.Minute))

		It("CRI-O finds each pinned path gone and cleans the old sandbox's network", func(ctx SpecContext) {
			wctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
			defer cancel()
			_, err := kube.WaitRunning(wctx, node, report, crionode.WebPod, crionode.SDNPod)
			Expect(err).NotTo(HaveOccurred())
			journal, err := kube.Journal(ctx, node, "crio")
			Expect(err).NotTo(HaveOccurred())
			// logrus quotes the message, so the journal shows \" for ".
			for _, sb := range old {
				Expect(journal).To(MatchRegexp(`Could not restore sandbox `+sb.ID+`: failed to Statfs \\?"`+regexp.QuoteMeta(sb.NetnsPath)+`\\?": no such file or directory`),
					"CRI-O's restore of %s must fail on the vanished pin", sb.Metadata.Name)
				if sb.HostNetwork {
					continue // its pin named the host netns: there is no pod network to delete
				}
				Expect(journal).To(MatchRegexp(`Got pod network &\{Name:`+regexp.QuoteMeta(sb.Metadata.Name)+` Namespace:\S+ ID:`+sb.ID+` UID:\S+ NetNS: Networks:`),
					"CRI-O must run CNI DEL for the old %s sandbox, with an empty netns", sb.Metadata.Name)
				Expect(journal).To(ContainSubstring("Deleting pod " + sb.Metadata.Namespace + "_" + sb.Metadata.Name + " from CNI network"))
			}
			AddReportEntry("crio journal (restore lines)", grepLines(journal, "Could not restore sandbox", "since it could not be restored", "Deleting pod", "NetNS: Networks"))
		}, NodeTimeout(10*time.Minute))

		It("keeps host lo UP and the hostNetwork pod's liveness probe green for three periods", func(ctx SpecContext) {
			Expect(hostLo(ctx, node).Up).To(BeTrue())
			cs, err := kube.Containers(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			before := kube.Restarts(cs, crionode.SDNPod)
			time.Sleep(3*probePeriod + 2*time.Second)
			cs, err = kube.Containers(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			Expect(kube.Running(cs, crionode.SDNPod, crionode.WebPod)).To(BeTrue())
			Expect(kube.Restarts(cs, crionode.SDNPod)).To(Equal(before), "the sdn pod was restarted")
			failures, err := kube.JournalGrep(ctx, node, "kubelet", livenessFailed)
			Expect(err).NotTo(HaveOccurred())
			Expect(failures).To(BeEmpty(), "kubelet saw the sdn liveness probe fail")
			Expect(hostLo(ctx, node).Up).To(BeTrue())
		}, NodeTimeout(3*time.Minute))
	})

	Context("legacy-symptom: the legacy runtime's DEL takes lo down under kubelet", Ordered, Label("legacy-symptom"), func() {
		var sb agentapi.Sandbox
		pluginDir := images.GuestPluginDir(versions.DefaultCNIPlugin)

		It("creates an ephemeral sandbox next to CRI-O's pods and reboots", func(ctx SpecContext) {
			Expect(harness.Agent(ctx, node, &sb, "sandbox", "create", "--id", "legacy", "--mode", "ephemeral", "--pid", "30000")).To(Succeed())
			var add agentapi.CNIResult
			Expect(harness.Agent(ctx, node, &add, "cni", "add", "--id", "legacy", "--cni-bin-dir", pluginDir)).To(Succeed())
			Expect(node.Reboot(ctx)).To(Succeed())
			Expect(node.BootID()).NotTo(Equal(sb.BootID))
			wctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
			defer cancel()
			_, err := kube.WaitRunning(wctx, node, report, crionode.WebPod, crionode.SDNPod)
			Expect(err).NotTo(HaveOccurred())
		}, NodeTimeout(20*time.Minute))

		It("a host process takes the PID, DEL enters the host netns: lo DOWN, liveness fails, kubelet restarts the pod", func(ctx SpecContext) {
			var reuse agentapi.PIDReuse
			Expect(harness.Agent(ctx, node, &reuse, "pid", "reuse", "--pid", strconv.Itoa(sb.HolderPID))).To(Succeed())
			Expect(reuse.IsHostNetns).To(BeTrue())
			cs, err := kube.Containers(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			before := kube.Restarts(cs, crionode.SDNPod)
			var del agentapi.CNIResult
			Expect(harness.Agent(ctx, node, &del, "cni", "del", "--id", "legacy", "--cni-bin-dir", pluginDir)).To(Succeed())
			Expect(del.NetnsTarget).To(Equal(agentapi.TargetHost))
			Expect(hostLo(ctx, node).Up).To(BeFalse(), "the guest's host lo must be DOWN (DEL error: %q)", del.Error)

			var probe agentapi.Probe
			Expect(harness.Agent(ctx, node, &probe, "probe", "--addr", crionode.NodeIP, "--timeout", "1s")).To(Succeed())
			Expect(probe.OK).To(BeFalse(), "the node still reaches its own address %s", crionode.NodeIP)

			By("waiting for kubelet to fail the liveness probe and restart the sdn container")
			Eventually(func(g Gomega) {
				failures, err := kube.JournalGrep(ctx, node, "kubelet", livenessFailed)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(failures).NotTo(BeEmpty(), "kubelet has not logged a failed liveness probe yet")
				cs, err := kube.Containers(ctx, node)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(kube.Restarts(cs, crionode.SDNPod)).To(BeNumerically(">", before))
			}).WithContext(ctx).WithTimeout(4 * time.Minute).WithPolling(5 * time.Second).Should(Succeed())
			failures, _ := kube.JournalGrep(ctx, node, "kubelet", livenessFailed)
			AddReportEntry("kubelet liveness failures", grepLines(failures, "Probe failed"))
		}, NodeTimeout(8*time.Minute))

		It("recovers after `ip link set lo up`", func(ctx SpecContext) {
			var l agentapi.Link
			Expect(harness.Agent(ctx, node, &l, "link", "up", "lo")).To(Succeed())
			var probe agentapi.Probe
			Expect(harness.Agent(ctx, node, &probe, "probe", "--addr", crionode.NodeIP, "--timeout", "2s")).To(Succeed())
			Expect(probe.OK).To(BeTrue(), probe.Error)
			wctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
			defer cancel()
			cs, err := kube.WaitRunning(wctx, node, report, crionode.SDNPod)
			Expect(err).NotTo(HaveOccurred())
			settled := kube.Restarts(cs, crionode.SDNPod)
			time.Sleep(3*probePeriod + 2*time.Second)
			cs, err = kube.Containers(ctx, node)
			Expect(err).NotTo(HaveOccurred())
			Expect(kube.Running(cs, crionode.SDNPod)).To(BeTrue())
			Expect(kube.Restarts(cs, crionode.SDNPod)).To(Equal(settled), "kubelet kept restarting the sdn pod after lo came back")
		}, NodeTimeout(6*time.Minute))
	})
})

// grepLines keeps the lines of s that contain any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	if len(out) > 40 {
		out = out[len(out)-40:]
	}
	return strings.Join(out, "\n")
}
