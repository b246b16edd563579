// Package libvirt drives the VMs pidreuse boots: it builds the domain XML,
// checks whether KVM is usable, prepares qcow2 overlays and talks to libvirtd
// over its local socket.
//
// The network rule is absolute: a VM gets only QEMU user-mode networking with
// restrict=on (no route out of the guest) and one SSH port forward bound to
// 127.0.0.1. libvirt's own <interface> element is never used: its networks
// put the guest on a host bridge, and in libvirt 9.0 a type='user' interface
// can neither set restrict=on nor forward ports (port forwards need the passt
// backend, which libvirt 9.0 rejects here). The netdev goes in through
// qemu:commandline instead.
package libvirt

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// OnReboot values accepted in DomainSpec.OnReboot.
const (
	// OnRebootDestroy makes a guest-initiated reboot stop the domain; the
	// caller then starts it again. Under TCG this is about twice as fast as
	// an in-place reset, because the guest kernel runs 3–5× slower after a
	// QEMU system reset. libvirt reports it as a plain shutdown, so the
	// caller must remember that it asked for a reboot.
	OnRebootDestroy = "destroy"
	// OnRebootRestart keeps QEMU running across a guest reboot (in-place
	// reset).
	OnRebootRestart = "restart"
)

// NetDevAddr is the guest PCI slot of the virtio-net device. The device is
// added through qemu:commandline, which libvirt does not know about, so it
// must sit on a slot libvirt's automatic address assignment never hands out
// to the devices it manages (disk, rng); without it QEMU fails with
// "PCI: slot 4 function 0 not available".
const NetDevAddr = "0x10"

// DomainSpec is everything that differs between the VMs pidreuse boots.
type DomainSpec struct {
	// Name is the libvirt domain name; letters, digits, '.', '_' and '-'.
	Name string
	// UUID keeps the domain identity stable when it is redefined; libvirt
	// refuses to redefine a name with a different UUID. Empty derives one
	// from Name, so the same name always gets the same UUID.
	UUID string
	// VCPUs and MemoryMiB size the guest.
	VCPUs     int
	MemoryMiB int
	// KVM selects hardware acceleration (domain type kvm, host-passthrough
	// CPU); false runs under TCG (domain type qemu, CPU model maximum).
	KVM bool
	// Kernel, Initrd and Cmdline boot the guest directly, skipping the
	// bootloader. An empty Kernel boots from Disk through SeaBIOS instead
	// (used by the daemon test with a blank disk).
	Kernel, Initrd, Cmdline string
	// Disk is the absolute path of the qcow2 overlay that becomes /dev/vda.
	Disk string
	// ConsoleLog is the absolute path of the file receiving the serial
	// console; it is appended to, so boot and reboot logs land in one file.
	ConsoleLog string
	// SSHPort is the host port on 127.0.0.1 forwarded to the guest's port 22.
	SSHPort int
	// OnReboot is OnRebootDestroy (default when empty) or OnRebootRestart.
	OnReboot string
	// ReadOnlyDisks are raw disk images attached read-only after Disk
	// (vdb, vdc, …); the guest finds each by its serial under
	// /dev/disk/by-id/virtio-<serial>.
	ReadOnlyDisks []ReadOnlyDisk
	// OwnerDir is the dir whose lock (internal/flock) the domain's owner
	// holds while it lives; it goes into the domain's metadata, where
	// `pidreuse clean` reads it back (Client.OwnerDir) to leave the
	// domains of live runs alone. Empty: no metadata.
	OwnerDir string
}

// ReadOnlyDisk is a raw image the guest may read but not change.
type ReadOnlyDisk struct {
	Path string
	// Serial is at most 20 characters (virtio-blk's limit).
	Serial string
}

var domainNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate reports every problem with the spec at once, so a caller fixes
// them in one round.
func (s DomainSpec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	switch {
	case s.Name == "":
		bad("domain name is empty: set DomainSpec.Name (e.g. pidreuse-<run>-node0)")
	case len(s.Name) > 64:
		bad("domain name %q is longer than 64 characters", s.Name)
	case !domainNameRE.MatchString(s.Name):
		// The name ends up in file names under /var/run/libvirt and in
		// logs; keep it to characters that need no quoting anywhere.
		bad("domain name %q: use only letters, digits, '.', '_' and '-'", s.Name)
	}
	if s.UUID != "" && !uuidRE.MatchString(s.UUID) {
		bad("UUID %q is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (leave it empty to derive one from the name)", s.UUID)
	}
	if s.VCPUs <= 0 {
		bad("VCPUs is %d: set at least 1", s.VCPUs)
	}
	if s.MemoryMiB < 64 {
		bad("MemoryMiB is %d: a Debian guest needs at least 256", s.MemoryMiB)
	}
	if s.Kernel == "" {
		if s.Initrd != "" || s.Cmdline != "" {
			bad("Initrd/Cmdline set without Kernel: set Kernel too, or clear them to boot from the disk")
		}
	} else {
		checkAbs(&errs, "Kernel", s.Kernel)
		if s.Initrd != "" {
			checkAbs(&errs, "Initrd", s.Initrd)
		}
	}
	if s.Disk == "" {
		bad("Disk is empty: create an overlay with CreateOverlay and set its path")
	} else {
		checkAbs(&errs, "Disk", s.Disk)
	}
	if s.ConsoleLog == "" {
		bad("ConsoleLog is empty: set a file for the serial console, it is the only boot log there is")
	} else {
		checkAbs(&errs, "ConsoleLog", s.ConsoleLog)
	}
	if s.SSHPort <= 0 || s.SSHPort > 65535 {
		bad("SSHPort is %d: pick a free loopback port with FreeLoopbackPort", s.SSHPort)
	}
	if len(s.ReadOnlyDisks) > 25 {
		bad("%d read-only disks: at most 25 fit after vda", len(s.ReadOnlyDisks))
	}
	for i, d := range s.ReadOnlyDisks {
		checkAbs(&errs, fmt.Sprintf("ReadOnlyDisks[%d].Path", i), d.Path)
		if d.Serial == "" || len(d.Serial) > 20 || !domainNameRE.MatchString(d.Serial) {
			bad("ReadOnlyDisks[%d].Serial %q: use 1-20 letters, digits, '.', '_' or '-'", i, d.Serial)
		}
	}
	if s.OwnerDir != "" {
		checkAbs(&errs, "OwnerDir", s.OwnerDir)
	}
	switch s.OnReboot {
	case "", OnRebootDestroy, OnRebootRestart:
	default:
		bad("OnReboot is %q: use %q or %q", s.OnReboot, OnRebootDestroy, OnRebootRestart)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid domain spec: %w", errors.Join(errs...))
	}
	return nil
}

// checkAbs insists on absolute paths because libvirtd resolves relative
// ones against its own working directory, not the harness's, and on the
// absence of characters that would break the generated XML's meaning for
// QEMU (commas separate QEMU option values).
func checkAbs(errs *[]error, field, path string) {
	if !filepath.IsAbs(path) {
		*errs = append(*errs, fmt.Errorf("%s %q is not an absolute path: libvirtd would resolve it against its own directory", field, path))
	}
	if strings.ContainsAny(path, ",\n") {
		*errs = append(*errs, fmt.Errorf("%s %q contains a comma or newline, which QEMU option parsing cannot take", field, path))
	}
}

// UUIDForName derives a stable, name-based (version 5 style) UUID, so
// redefining a domain with the same name never trips libvirt's "domain
// already exists with uuid ..." check.
func UUIDForName(name string) string {
	sum := sha1.Sum([]byte("pidreuse/domain/" + name))
	b := sum[:16]
	b[6] = (b[6] & 0x0f) | 0x50 // version 5
	b[8] = (b[8] & 0x3f) | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// NetdevArg is the QEMU -netdev value for spec's network: user-mode
// networking with restrict=on, so the guest cannot reach the host's networks
// or the internet, and the only way in is the SSH forward on 127.0.0.1.
func NetdevArg(sshPort int) string {
	return "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:" + strconv.Itoa(sshPort) + "-:22"
}

// DomainXML builds the libvirt domain XML for spec. It is pure: it touches
// neither the file system nor libvirtd.
func DomainXML(spec DomainSpec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", err
	}
	uuid := spec.UUID
	if uuid == "" {
		uuid = UUIDForName(spec.Name)
	}
	onReboot := spec.OnReboot
	if onReboot == "" {
		onReboot = OnRebootDestroy
	}

	domType, cpu := "qemu", &libvirtxml.DomainCPU{Mode: "maximum"}
	if spec.KVM {
		domType, cpu = "kvm", &libvirtxml.DomainCPU{Mode: "host-passthrough"}
	}

	osElem := &libvirtxml.DomainOS{
		Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "pc", Type: "hvm"},
	}
	if spec.Kernel != "" {
		osElem.Kernel = spec.Kernel
		osElem.Initrd = spec.Initrd
		osElem.Cmdline = spec.Cmdline
	} else {
		osElem.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}

	serialPort := uint(0)
	consoleLog := &libvirtxml.DomainChardevLog{File: spec.ConsoleLog, Append: "on"}

	dom := &libvirtxml.Domain{
		Type: domType,
		Name: spec.Name,
		UUID: uuid,
		// Domains are found again by name prefix, the description says
		// who made them for a human running `virsh list`.
		Description:   "pidreuse test VM; safe to destroy",
		Memory:        &libvirtxml.DomainMemory{Value: uint(spec.MemoryMiB), Unit: "MiB"},
		CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: uint(spec.MemoryMiB), Unit: "MiB"},
		VCPU:          &libvirtxml.DomainVCPU{Placement: "static", Value: uint(spec.VCPUs)},
		OS:            osElem,
		// ACPI lets `systemctl reboot`/`poweroff` in the guest reach QEMU.
		Features: &libvirtxml.DomainFeatureList{
			ACPI: &libvirtxml.DomainFeature{},
			APIC: &libvirtxml.DomainFeatureAPIC{},
		},
		CPU:        cpu,
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: "destroy",
		OnReboot:   onReboot,
		// A crashed guest must stop, not loop: the caller sees the
		// "crashed" reason instead of a guest that never answers.
		OnCrash: "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Disks: []libvirtxml.DomainDisk{{
				Device: "disk",
				// cache=unsafe: the overlay is thrown away after the
				// run, and fsync speed dominates boot time under TCG.
				Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2", Cache: "unsafe"},
				Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: spec.Disk}},
				Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
			}},
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainSerialTarget{Port: &serialPort},
				Log:    consoleLog,
			}},
			Consoles: []libvirtxml.DomainConsole{{
				Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
				Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &serialPort},
				Log:    consoleLog,
			}},
			// The guest generates host keys and seeds on first boot;
			// without an entropy source that stalls under TCG.
			RNGs: []libvirtxml.DomainRNG{{
				Model: "virtio",
				Backend: &libvirtxml.DomainRNGBackend{
					Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"},
				},
			}},
			// No balloon: nothing would drive it, and it is one more
			// device to probe at boot. No <graphics>: libvirt then
			// starts QEMU without a display (type='none' is invalid).
			MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"},
			// No USB: the pc machine's default controller makes the
			// guest load and probe USB host drivers at every boot.
			Controllers: []libvirtxml.DomainController{{Type: "usb", Model: "none"}},
		},
		QEMUCommandline: &libvirtxml.DomainQEMUCommandline{
			Args: []libvirtxml.DomainQEMUCommandlineArg{
				{Value: "-netdev"},
				{Value: NetdevArg(spec.SSHPort)},
				{Value: "-device"},
				{Value: "virtio-net-pci,netdev=n0,bus=pci.0,addr=" + NetDevAddr},
			},
		},
	}
	if spec.OwnerDir != "" {
		dom.Metadata = &libvirtxml.DomainMetadata{XML: ownerXML(spec.OwnerDir)}
	}
	for i, d := range spec.ReadOnlyDisks {
		dom.Devices.Disks = append(dom.Devices.Disks, libvirtxml.DomainDisk{
			Device:   "disk",
			Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
			Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: d.Path}},
			Target:   &libvirtxml.DomainDiskTarget{Dev: "vd" + string(rune('b'+i)), Bus: "virtio"},
			ReadOnly: &libvirtxml.DomainDiskReadOnly{},
			Serial:   d.Serial,
		})
	}
	out, err := dom.Marshal()
	if err != nil {
		return "", fmt.Errorf("marshal domain XML for %s: %w", spec.Name, err)
	}
	return out, nil
}
