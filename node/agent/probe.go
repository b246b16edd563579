package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// dropPoll is how often a probe reads lo's drop counter while it waits;
// reading it is one netlink round trip, tens of microseconds.
const dropPoll = time.Millisecond

// dropGrace is how long a probe still waits for its connection once lo
// dropped a packet. Nothing can answer a dropped SYN (TCP resends it
// after a second, into the same down lo): the grace only covers someone
// setting lo up at that very moment.
const dropGrace = 10 * time.Millisecond

// Probe does what a liveness probe against a hostNetwork pod does: connect
// to one of the node's own addresses. It listens on addr itself, so it
// needs nothing else running; any traffic stays inside the node (the
// kernel delivers it through lo).
//
// It answers as soon as it knows. Connected: reachable. Unreachable: the
// kernel sends traffic to any of the node's own addresses through lo, and
// a down lo drops every packet it is handed and counts it (its tx_dropped
// statistic); once the count rises while the SYN is out, no answer can
// come. Without such a drop (a kernel that does not count it) it waits up
// to timeout, as a probe with that timeout would, and a timeout is the
// answer.
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
		// With lo down the kernel may drop the local routes of
		// 127.0.0.0/8, so even binding fails: the address is as
		// unreachable as it gets.
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
	before, countErr := loTxDropped()
	done := make(chan error, 1)
	go func() {
		var d net.Dialer
		c, err := d.DialContext(dctx, "tcp", p.Addr)
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	err = waitDial(done, func() uint64 {
		if countErr != nil {
			return 0
		}
		now, err := loTxDropped()
		if err != nil || now < before {
			return 0
		}
		return now - before
	}, cancel, &p)
	p.DurationMs = time.Since(start).Milliseconds()
	switch {
	case err == nil:
		p.OK = true
	case p.LoDropped > 0:
		p.Error = fmt.Sprintf("lo dropped the connection attempt (tx_dropped +%d): %v", p.LoDropped, err)
	default:
		p.Error = err.Error()
	}
	return p, nil
}

// waitDial waits for the dial's result on done. Meanwhile it polls
// dropped (packets lo dropped since the dial began); once some are, it
// records them in p and gives the dial dropGrace more before cancel ends
// it.
func waitDial(done <-chan error, dropped func() uint64, cancel context.CancelFunc, p *agentapi.Probe) error {
	tick := time.NewTicker(dropPoll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if p.LoDropped > 0 {
				continue
			}
			if p.LoDropped = dropped(); p.LoDropped > 0 {
				time.AfterFunc(dropGrace, cancel)
			}
		}
	}
}

// loTxDropped is how many packets lo refused to send: with lo down, every
// packet to one of the node's own addresses.
func loTxDropped() (uint64, error) {
	link, err := netlink.LinkByName("lo")
	if err != nil {
		return 0, fmt.Errorf("lo statistics: %w", err)
	}
	st := link.Attrs().Statistics
	if st == nil {
		return 0, errors.New("lo statistics: the kernel gave none")
	}
	return st.TxDropped, nil
}
