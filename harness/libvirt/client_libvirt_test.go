//go:build libvirt

package libvirt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testPrefix marks domains made by tests, so a cleanup run can reap them.
const testPrefix = "pidreuse-test-"

// TestDaemonLifecycle needs a running libvirtd (virtlogd -d && libvirtd -d)
// and qemu-img. It boots a domain with a blank disk, which just sits in
// SeaBIOS: enough to exercise define → start → running → reset → destroy →
// undefine without a guest image.
func TestDaemonLifecycle(t *testing.T) {
	kvmOK, why := KVMUsable()
	t.Logf("KVMUsable: %v: %s", kvmOK, why)
	for _, tc := range []struct {
		name     string
		kvm      bool
		onReboot string
	}{
		{"tcg-destroy", false, OnRebootDestroy},
		{"tcg-restart", false, OnRebootRestart},
		{"kvm-destroy", true, OnRebootDestroy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.kvm && !kvmOK {
				t.Skipf("KVM not usable: %s", why)
			}
			testLifecycle(t, tc.kvm, tc.onReboot)
		})
	}
}

func testLifecycle(t *testing.T, kvm bool, onReboot string) {
	// Generous: with /dev/kvm unreadable by libvirt-qemu every define/start
	// re-probes QEMU for 30–50 s (see KVMUsable).
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	c, err := Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: the domain cleanup registered later runs
	// first and still needs the connection.
	t.Cleanup(func() { c.Close() })

	dir, overlay, domName := blankOverlay(t, ctx)
	port, err := FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	spec := DomainSpec{
		Name:       domName,
		VCPUs:      1,
		MemoryMiB:  128,
		KVM:        kvm,
		Disk:       overlay,
		ConsoleLog: filepath.Join(dir, "console.log"),
		SSHPort:    port,
		OnReboot:   onReboot,
	}
	xml, err := DomainXML(spec)
	if err != nil {
		t.Fatal(err)
	}

	// Whatever happens below, leave no domain behind.
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		if err := c.Destroy(cctx, domName); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := c.Undefine(cctx, domName); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	timed := func(what string, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%-9s %v", what, time.Since(start).Round(time.Millisecond))
	}

	timed("define", func() error { return c.Define(ctx, xml) })
	// Redefining with the same name (and so the same derived UUID) works.
	timed("redefine", func() error { return c.Define(ctx, xml) })

	names, err := c.ListDomains(ctx, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, domName) {
		t.Fatalf("ListDomains(%q) = %v, missing %s", testPrefix, names, domName)
	}
	if st, err := c.State(ctx, domName); err != nil || st != StateShutoff {
		t.Fatalf("state after define = %v, %v; want shut-off", st, err)
	}

	timed("start", func() error { return c.Start(ctx, domName, false) })
	if st, err := c.State(ctx, domName); err != nil || st != StateRunning {
		t.Fatalf("state after start = %v, %v; want running", st, err)
	}
	timed("reset", func() error { return c.Reset(ctx, domName) })
	if onReboot == OnRebootDestroy {
		// QEMU runs with -action reboot=shutdown, which turns even a
		// host-requested reset into a shutdown: this is the
		// destroy+start reboot path, so finish it the same way.
		var reason string
		timed("wait-stop", func() error {
			var err error
			reason, err = c.WaitStopped(ctx, domName)
			return err
		})
		if reason != "shutdown" {
			t.Errorf("reason after reset with on_reboot=destroy = %q, want shutdown", reason)
		}
		timed("restart", func() error { return c.Start(ctx, domName, false) })
	}
	if st, err := c.State(ctx, domName); err != nil || st != StateRunning {
		t.Fatalf("state after reset = %v, %v; want running", st, err)
	}
	// Let SeaBIOS print something; the console log proves virtlogd
	// is wired up.
	time.Sleep(2 * time.Second)

	type stopped struct {
		reason string
		err    error
	}
	waitDone := make(chan stopped, 1)
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	go func() {
		r, err := c.WaitStopped(waitCtx, domName)
		waitDone <- stopped{r, err}
	}()
	time.Sleep(200 * time.Millisecond) // let WaitStopped subscribe
	destroyStart := time.Now()
	timed("destroy", func() error { return c.Destroy(ctx, domName) })
	w := <-waitDone
	if w.err != nil {
		t.Fatalf("WaitStopped: %v", w.err)
	}
	if w.reason != "destroyed" {
		t.Errorf("WaitStopped reason = %q, want destroyed", w.reason)
	}
	t.Logf("WaitStopped returned %v after destroy began", time.Since(destroyStart).Round(time.Millisecond))
	if st, err := c.State(ctx, domName); err != nil || st != StateShutoff {
		t.Fatalf("state after destroy = %v, %v; want shut-off", st, err)
	}
	if err := c.Destroy(ctx, domName); err != nil {
		t.Errorf("Destroy of a stopped domain: %v, want nil", err)
	}
	// Stopped already: WaitStopped returns at once.
	if r, err := c.WaitStopped(ctx, domName); err != nil || r != "destroyed" {
		t.Errorf("WaitStopped on a stopped domain = %q, %v", r, err)
	}

	if fi, err := os.Stat(spec.ConsoleLog); err != nil {
		t.Errorf("console log: %v", err)
	} else {
		t.Logf("console log: %d bytes", fi.Size())
	}

	timed("undefine", func() error { return c.Undefine(ctx, domName) })
	if _, err := c.State(ctx, domName); !errors.Is(err, ErrDomainNotFound) {
		t.Errorf("State after undefine: %v, want ErrDomainNotFound", err)
	}
	if err := c.Undefine(ctx, domName); err != nil {
		t.Errorf("Undefine of a missing domain: %v, want nil", err)
	}
	if err := c.Destroy(ctx, domName); err != nil {
		t.Errorf("Destroy of a missing domain: %v, want nil", err)
	}
	if err := c.Start(ctx, domName, false); !errors.Is(err, ErrDomainNotFound) {
		t.Errorf("Start of a missing domain: %v, want ErrDomainNotFound", err)
	}
	names, err = c.ListDomains(ctx, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, domName) {
		t.Errorf("ListDomains after undefine still lists %s", domName)
	}

	if err := RemoveOverlay(overlay); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(overlay); !os.IsNotExist(err) {
		t.Errorf("overlay %s still exists: %v", overlay, err)
	}
}

// TestDaemonContextCancel checks that an already-cancelled context stops a
// call before it reaches libvirtd.
func TestDaemonContextCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := c.ListDomains(cctx, testPrefix); !errors.Is(err, context.Canceled) {
		t.Errorf("ListDomains with a cancelled context: %v, want context.Canceled", err)
	}
}
