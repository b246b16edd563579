//go:build libvirt

package libvirt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper process of TestDaemonAutodestroy: it starts the domain named
// by AUTODESTROY_TEST_DOMAIN with autodestroy on its own connection (and,
// with AUTODESTROY_TEST_REBOOT set, stops it the way a guest reboot with
// on_reboot=destroy does and starts it again on the same connection), says
// "running" and waits to be killed.
func TestMain(m *testing.M) {
	if name := os.Getenv("AUTODESTROY_TEST_DOMAIN"); name != "" {
		if err := holdDomain(name, os.Getenv("AUTODESTROY_TEST_REBOOT") != ""); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("running")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

func holdDomain(name string, reboot bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Connect(ctx, "")
	if err != nil {
		return err
	}
	// Never closed: the process dies holding the connection.
	if err := c.Start(ctx, name, true); err != nil {
		return err
	}
	if !reboot {
		return nil
	}
	// QEMU runs with -action reboot=shutdown: a reset stops the domain
	// like the guest's own reboot would.
	if err := c.Reset(ctx, name); err != nil {
		return err
	}
	if _, err := c.WaitStopped(ctx, name); err != nil {
		return err
	}
	return c.Start(ctx, name, true)
}

// TestDaemonAutodestroy needs a running libvirtd. A domain started with
// autodestroy dies when its starter's connection goes: when the process is
// SIGKILLed (at boot, and after a destroy+start reboot on the same
// connection) and when it closes the connection itself. Its definition
// stays, for clean to remove. A domain started without it outlives its
// starter's connection (a kept VM).
func TestDaemonAutodestroy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c, err := Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	cases := []struct {
		name string
		stop func(t *testing.T, dom string)
	}{
		{"sigkill-at-boot", func(t *testing.T, dom string) { killHolder(t, dom, false) }},
		{"sigkill-after-reboot", func(t *testing.T, dom string) { killHolder(t, dom, true) }},
		{"close", func(t *testing.T, dom string) {
			own, err := Connect(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if err := own.Start(ctx, dom, true); err != nil {
				t.Fatal(err)
			}
			expectState(t, c, dom, StateRunning)
			own.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dom := defineBlank(t, ctx, c, "")
			tc.stop(t, dom)
			start := time.Now()
			for {
				st, err := c.State(ctx, dom)
				if err != nil {
					t.Fatal(err)
				}
				if st == StateShutoff {
					break
				}
				if time.Since(start) > 30*time.Second {
					t.Fatalf("domain still %s 30 s after its starter's connection went", st)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("shut off %v after the connection went", time.Since(start).Round(time.Millisecond))
			// Still defined: the rest is clean's job.
			names, err := c.ListDomains(ctx, testPrefix)
			if err != nil || !contains(names, dom) {
				t.Errorf("the definition went with the domain: %v, %v", names, err)
			}
		})
	}

	t.Run("without-autodestroy-outlives-the-connection", func(t *testing.T) {
		dom := defineBlank(t, ctx, c, "")
		own, err := Connect(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := own.Start(ctx, dom, false); err != nil {
			t.Fatal(err)
		}
		own.Close()
		time.Sleep(2 * time.Second)
		expectState(t, c, dom, StateRunning)
	})

	t.Run("owner-dir-metadata", func(t *testing.T) {
		dir := "/tmp/pidreuse-test-owner/a b"
		dom := defineBlank(t, ctx, c, dir)
		if got, err := c.OwnerDir(ctx, dom); err != nil || got != dir {
			t.Errorf("OwnerDir of a shut-off domain = %q, %v; want %q", got, err, dir)
		}
		if err := c.Start(ctx, dom, true); err != nil {
			t.Fatal(err)
		}
		if got, err := c.OwnerDir(ctx, dom); err != nil || got != dir {
			t.Errorf("OwnerDir of a running domain = %q, %v; want %q", got, err, dir)
		}
		bare := defineBlank(t, ctx, c, "")
		if got, err := c.OwnerDir(ctx, bare); err != nil || got != "" {
			t.Errorf("OwnerDir of a domain without metadata = %q, %v; want empty", got, err)
		}
	})

	t.Run("port-taken", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		dom := defineBlankOnPort(t, ctx, c, "", l.Addr().(*net.TCPAddr).Port)
		err = c.Start(ctx, dom, true)
		if !errors.Is(err, ErrPortTaken) {
			t.Fatalf("start with the SSH port taken: %v, want ErrPortTaken", err)
		}
		t.Logf("port taken: %v", err)
	})
}

// killHolder runs the helper process on dom and SIGKILLs it once the
// domain runs.
func killHolder(t *testing.T, dom string, reboot bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AUTODESTROY_TEST_DOMAIN="+dom)
	if reboot {
		cmd.Env = append(cmd.Env, "AUTODESTROY_TEST_REBOOT=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "running" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q", line)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
}

func expectState(t *testing.T, c *Client, dom string, want State) {
	t.Helper()
	if st, err := c.State(context.Background(), dom); err != nil || st != want {
		t.Fatalf("state of %s = %v, %v; want %v", dom, st, err, want)
	}
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func defineBlank(t *testing.T, ctx context.Context, c *Client, ownerDir string) string {
	t.Helper()
	port, err := FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	return defineBlankOnPort(t, ctx, c, ownerDir, port)
}

// defineBlankOnPort defines a domain on a blank disk (it sits in SeaBIOS)
// and removes it at the end of the test.
func defineBlankOnPort(t *testing.T, ctx context.Context, c *Client, ownerDir string, port int) string {
	t.Helper()
	dir, overlay, name := blankOverlay(t, ctx)
	xml, err := DomainXML(DomainSpec{
		Name: name, VCPUs: 1, MemoryMiB: 128, Disk: overlay, ConsoleLog: filepath.Join(dir, "console.log"),
		SSHPort: port, OnReboot: OnRebootDestroy, OwnerDir: ownerDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Define(ctx, xml); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Destroy(cctx, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := c.Undefine(cctx, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}
