package agent

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// ShowLink reads a link of the node's own netns through netlink.
func ShowLink(name string) (agentapi.Link, error) {
	l := agentapi.Link{Name: name}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return l, fmt.Errorf("link show %s: %w", name, err)
	}
	attrs := link.Attrs()
	l.Up = attrs.Flags&net.FlagUp != 0
	l.Flags = attrs.Flags.String()
	if l.NetnsInode, err = netnsInode("/proc/self/ns/net"); err != nil {
		return l, fmt.Errorf("link show %s: %w", name, err)
	}
	return l, nil
}

// SetLink sets a link of the node's own netns up or down; the harness uses
// it to restore lo after a scenario took it down, as the write-up's author
// did by hand.
func SetLink(name string, up bool) (agentapi.Link, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return agentapi.Link{Name: name}, fmt.Errorf("link set %s: %w", name, err)
	}
	if up {
		err = netlink.LinkSetUp(link)
	} else {
		err = netlink.LinkSetDown(link)
	}
	if err != nil {
		return agentapi.Link{Name: name}, fmt.Errorf("link set %s: %w", name, err)
	}
	return ShowLink(name)
}

// PrimaryAddr is the node's first global unicast IPv4 address on an up,
// non-loopback link, or 127.0.0.1 when it has none (a sandbox node).
func PrimaryAddr() (string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return "", fmt.Errorf("primary address: %w", err)
	}
	for _, link := range links {
		attrs := link.Attrs()
		if attrs.Flags&net.FlagLoopback != 0 || attrs.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return "", fmt.Errorf("primary address: %w", err)
		}
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				return a.IP.String(), nil
			}
		}
	}
	return "127.0.0.1", nil
}
