package cri

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// Pods lists every pod sandbox with what its verbose status says of its
// network namespace. A sandbox whose status cannot be read is still listed,
// with Error set.
func (c *Client) Pods(ctx context.Context) (agentapi.CRIPods, error) {
	out := agentapi.CRIPods{Runtime: c.runtime}
	sbs, err := c.rt.listSandboxes(ctx)
	if err != nil {
		return out, c.rpcError(ctx, "list pod sandboxes", err)
	}
	for i := range sbs {
		if err := c.fillSandbox(ctx, &sbs[i]); err != nil {
			return out, err
		}
	}
	sortByCreation(sbs, func(s agentapi.CRISandbox) (time.Time, string) { return s.CreatedAt, s.ID })
	out.Sandboxes = sbs
	return out, nil
}

// fillSandbox adds the status fields to a listed sandbox. It returns an
// error only when the whole step must end (see itemFatal).
func (c *Client) fillSandbox(ctx context.Context, sb *agentapi.CRISandbox) error {
	st, err := c.rt.sandboxStatus(ctx, sb.ID)
	if err != nil {
		if itemFatal(ctx, err) {
			return c.rpcError(ctx, "pod sandbox status "+sb.ID, err)
		}
		sb.Error = fmt.Sprintf("pod sandbox status: %v", err)
		return nil
	}
	sb.NetworkMode = st.NetworkMode
	sb.HostNetwork = st.NetworkMode == "NODE"
	info, err := parseInfo(st.Info)
	if err != nil {
		sb.Error = fmt.Sprintf("pod sandbox status: %v", err)
		return nil
	}
	sb.NetnsPath, sb.InfraPID = info.NetnsPath, info.PID
	// CRI-O 1.16/1.17 return no verbose info for a sandbox at all, but
	// their inspect API knows the infra container's PID, which is what their
	// stale /proc/<pid>/ns/net path names. A newer CRI-O that sent info
	// without a PID has no infra process: nothing to ask.
	if len(st.Info) == 0 && c.runtime.RuntimeName == "cri-o" {
		pid, err := c.inspectPID(ctx, sb.ID)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("cri pod sandbox %s at %s: %w (%v)", sb.ID, c.endpoint, ctx.Err(), err)
		case err != nil:
			sb.Error = err.Error()
		default:
			sb.InfraPID = pid
		}
	}
	return nil
}

// Containers lists every container, running or not, with the PID of each
// running one.
func (c *Client) Containers(ctx context.Context) (agentapi.CRIContainers, error) {
	out := agentapi.CRIContainers{Runtime: c.runtime}
	cs, err := c.rt.listContainers(ctx)
	if err != nil {
		return out, c.rpcError(ctx, "list containers", err)
	}
	for i := range cs {
		ct := &cs[i]
		// Only a running container's PID is its own: a stopped one's
		// recorded PID (CRI-O keeps it across a reboot) names nobody, or
		// someone else.
		if ct.State != agentapi.ContainerRunning {
			continue
		}
		raw, err := c.rt.containerStatus(ctx, ct.ID)
		if err != nil {
			if itemFatal(ctx, err) {
				return out, c.rpcError(ctx, "container status "+ct.ID, err)
			}
			ct.Error = fmt.Sprintf("container status: %v", err)
			continue
		}
		info, err := parseInfo(raw)
		if err != nil {
			ct.Error = fmt.Sprintf("container status: %v", err)
			continue
		}
		ct.PID = info.PID
	}
	sortByCreation(cs, func(c agentapi.CRIContainer) (time.Time, string) { return c.CreatedAt, c.ID })
	out.Containers = cs
	return out, nil
}

// WaitRunning reads the runtime's containers at endpoint every `every`
// until each named one runs or ctx ends, and returns the last list read:
// the caller judges it. One process waiting in the node costs a booting
// guest less than a process started per look, and sees the pods run
// within `every`. A runtime that is not up yet, or restarts, is dialed
// again; its error is returned only when no list was ever read.
func WaitRunning(ctx context.Context, endpoint string, names []string, every time.Duration) (agentapi.CRIContainers, error) {
	var (
		c       *Client
		last    agentapi.CRIContainers
		read    bool
		lastErr error
	)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		if c == nil {
			c, lastErr = Dial(ctx, endpoint)
		}
		if c != nil {
			cs, err := c.Containers(ctx)
			switch {
			case err == nil:
				last, read = cs, true
				if agentapi.AllRunning(cs.Containers, names...) {
					return last, nil
				}
			case ctx.Err() == nil:
				// The runtime went away (a restart): dial again.
				lastErr = err
				c.Close()
				c = nil
			}
		}
		select {
		case <-ctx.Done():
			if read {
				return last, nil
			}
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return last, lastErr
		case <-time.After(every):
		}
	}
}

// sortByCreation gives a stable order: runtimes list from a map.
func sortByCreation[T any](s []T, key func(T) (time.Time, string)) {
	slices.SortStableFunc(s, func(a, b T) int {
		ta, ia := key(a)
		tb, ib := key(b)
		return cmp.Or(ta.Compare(tb), cmp.Compare(ia, ib))
	})
}

// nanoTime converts CRI's nanosecond timestamps; 0 (unset) stays zero.
func nanoTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
