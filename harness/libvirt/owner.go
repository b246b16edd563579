package libvirt

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// OwnerNamespace is the XML namespace of pidreuse's element in a domain's
// <metadata> (libvirt keys custom metadata by namespace URI).
const OwnerNamespace = "urn:x-pidreuse:owner:1"

// ownerElement is <pidreuse:owner dir="..."/>.
type ownerElement struct {
	XMLName xml.Name `xml:"owner"`
	Dir     string   `xml:"dir,attr"`
}

// ownerXML is the metadata element naming dir as the domain's owner dir.
func ownerXML(dir string) string {
	var b strings.Builder
	b.WriteString(`<pidreuse:owner xmlns:pidreuse="` + OwnerNamespace + `" dir="`)
	_ = xml.EscapeText(&b, []byte(dir))
	b.WriteString(`"/>`)
	return b.String()
}

// parseOwner reads the dir back from the element as libvirt returns it
// (libvirt rewrites the prefix and namespace declaration its own way).
func parseOwner(s string) (string, error) {
	var o ownerElement
	if err := xml.Unmarshal([]byte(s), &o); err != nil {
		return "", fmt.Errorf("parse pidreuse metadata %q: %w", s, err)
	}
	return o.Dir, nil
}

// OwnerDir returns the owner dir recorded in a domain's metadata (see
// DomainSpec.OwnerDir), "" when the domain has none (made by an older
// pidreuse, or by hand). It reads the persistent definition when the
// domain is shut off and the live one when it runs: both carry it.
func (c *Client) OwnerDir(ctx context.Context, name string) (string, error) {
	dom, err := c.lookup(ctx, name)
	if err != nil {
		return "", fmt.Errorf("owner of %s: %w", name, err)
	}
	var s string
	err = do(ctx, func() error {
		var err error
		s, err = c.l.DomainGetMetadata(dom, int32(golibvirt.DomainMetadataElement), golibvirt.OptString{OwnerNamespace}, golibvirt.DomainAffectCurrent)
		return err
	}, nil)
	if isLibvirtError(err, golibvirt.ErrNoDomainMetadata) {
		return "", nil
	}
	// Undefined between the lookup and this read (another run's
	// teardown): gone, as a failed lookup says it.
	if golibvirt.IsNotFound(err) {
		return "", fmt.Errorf("read the metadata of domain %s: %w: %w", name, ErrDomainNotFound, err)
	}
	if err != nil {
		return "", fmt.Errorf("read the metadata of domain %s: %w", name, err)
	}
	return parseOwner(s)
}
