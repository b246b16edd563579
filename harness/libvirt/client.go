package libvirt

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"golang.org/x/crypto/ssh"

	"github.com/pidreuse/pidreuse/harness/deadline"
)

// DefaultSocket is where libvirtd listens when started as root.
const DefaultSocket = "/var/run/libvirt/libvirt-sock"

// ErrDomainNotFound is wrapped by errors about a domain libvirt does not
// know (any more).
var ErrDomainNotFound = errors.New("domain not found")

// State is a domain's run state as libvirt reports it.
type State int32

// States, numbered as libvirt's virDomainState.
const (
	StateNoState     State = State(golibvirt.DomainNostate)
	StateRunning     State = State(golibvirt.DomainRunning)
	StateBlocked     State = State(golibvirt.DomainBlocked)
	StatePaused      State = State(golibvirt.DomainPaused)
	StateShutdown    State = State(golibvirt.DomainShutdown) // shutting down
	StateShutoff     State = State(golibvirt.DomainShutoff)
	StateCrashed     State = State(golibvirt.DomainCrashed)
	StatePMSuspended State = State(golibvirt.DomainPmsuspended)
)

func (s State) String() string {
	switch s {
	case StateNoState:
		return "nostate"
	case StateRunning:
		return "running"
	case StateBlocked:
		return "blocked"
	case StatePaused:
		return "paused"
	case StateShutdown:
		return "shutting-down"
	case StateShutoff:
		return "shut-off"
	case StateCrashed:
		return "crashed"
	case StatePMSuspended:
		return "pmsuspended"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// Client is one connection to a libvirtd's qemu:///system driver, on this
// machine or on a remote host (see Target). It is safe for concurrent use
// (go-libvirt serialises RPCs per connection).
type Client struct {
	l      *golibvirt.Libvirt
	socket string
	target Target
	// jump is the SSH connection to a qemu+ssh host: it carries the RPC
	// and the guests' SSH forwards (DialHost).
	jump *ssh.Client
	// pool is the storage pool on a remote host (EnsurePool).
	pool *golibvirt.StoragePool
}

// Close ends the connection. Domains started with autodestroy on it are
// destroyed by libvirtd; the others keep running.
func (c *Client) Close() error {
	err := c.l.Disconnect()
	if c.jump != nil {
		c.jump.Close()
	}
	if err != nil {
		return fmt.Errorf("disconnect from libvirtd at %s: %w", c.socket, err)
	}
	return nil
}

// do runs f, an RPC that cannot be cancelled (go-libvirt takes no context),
// under deadline.LibvirtCall (scaled), and returns early when ctx is done
// or the deadline passes (a *deadline.TimedOut then). The abandoned RPC
// finishes in the background; cleanup, if not nil, then runs when it
// succeeded (so e.g. a connection that completes late is closed rather
// than leaked).
func do(ctx context.Context, f func() error, cleanup func()) error {
	return doWithin(ctx, "a libvirt call", deadline.LibvirtCall, f, cleanup)
}

// doWithin is do with its own step name and deadline, for a transfer that
// takes longer than a call.
func doWithin(ctx context.Context, step string, base time.Duration, f func() error, cleanup func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return deadline.Run(ctx, step, base, func(ctx context.Context) error {
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			if cleanup != nil {
				go func() {
					if <-done == nil {
						cleanup()
					}
				}()
			}
			return ctx.Err()
		}
	})
}

// lookup finds a domain by name, wrapping ErrDomainNotFound when libvirt
// does not know it.
func (c *Client) lookup(ctx context.Context, name string) (golibvirt.Domain, error) {
	var dom golibvirt.Domain
	err := do(ctx, func() error {
		var err error
		dom, err = c.l.DomainLookupByName(name)
		return err
	}, nil)
	if err != nil {
		// Not dom: after a cancel the RPC goroutine may still write it.
		if golibvirt.IsNotFound(err) {
			return golibvirt.Domain{}, fmt.Errorf("domain %s: %w", name, ErrDomainNotFound)
		}
		return golibvirt.Domain{}, fmt.Errorf("look up domain %s: %w", name, err)
	}
	return dom, nil
}

func isLibvirtError(err error, code golibvirt.ErrorNumber) bool {
	var e golibvirt.Error
	return errors.As(err, &e) && e.Code == uint32(code)
}

// Define creates or replaces the persistent definition of a domain from XML
// (see DomainXML). Redefining a running domain changes it from its next
// start on.
func (c *Client) Define(ctx context.Context, xml string) error {
	err := do(ctx, func() error {
		_, err := c.l.DomainDefineXML(xml)
		return err
	}, nil)
	if err != nil {
		return fmt.Errorf("define domain: %w (check the XML with `virsh define --validate`)", err)
	}
	return nil
}

// Start boots a defined, shut-off domain. With autodestroy, libvirtd
// destroys it as soon as this connection closes, however it closes: Close,
// the process exiting, or the process being killed (SIGKILL included, the
// kernel closes the socket). A domain started so lives no longer than the
// harness that started it; start it again on the same Client after a
// guest reboot that stopped it (on_reboot=destroy) to keep that promise.
// libvirt refuses to save or snapshot such a domain, and there is no way
// to lift the flag from a running one: a domain meant to outlive the
// harness (a kept VM) must be started without it.
func (c *Client) Start(ctx context.Context, name string, autodestroy bool) error {
	dom, err := c.lookup(ctx, name)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	var flags uint32
	if autodestroy {
		flags |= uint32(golibvirt.DomainStartAutodestroy)
	}
	err = do(ctx, func() error {
		_, err := c.l.DomainCreateWithFlags(dom, flags)
		return err
	}, nil)
	if err != nil {
		if IsPortTaken(err) {
			return fmt.Errorf("start domain %s: %w: %w", name, ErrPortTaken, err)
		}
		where := ""
		if c.target.Remote() {
			where = " on " + c.target.Host
		}
		return fmt.Errorf("start domain %s: %w (the QEMU log is /var/log/libvirt/qemu/%s.log%s)", name, err, name, where)
	}
	return nil
}

// Destroy stops a domain at once, like pulling the power cord. A domain
// that is not running or does not exist is not an error, so teardown can
// run more than once.
func (c *Client) Destroy(ctx context.Context, name string) error {
	dom, err := c.lookup(ctx, name)
	if errors.Is(err, ErrDomainNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	err = do(ctx, func() error { return c.l.DomainDestroy(dom) }, nil)
	if err != nil && !isLibvirtError(err, golibvirt.ErrOperationInvalid) && !golibvirt.IsNotFound(err) {
		return fmt.Errorf("destroy domain %s: %w", name, err)
	}
	return nil
}

// Undefine removes a domain's definition together with any managed save
// image, snapshot/checkpoint metadata and NVRAM, so nothing named after it
// is left in libvirt. A running domain becomes transient and disappears
// when it stops; call Destroy first. A missing domain is not an error.
func (c *Client) Undefine(ctx context.Context, name string) error {
	dom, err := c.lookup(ctx, name)
	if errors.Is(err, ErrDomainNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("undefine: %w", err)
	}
	flags := golibvirt.DomainUndefineManagedSave |
		golibvirt.DomainUndefineSnapshotsMetadata |
		golibvirt.DomainUndefineCheckpointsMetadata |
		golibvirt.DomainUndefineNvram
	err = do(ctx, func() error { return c.l.DomainUndefineFlags(dom, flags) }, nil)
	if err != nil && !golibvirt.IsNotFound(err) {
		return fmt.Errorf("undefine domain %s: %w", name, err)
	}
	return nil
}

// State returns the domain's current run state.
func (c *Client) State(ctx context.Context, name string) (State, error) {
	st, _, err := c.stateReason(ctx, name)
	return st, err
}

func (c *Client) stateReason(ctx context.Context, name string) (State, int32, error) {
	dom, err := c.lookup(ctx, name)
	if err != nil {
		return StateNoState, 0, fmt.Errorf("state: %w", err)
	}
	var st, reason int32
	err = do(ctx, func() error {
		var err error
		st, reason, err = c.l.DomainGetState(dom, 0)
		return err
	}, nil)
	if err != nil {
		if golibvirt.IsNotFound(err) {
			return StateNoState, 0, fmt.Errorf("state of %s: %w", name, ErrDomainNotFound)
		}
		return StateNoState, 0, fmt.Errorf("get state of domain %s: %w", name, err)
	}
	return State(st), reason, nil
}

// shutoffReason names libvirt's virDomainShutoffReason values.
func shutoffReason(r int32) string {
	switch golibvirt.DomainShutoffReason(r) {
	case golibvirt.DomainShutoffShutdown:
		return "shutdown"
	case golibvirt.DomainShutoffDestroyed:
		return "destroyed"
	case golibvirt.DomainShutoffCrashed:
		return "crashed"
	case golibvirt.DomainShutoffMigrated:
		return "migrated"
	case golibvirt.DomainShutoffSaved:
		return "saved"
	case golibvirt.DomainShutoffFailed:
		return "failed"
	case golibvirt.DomainShutoffFromSnapshot:
		return "from-snapshot"
	case golibvirt.DomainShutoffDaemon:
		return "daemon"
	}
	return "unknown"
}

// stoppedPollInterval backs up the lifecycle events: an event can be missed
// if the event stream breaks, and a poll every few seconds costs nothing.
const stoppedPollInterval = 2 * time.Second

// WaitStopped blocks until the domain is shut off and returns why, as
// libvirt reports it: "shutdown" (the guest powered off, or rebooted with
// on_reboot=destroy: libvirt does not tell the two apart, the caller knows
// which it asked for), "crashed", "destroyed", "failed", ...
func (c *Client) WaitStopped(ctx context.Context, name string) (reason string, err error) {
	evCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe before the first state check, so a stop between the
	// check and the subscription is not missed.
	events, evErr := c.l.LifecycleEvents(evCtx)
	if evErr == nil {
		stream := events
		defer func() {
			cancel()
			// go-libvirt's event goroutine sends without watching
			// the context; drain so it can see the cancel and exit.
			go func() {
				for range stream {
				}
			}()
		}()
	} else {
		// Polling alone still works, just with more latency.
		events = nil
	}

	ticker := time.NewTicker(stoppedPollInterval)
	defer ticker.Stop()
	for {
		st, r, err := c.stateReason(ctx, name)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return "", fmt.Errorf("wait for domain %s to stop: %w", name, ctxErr)
			}
			return "", fmt.Errorf("wait for domain %s to stop: %w", name, err)
		}
		if st == StateShutoff {
			return shutoffReason(r), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for domain %s to stop (still %s): %w", name, st, ctx.Err())
		case <-ticker.C:
		case ev, ok := <-events:
			if !ok {
				events = nil // stream ended: keep polling
				continue
			}
			if ev.Dom.Name != name || golibvirt.DomainEventType(ev.Event) != golibvirt.DomainEventStopped {
				continue
			}
			// Fall through to the state check: it yields the reason
			// and confirms the stop belongs to the current run.
		}
	}
}

// Reset hard-resets a running domain (the reset button): the guest
// firmware starts over without a clean shutdown. With on_reboot=restart the
// domain keeps running through it. With on_reboot=destroy, QEMU runs with
// -action reboot=shutdown, which turns this reset into a shutdown too: the
// domain stops (WaitStopped reports "shutdown") and must be started again.
// For a clean reboot, have the guest run `systemctl reboot` instead.
func (c *Client) Reset(ctx context.Context, name string) error {
	dom, err := c.lookup(ctx, name)
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	if err := do(ctx, func() error { return c.l.DomainReset(dom, 0) }, nil); err != nil {
		return fmt.Errorf("reset domain %s: %w", name, err)
	}
	return nil
}

// ListDomains returns the names of all domains, running or not, whose name
// starts with prefix, sorted. Cleanup uses it to reap what earlier runs
// left behind.
func (c *Client) ListDomains(ctx context.Context, prefix string) ([]string, error) {
	var doms []golibvirt.Domain
	err := do(ctx, func() error {
		var err error
		doms, _, err = c.l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive|golibvirt.ConnectListDomainsInactive)
		return err
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	var names []string
	for _, d := range doms {
		if strings.HasPrefix(d.Name, prefix) {
			names = append(names, d.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}
