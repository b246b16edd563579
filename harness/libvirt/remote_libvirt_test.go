//go:build libvirt

package libvirt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/internal/loopsshd"
)

// TestRemoteSSH drives this machine's libvirtd as a remote host: through a
// real OpenSSH sshd on 127.0.0.1, with a pinned host key. It checks what
// the VM tier relies on over qemu+ssh: unknown and changed host keys are
// refused; an upload into the storage pool happens once even when two
// connections ask at once; an overlay made there boots (SeaBIOS) with its
// console log in the pool, which comes back through a volume download; a
// domain started with autodestroy dies with the SSH connection; a port on
// the host's 127.0.0.1 is reached through the connection; and the run's
// volumes go at the end.
func TestRemoteSSH(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := loopsshd.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })

	t.Run("unknown host key refused", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(empty, nil, 0o600)
		uri := strings.Replace(srv.URI(), "known_hosts="+url.QueryEscape(srv.KnownHosts), "known_hosts="+url.QueryEscape(empty), 1)
		_, err := ConnectURI(ctx, uri, "")
		if err == nil || !strings.Contains(err.Error(), "is not in") {
			t.Fatalf("connect with an empty known_hosts: %v, want a refusal naming the unknown key", err)
		}
	})
	t.Run("changed host key refused", func(t *testing.T) {
		dir := t.TempDir()
		other := filepath.Join(dir, "other")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		pub, _ := os.ReadFile(other + ".pub")
		f := strings.Fields(string(pub))
		kh := filepath.Join(dir, "known_hosts")
		os.WriteFile(kh, []byte("[127.0.0.1]:"+strconv.Itoa(srv.Port)+" "+f[0]+" "+f[1]+"\n"), 0o600)
		uri := strings.Replace(srv.URI(), "known_hosts="+url.QueryEscape(srv.KnownHosts), "known_hosts="+url.QueryEscape(kh), 1)
		_, err := ConnectURI(ctx, uri, "")
		if err == nil || !strings.Contains(err.Error(), "CHANGED") {
			t.Fatalf("connect with another pinned key: %v, want a refusal naming the change", err)
		}
	})

	c, err := ConnectURI(ctx, srv.URI(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if !c.Target().Remote() {
		t.Fatalf("target %+v is not remote", c.Target())
	}
	poolDir, err := c.EnsurePool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dir, err := c.OpenPool(ctx); err != nil || dir != poolDir {
		t.Fatalf("OpenPool = %q, %v; want the pool EnsurePool made, %s", dir, err, poolDir)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	prefix := testPrefix + hex.EncodeToString(rnd[:]) + "-"
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		names, _ := c.ListVolumes(cctx, prefix)
		for _, n := range names {
			c.DeleteVolume(cctx, n)
		}
	})

	local := t.TempDir()
	base := filepath.Join(local, "base.qcow2")
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", base, "16M").CombinedOutput(); err != nil {
		t.Fatalf("create blank base image: %v: %s", err, out)
	}

	// Two connections ask for the same upload at once: one uploads,
	// the other waits for it.
	c2, err := ConnectURI(ctx, srv.URI(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	baseVol := prefix + "base.qcow2"
	var wg sync.WaitGroup
	uploads := make([]bool, 2)
	paths := make([]string, 2)
	errs := make([]error, 2)
	if _, err := c2.EnsurePool(ctx); err != nil {
		t.Fatal(err)
	}
	for i, cl := range []*Client{c, c2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], uploads[i], errs[i] = cl.UploadOnce(ctx, base, baseVol, func(s string) { t.Log(s) })
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if uploads[0] == uploads[1] {
		t.Fatalf("concurrent UploadOnce: uploaded = %v, want exactly one upload", uploads)
	}
	if paths[0] != paths[1] || filepath.Dir(paths[0]) != poolDir {
		t.Fatalf("volume paths %v, want one path in the pool dir %s", paths, poolDir)
	}
	if _, again, err := c.UploadOnce(ctx, base, baseVol, func(s string) { t.Log(s) }); err != nil || again {
		t.Fatalf("third UploadOnce: uploaded=%v err=%v, want no upload", again, err)
	}
	size, err := QCOW2VirtualSize(base)
	if err != nil || size != 16<<20 {
		t.Fatalf("QCOW2VirtualSize = %d, %v; want 16 MiB", size, err)
	}
	name := strings.TrimSuffix(prefix, "-")
	overlay, err := c.CreateOverlayVolume(ctx, prefix+"disk.qcow2", paths[0], size)
	if err != nil {
		t.Fatal(err)
	}
	console := prefix + "console.log"
	// The SSH forward's port on the host, as the host's sshd picks it.
	lease, err := c.ReservePort()
	if err != nil {
		t.Fatal(err)
	}
	xml, err := DomainXML(DomainSpec{
		Name: name, VCPUs: 1, MemoryMiB: 64, Disk: overlay,
		ConsoleLog: filepath.Join(poolDir, console), SSHPort: lease.Port, OnReboot: OnRebootDestroy,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Define(ctx, xml); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy(context.Background(), name); c.Undefine(context.Background(), name) })
	if err := c2.Start(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	// virtlogd made the console log in the pool's dir at start; it
	// comes back through a volume download. (SeaBIOS prints nothing to
	// the serial port, so it is empty here: a booting guest's lines over
	// qemu+ssh are what the VM specs read.)
	got := filepath.Join(local, "console.log")
	if err := c.DownloadVolume(ctx, console, got); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(got); err != nil {
		t.Fatal(err)
	}
	// The starter's connection goes: libvirtd destroys the domain.
	c2.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := c.State(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if st == StateShutoff {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("domain %s still %s a minute after its starter's SSH connection closed (autodestroy)", name, st)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A guest's SSH forward listens on the host's 127.0.0.1: here a
	// listener stands in for it, on the port the domain had.
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(lease.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err == nil {
			conn.Write([]byte("SSH-2.0-forward\r\n"))
			conn.Close()
		}
	}()
	conn, err := c.DialHost(ctx, lease.Port)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	conn.Close()
	if string(b) != "SSH-2.0-forward\r\n" {
		t.Fatalf("through the SSH connection port %d said %q", lease.Port, b)
	}

	for _, v := range []string{prefix + "disk.qcow2", console, baseVol} {
		if err := c.DeleteVolume(ctx, v); err != nil {
			t.Error(err)
		}
	}
	if left, err := c.ListVolumes(ctx, prefix); err != nil || len(left) != 0 {
		t.Fatalf("volumes left in the pool: %v (%v)", left, err)
	}
}
