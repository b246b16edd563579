package agent

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

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

// Probe does what a liveness probe against a hostNetwork pod does: connect
// to one of the node's own addresses. It listens on addr itself, so it
// needs nothing else running; any traffic stays inside the node (the
// kernel delivers it through lo).
func Probe(ctx context.Context, addr string, timeout time.Duration) (agentapi.Probe, error) {
	if addr == "" || addr == "auto" {
		var err error
		if addr, err = PrimaryAddr(); err != nil {
			return agentapi.Probe{}, err
		}
	}
	p := agentapi.Probe{Addr: addr}
	ip := net.ParseIP(addr)
	if ip == nil {
		return p, fmt.Errorf("probe: %q is not an IP address", addr)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		// With lo down the kernel drops the local routes of 127.0.0.0/8, so
		// even binding fails: the address is as unreachable as it gets.
		p.Error = fmt.Sprintf("listen: %v", err)
		return p, nil
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	p.Addr = net.JoinHostPort(addr, strconv.Itoa(port))
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, "tcp", p.Addr)
	p.DurationMs = time.Since(start).Milliseconds()
	if err != nil {
		p.Error = err.Error()
		return p, nil
	}
	c.Close()
	p.OK = true
	return p, nil
}
