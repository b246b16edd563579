//go:build e2e

// The VM tier: the scenario matrix on a libvirt VM booted from the node
// image, with a real guest reboot between CNI ADD and DEL.
package vm_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/images"
)

func TestVM(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "pidreuse vm tier")
}

var _ = e2eutil.RegisterFailureDigest()

// imageDir is the cached node image, built once for all processes.
var imageDir string

var _ = SynchronizedBeforeSuite(func(ctx SpecContext) []byte {
	Expect(os.Geteuid()).To(Equal(0), "the vm tier needs root")
	By("checking libvirtd")
	lv, err := libvirt.Connect(ctx, "")
	Expect(err).NotTo(HaveOccurred())
	lv.Close()
	targets, err := e2eutil.LibvirtTargets()
	Expect(err).NotTo(HaveOccurred())
	for _, t := range targets {
		if t.Remote() {
			By("checking the libvirt host " + t.String())
			lv, err := libvirt.ConnectTarget(ctx, t, "")
			Expect(err).NotTo(HaveOccurred())
			lv.Close()
		}
	}

	dir := e2eutil.LockedTempDir("pidreuse-e2e-bin-")
	By("building the node agent")
	agentPath, err := e2eutil.BuildAgent(ctx, dir)
	Expect(err).NotTo(HaveOccurred())

	By("building or loading the node image")
	img, err := images.BuildNode(ctx, filepath.Dir(agentPath), nil, func(s string) { GinkgoWriter.Println(s) })
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry("image", img.Manifest.InputHash+" (built in "+img.Manifest.BuildDuration.String()+")")
	data, err := json.Marshal(img.Dir)
	Expect(err).NotTo(HaveOccurred())
	return data
}, func(data []byte) {
	Expect(json.Unmarshal(data, &imageDir)).To(Succeed())
}, NodeTimeout(30*time.Minute))
