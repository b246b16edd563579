package libvirt

import (
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"
)

func validSpec() DomainSpec {
	return DomainSpec{
		Name:       "pidreuse-unit-node0",
		VCPUs:      2,
		MemoryMiB:  1024,
		Kernel:     "/var/lib/pidreuse/vmlinuz",
		Initrd:     "/var/lib/pidreuse/initrd.img",
		Cmdline:    "root=/dev/vda rw console=ttyS0,115200",
		Disk:       "/var/lib/pidreuse/run1/node0.qcow2",
		ConsoleLog: "/var/lib/pidreuse/run1/node0-console.log",
		SSHPort:    40022,
	}
}

func TestDomainXML(t *testing.T) {
	tests := []struct {
		name         string
		mutate       func(*DomainSpec)
		wantType     string
		wantCPUMode  string
		wantOnReboot string
		wantKernel   bool
	}{
		{
			name:         "tcg default reboot",
			mutate:       func(*DomainSpec) {},
			wantType:     "qemu",
			wantCPUMode:  "maximum",
			wantOnReboot: "destroy",
			wantKernel:   true,
		},
		{
			name:         "kvm",
			mutate:       func(s *DomainSpec) { s.KVM = true },
			wantType:     "kvm",
			wantCPUMode:  "host-passthrough",
			wantOnReboot: "destroy",
			wantKernel:   true,
		},
		{
			name:         "in-place reset",
			mutate:       func(s *DomainSpec) { s.OnReboot = OnRebootRestart },
			wantType:     "qemu",
			wantCPUMode:  "maximum",
			wantOnReboot: "restart",
			wantKernel:   true,
		},
		{
			name:         "explicit destroy",
			mutate:       func(s *DomainSpec) { s.OnReboot = OnRebootDestroy; s.KVM = true },
			wantType:     "kvm",
			wantCPUMode:  "host-passthrough",
			wantOnReboot: "destroy",
			wantKernel:   true,
		},
		{
			name: "boot from disk",
			mutate: func(s *DomainSpec) {
				s.Kernel, s.Initrd, s.Cmdline = "", "", ""
			},
			wantType:     "qemu",
			wantCPUMode:  "maximum",
			wantOnReboot: "destroy",
			wantKernel:   false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec()
			tt.mutate(&spec)
			out, err := DomainXML(spec)
			if err != nil {
				t.Fatalf("DomainXML: %v", err)
			}
			var dom libvirtxml.Domain
			if err := dom.Unmarshal(out); err != nil {
				t.Fatalf("parse generated XML back: %v\n%s", err, out)
			}

			if dom.Type != tt.wantType {
				t.Errorf("domain type = %q, want %q", dom.Type, tt.wantType)
			}
			if dom.CPU == nil || dom.CPU.Mode != tt.wantCPUMode {
				t.Errorf("cpu = %+v, want mode %q", dom.CPU, tt.wantCPUMode)
			}
			if dom.OnReboot != tt.wantOnReboot {
				t.Errorf("on_reboot = %q, want %q", dom.OnReboot, tt.wantOnReboot)
			}
			if dom.Name != spec.Name || dom.UUID != UUIDForName(spec.Name) {
				t.Errorf("name/uuid = %q/%q, want %q/%q", dom.Name, dom.UUID, spec.Name, UUIDForName(spec.Name))
			}
			if dom.OS == nil || dom.OS.Type == nil || dom.OS.Type.Machine != "pc" {
				t.Errorf("os type = %+v, want machine pc", dom.OS)
			}
			if tt.wantKernel {
				if dom.OS.Kernel != spec.Kernel || dom.OS.Initrd != spec.Initrd || dom.OS.Cmdline != spec.Cmdline {
					t.Errorf("direct boot = %q %q %q, want %q %q %q", dom.OS.Kernel, dom.OS.Initrd, dom.OS.Cmdline, spec.Kernel, spec.Initrd, spec.Cmdline)
				}
			} else if dom.OS.Kernel != "" || len(dom.OS.BootDevices) != 1 || dom.OS.BootDevices[0].Dev != "hd" {
				t.Errorf("disk boot: kernel %q, boot devices %+v, want no kernel and boot dev hd", dom.OS.Kernel, dom.OS.BootDevices)
			}

			dev := dom.Devices
			if dev == nil {
				t.Fatal("no <devices>")
			}
			// Networking must only come from the qemu:commandline
			// passthrough, and there must be no display at all.
			if len(dev.Interfaces) != 0 {
				t.Errorf("found %d <interface> elements: the only network allowed is the restricted user netdev", len(dev.Interfaces))
			}
			if len(dev.Graphics) != 0 || strings.Contains(out, "<graphics") {
				t.Errorf("found a <graphics> element; there must be none")
			}
			if dev.MemBalloon == nil || dev.MemBalloon.Model != "none" {
				t.Errorf("memballoon = %+v, want model none", dev.MemBalloon)
			}
			if len(dev.RNGs) != 1 || dev.RNGs[0].Model != "virtio" {
				t.Errorf("rng = %+v, want one virtio rng", dev.RNGs)
			}

			if len(dev.Disks) != 1 {
				t.Fatalf("got %d disks, want 1", len(dev.Disks))
			}
			d := dev.Disks[0]
			if d.Source == nil || d.Source.File == nil || d.Source.File.File != spec.Disk {
				t.Errorf("disk source = %+v, want file %q", d.Source, spec.Disk)
			}
			if d.Driver == nil || d.Driver.Type != "qcow2" || d.Driver.Cache != "unsafe" {
				t.Errorf("disk driver = %+v, want qcow2 cache=unsafe", d.Driver)
			}
			if d.Target == nil || d.Target.Dev != "vda" || d.Target.Bus != "virtio" {
				t.Errorf("disk target = %+v, want vda on virtio", d.Target)
			}

			if len(dev.Serials) != 1 {
				t.Fatalf("got %d serials, want 1", len(dev.Serials))
			}
			s := dev.Serials[0]
			if s.Source == nil || s.Source.Pty == nil {
				t.Errorf("serial source = %+v, want pty", s.Source)
			}
			if s.Log == nil || s.Log.File != spec.ConsoleLog || s.Log.Append != "on" {
				t.Errorf("serial log = %+v, want file %q append=on", s.Log, spec.ConsoleLog)
			}
			if len(dev.Consoles) != 1 || dev.Consoles[0].Log == nil || dev.Consoles[0].Log.Append != "on" {
				t.Errorf("console = %+v, want one with log append=on", dev.Consoles)
			}

			if dom.QEMUCommandline == nil {
				t.Fatal("no qemu:commandline")
			}
			if !strings.Contains(out, "http://libvirt.org/schemas/domain/qemu/1.0") {
				t.Errorf("qemu namespace missing from XML")
			}
			var args []string
			for _, a := range dom.QEMUCommandline.Args {
				args = append(args, a.Value)
			}
			wantArgs := []string{
				"-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22",
				"-device", "virtio-net-pci,netdev=n0,bus=pci.0,addr=0x10",
			}
			if strings.Join(args, " ") != strings.Join(wantArgs, " ") {
				t.Errorf("qemu args = %q, want %q", args, wantArgs)
			}
			for _, a := range args {
				if strings.Contains(a, "hostfwd") {
					if !strings.Contains(a, "restrict=on") || !strings.Contains(a, "hostfwd=tcp:127.0.0.1:") {
						t.Errorf("netdev %q: want restrict=on and a forward bound to 127.0.0.1", a)
					}
				}
			}
		})
	}
}

func TestDomainXMLExplicitUUID(t *testing.T) {
	spec := validSpec()
	spec.UUID = "6f1c2a5e-0b7d-4c1e-9a3f-2d4e5f607182"
	out, err := DomainXML(spec)
	if err != nil {
		t.Fatal(err)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if dom.UUID != spec.UUID {
		t.Errorf("uuid = %q, want %q", dom.UUID, spec.UUID)
	}
}

func TestUUIDForNameStable(t *testing.T) {
	a, b := UUIDForName("pidreuse-x"), UUIDForName("pidreuse-x")
	if a != b {
		t.Errorf("UUIDForName not stable: %s vs %s", a, b)
	}
	if a == UUIDForName("pidreuse-y") {
		t.Errorf("different names share UUID %s", a)
	}
	if !uuidRE.MatchString(a) {
		t.Errorf("UUIDForName = %q, not a UUID", a)
	}
}

func TestDomainXMLInvalid(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*DomainSpec)
		wantErr string
	}{
		{"empty name", func(s *DomainSpec) { s.Name = "" }, "domain name is empty"},
		{"bad name", func(s *DomainSpec) { s.Name = "a b/c" }, "use only letters"},
		{"port zero", func(s *DomainSpec) { s.SSHPort = 0 }, "SSHPort is 0"},
		{"port too big", func(s *DomainSpec) { s.SSHPort = 70000 }, "SSHPort is 70000"},
		{"no disk", func(s *DomainSpec) { s.Disk = "" }, "Disk is empty"},
		{"relative disk", func(s *DomainSpec) { s.Disk = "node0.qcow2" }, "not an absolute path"},
		{"no console log", func(s *DomainSpec) { s.ConsoleLog = "" }, "ConsoleLog is empty"},
		{"initrd without kernel", func(s *DomainSpec) { s.Kernel = "" }, "without Kernel"},
		{"relative kernel", func(s *DomainSpec) { s.Kernel = "vmlinuz" }, "Kernel \"vmlinuz\" is not an absolute path"},
		{"comma in path", func(s *DomainSpec) { s.Disk = "/tmp/a,b.qcow2" }, "comma"},
		{"no vcpus", func(s *DomainSpec) { s.VCPUs = 0 }, "VCPUs is 0"},
		{"no memory", func(s *DomainSpec) { s.MemoryMiB = 0 }, "MemoryMiB is 0"},
		{"bad uuid", func(s *DomainSpec) { s.UUID = "nope" }, "UUID \"nope\""},
		{"bad on_reboot", func(s *DomainSpec) { s.OnReboot = "preserve" }, "OnReboot is \"preserve\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec()
			tt.mutate(&spec)
			out, err := DomainXML(spec)
			if err == nil {
				t.Fatalf("DomainXML accepted an invalid spec:\n%s", out)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestDomainXMLReportsAllProblems(t *testing.T) {
	_, err := DomainXML(DomainSpec{})
	if err == nil {
		t.Fatal("empty spec accepted")
	}
	for _, want := range []string{"domain name is empty", "SSHPort", "Disk is empty", "ConsoleLog is empty", "VCPUs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestFreeLoopbackPort(t *testing.T) {
	p, err := FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	if p <= 0 || p > 65535 {
		t.Errorf("port %d out of range", p)
	}
}

func TestKVMUsableExplains(t *testing.T) {
	ok, why := KVMUsable()
	if why == "" {
		t.Errorf("KVMUsable() = %v with an empty explanation", ok)
	}
	t.Logf("KVMUsable: %v, %s", ok, why)
}

func TestDomainXMLReadOnlyDisks(t *testing.T) {
	spec := validSpec()
	spec.ReadOnlyDisks = []ReadOnlyDisk{{Path: "/var/tmp/run/layer.img", Serial: "pidreuse-layer"}}
	out, err := DomainXML(spec)
	if err != nil {
		t.Fatal(err)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if len(dom.Devices.Disks) != 2 {
		t.Fatalf("want the overlay and the layer, got %d disks", len(dom.Devices.Disks))
	}
	d := dom.Devices.Disks[1]
	if d.Target.Dev != "vdb" || d.ReadOnly == nil || d.Serial != "pidreuse-layer" || d.Driver.Type != "raw" {
		t.Errorf("layer disk = target %s readonly %v serial %q type %s", d.Target.Dev, d.ReadOnly != nil, d.Serial, d.Driver.Type)
	}

	spec.ReadOnlyDisks = []ReadOnlyDisk{{Path: "layer.img", Serial: "a serial with spaces"}}
	_, err = DomainXML(spec)
	if err == nil || !strings.Contains(err.Error(), "ReadOnlyDisks[0].Path") || !strings.Contains(err.Error(), "ReadOnlyDisks[0].Serial") {
		t.Errorf("want both problems named, got %v", err)
	}
}
