//go:build e2e

package vm_test

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images"
)

var _ = Describe("a VM that never answers SSH", Label("vm", "bad-input"), func() {
	It("fails with the serial console's last lines and leaves nothing behind", func(ctx SpecContext) {
		img, err := images.LoadDir(imageDir)
		Expect(err).NotTo(HaveOccurred())
		// The suites' one naming rule: two suites on one machine, or two
		// processes of one, never share a domain.
		name := e2eutil.NodeName("badboot")
		dir := filepath.Join(os.TempDir(), name)
		By("booting with a root device that does not exist")
		_, err = vm.Start(ctx, vm.Options{
			Name: name, Dir: dir, Image: img,
			Cmdline: "root=/dev/vdz rootdelay=1 console=ttyS0,115200",
			// Debian's initramfs waits at least 30 s of guest uptime for
			// the root device whatever rootdelay says, then says why on
			// the console: ~45 s idle, past 60 s with four TCG guests on
			// two cores (seen: two make e2e at once).
			BootTimeout: 90 * time.Second,
		})
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("no SSH within"))
		Expect(err.Error()).To(ContainSubstring("last lines of the serial console"))
		Expect(err.Error()).To(ContainSubstring("vdz"), "the console tail shows why the boot failed")

		By("checking nothing is left")
		lv, err := libvirt.Connect(ctx, "")
		Expect(err).NotTo(HaveOccurred())
		defer lv.Close()
		left, err := lv.ListDomains(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(left).To(BeEmpty())
		Expect(dir).NotTo(BeADirectory())
	}, SpecTimeout(5*time.Minute))
})
