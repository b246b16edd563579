package e2eutil

import (
	"os"

	. "github.com/onsi/ginkgo/v2"

	"github.com/pidreuse/pidreuse/harness/libvirt"
)

// LibvirtURIEnv lists the libvirt hosts the VM suites boot their nodes on,
// comma-separated (default qemu:///system): Ginkgo process i (1-based)
// takes host (i-1) mod n, so `--procs=2` over two URIs puts one process on
// each. It is not the CLI's PIDREUSE_LIBVIRT_URI (one host): the specs that
// run the CLI (kill, interrupt, byo, odds) check this machine's libvirt
// with virsh, so the CLI they start must not inherit a remote host.
const LibvirtURIEnv = "PIDREUSE_E2E_LIBVIRT_URIS"

// LibvirtTargets parses $PIDREUSE_E2E_LIBVIRT_URIS.
func LibvirtTargets() ([]libvirt.Target, error) {
	return libvirt.ParseURIList(os.Getenv(LibvirtURIEnv))
}

// LibvirtTarget is this Ginkgo process's libvirt host.
func LibvirtTarget() libvirt.Target {
	ts, err := LibvirtTargets()
	if err != nil {
		Fail(err.Error())
	}
	return ts[(GinkgoParallelProcess()-1)%len(ts)]
}
