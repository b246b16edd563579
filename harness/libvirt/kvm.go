package libvirt

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ioctl numbers from <linux/kvm.h>: _IO(KVMIO, 0x00) and _IO(KVMIO, 0x01).
const (
	kvmGetAPIVersion = 0xAE00
	kvmCreateVM      = 0xAE01
	kvmAPIVersion    = 12
)

// KVMDevice is the device KVMUsable probes.
const KVMDevice = "/dev/kvm"

// QEMUUser is the account libvirtd runs QEMU as on Debian (qemu.conf's
// default "user"). KVM is only usable for a domain if this account can open
// KVMDevice, whoever the harness runs as.
const QEMUUser = "libvirt-qemu"

// KVMUsable reports whether QEMU can use KVM here, and if not, why. A
// present /dev/kvm is not enough: in containers and nested VMs it often
// opens but cannot create a VM, and QEMU then fails only at domain start.
// So this opens it read-write, checks the API version and creates (and
// drops) a VM, exactly the first steps QEMU takes.
func KVMUsable() (bool, string) {
	f, err := os.OpenFile(KVMDevice, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return false, KVMDevice + " does not exist: no KVM on this host (nested virtualisation off or kvm module not loaded); VMs will run under TCG"
		case errors.Is(err, os.ErrPermission):
			return false, fmt.Sprintf("cannot open %s read-write (%v): add this user to the kvm group or run as root; VMs will run under TCG", KVMDevice, err)
		default:
			return false, fmt.Sprintf("cannot open %s: %v; VMs will run under TCG", KVMDevice, err)
		}
	}
	defer f.Close()
	fd := f.Fd()

	v, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, kvmGetAPIVersion, 0)
	if errno != 0 {
		return false, fmt.Sprintf("KVM_GET_API_VERSION on %s failed: %v; VMs will run under TCG", KVMDevice, errno)
	}
	if v != kvmAPIVersion {
		return false, fmt.Sprintf("KVM API version is %d, QEMU needs %d; VMs will run under TCG", v, kvmAPIVersion)
	}

	// Type 0 is the default machine type, what QEMU asks for on x86.
	vm, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, kvmCreateVM, 0)
	if errno != 0 {
		return false, fmt.Sprintf("KVM_CREATE_VM on %s failed: %v (KVM present but unusable, e.g. no VT-x/AMD-V exposed to this VM); VMs will run under TCG", KVMDevice, errno)
	}
	unix.Close(int(vm))

	// libvirtd checks /dev/kvm against QEMUUser, not against itself. If
	// that user cannot open it, libvirt reports no KVM, starting a kvm
	// domain fails, and worse, libvirt discards its QEMU capabilities
	// cache on every lookup ("KVM was enabled when probing ..., but it is
	// not available now"), so every define/start re-probes QEMU for
	// 30–50 s. Without udev (containers, no systemd) /dev/kvm stays
	// 0600 root:root and hits exactly that.
	pvm, perm := pvmOnly("/sys/module"), qemuUserCannotOpen(f)
	switch {
	case pvm != "" && perm != "":
		return false, pvm + "; also " + perm
	case pvm != "":
		return false, pvm
	case perm != "":
		return false, perm
	}
	return true, "KVM usable: " + KVMDevice + " opens read-write, API version 12, KVM_CREATE_VM succeeds"
}

// qemuUserCannotOpen explains why QEMUUser cannot open the device f
// read-write, or returns "" if it can (or if there is no such user, i.e.
// libvirt is configured some other way and we cannot tell).
func qemuUserCannotOpen(f *os.File) string {
	u, err := user.Lookup(QEMUUser)
	if err != nil {
		return ""
	}
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	gids, err := u.GroupIds()
	if err != nil {
		gids = []string{u.Gid}
	}
	if deviceRW(fi.Mode().Perm(), st.Uid, st.Gid, u.Uid, gids) {
		return ""
	}
	owner, group := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if ou, err := user.LookupId(owner); err == nil {
		owner = ou.Username
	}
	if og, err := user.LookupGroupId(group); err == nil {
		group = og.Name
	}
	return fmt.Sprintf("%s is mode %04o %s:%s, so libvirt's QEMU user %s cannot open it: "+
		"run `chgrp kvm %s && chmod 0660 %s` (udev does this on a normal host; `make deps` should); "+
		"until then VMs run under TCG and every libvirt define/start re-probes QEMU (30–50 s each)",
		KVMDevice, fi.Mode().Perm(), owner, group, QEMUUser, KVMDevice, KVMDevice)
}

// deviceRW applies the classic owner/group/other permission check.
func deviceRW(perm os.FileMode, fileUID, fileGID uint32, uid string, gids []string) bool {
	const rw = 0o6
	if uid == "0" {
		return true
	}
	if uid == strconv.Itoa(int(fileUID)) {
		return (perm>>6)&rw == rw
	}
	if slices.Contains(gids, strconv.Itoa(int(fileGID))) {
		return (perm>>3)&rw == rw
	}
	return perm&rw == rw
}

// pvmOnly explains why KVM is unusable when the only KVM backend loaded is
// kvm_pvm (Pagetable-based Virtual Machine: KVM without VT-x/AMD-V, as
// offered inside some cloud VMs). It passes every ioctl check and runs
// SeaBIOS, but a stock Debian kernel hangs right after "Probing EDD" (PVM
// needs a PVM-built guest kernel). Measured on the dev VM: no kernel output
// in 120 s under KVM, root-mount panic after 4 s under TCG. Returns "" when
// a hardware backend (kvm_intel, kvm_amd) is loaded or nothing is known.
func pvmOnly(sysModule string) string {
	exists := func(m string) bool {
		_, err := os.Stat(sysModule + "/" + m)
		return err == nil
	}
	if exists("kvm_intel") || exists("kvm_amd") || !exists("kvm_pvm") {
		return ""
	}
	return KVMDevice + " is backed by kvm_pvm (no VT-x/AMD-V on this host): it creates VMs but a stock Debian kernel hangs at boot under it; VMs will run under TCG"
}
