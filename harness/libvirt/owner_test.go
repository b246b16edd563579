package libvirt

import (
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"
)

func TestDomainXMLOwnerDir(t *testing.T) {
	spec := validSpec()
	spec.OwnerDir = `/tmp/pidreuse-0102-090000-aaaaaa/a&b"c`
	out, err := DomainXML(spec)
	if err != nil {
		t.Fatal(err)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if dom.Metadata == nil {
		t.Fatalf("no <metadata> in\n%s", out)
	}
	got, err := parseOwner(dom.Metadata.XML)
	if err != nil || got != spec.OwnerDir {
		t.Errorf("owner dir read back = %q, %v; want %q", got, err, spec.OwnerDir)
	}

	// How libvirtd hands the element back (its own prefix and
	// declaration), as seen from `virsh metadata`.
	got, err = parseOwner(`<owner xmlns="` + OwnerNamespace + `" dir="/tmp/pidreuse-x"/>`)
	if err != nil || got != "/tmp/pidreuse-x" {
		t.Errorf("libvirtd's form = %q, %v", got, err)
	}

	spec.OwnerDir = ""
	out, _ = DomainXML(spec)
	if strings.Contains(out, "metadata") {
		t.Errorf("metadata without an owner dir:\n%s", out)
	}
	spec.OwnerDir = "relative/dir"
	if _, err := DomainXML(spec); err == nil || !strings.Contains(err.Error(), "OwnerDir") {
		t.Errorf("a relative owner dir: %v", err)
	}
}
