package ssh

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

type fixture struct {
	srv *testServer
	cfg Config
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	hostKey, clientKey := newSigner(t), newSigner(t)
	srv := startTestServer(t, "127.0.0.1:0", hostKey, clientKey.PublicKey())
	return fixture{srv: srv, cfg: Config{
		Addr:    srv.Addr(),
		User:    "pidreuse",
		Signer:  clientKey,
		HostKey: hostKey.PublicKey(),
	}}
}

func dial(t *testing.T, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRun(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tests := []struct {
		name       string
		cmd        string
		stdin      string
		wantOut    string
		wantErr    string
		wantStatus int
	}{
		{"stdout", "echo hello", "", "hello\n", "", 0},
		{"stderr", "echo oops >&2", "", "", "oops\n", 0},
		{"both and exit code", "echo out; echo err >&2; exit 3", "", "out\n", "err\n", 3},
		{"stdin", "tr a-z A-Z", "shout", "SHOUT", "", 0},
		{"killed by signal", "kill -9 $$", "", "", "", 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdin io.Reader // nil: no input
			if tt.stdin != "" {
				stdin = strings.NewReader(tt.stdin)
			}
			out, errb, code, err := c.Run(ctx, tt.cmd, stdin)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if string(out) != tt.wantOut || string(errb) != tt.wantErr || code != tt.wantStatus {
				t.Errorf("Run(%q) = %q, %q, %d; want %q, %q, %d", tt.cmd, out, errb, code, tt.wantOut, tt.wantErr, tt.wantStatus)
			}
		})
	}
}

func TestRunConcurrent(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errb, code, err := c.Run(ctx, "echo out; echo err >&2", nil)
			if err != nil || string(out) != "out\n" || string(errb) != "err\n" || code != 0 {
				t.Errorf("run %d: %q %q %d %v", i, out, errb, code, err)
			}
		}()
	}
	wg.Wait()
}

func TestWrongHostKeyRejected(t *testing.T) {
	f := newFixture(t)
	cfg := f.cfg
	cfg.HostKey = newSigner(t).PublicKey() // not the server's
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial accepted a server with the wrong host key")
	}
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Errorf("error %v does not wrap ErrHostKeyMismatch", err)
	}
	if !strings.Contains(err.Error(), "host key did not match the pinned one") {
		t.Errorf("error %q does not say the host key did not match the pinned one", err)
	}

	// WaitReady gives up at once instead of retrying until the deadline.
	start := time.Now()
	attempts := 0
	_, err = WaitReady(ctx, cfg, func(int, error) { attempts++ })
	if !errors.Is(err, ErrHostKeyMismatch) || attempts != 1 {
		t.Errorf("WaitReady with a wrong host key: %v after %d attempts, want ErrHostKeyMismatch after 1", err, attempts)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("WaitReady took %v to give up on a host key mismatch", time.Since(start))
	}
}

func TestWrongClientKeyRefused(t *testing.T) {
	f := newFixture(t)
	cfg := f.cfg
	cfg.Signer = newSigner(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "authorized_keys") {
		t.Errorf("Dial with an unknown client key: %v, want an error pointing at authorized_keys", err)
	}
}

func TestConfigValidation(t *testing.T) {
	ctx := context.Background()
	_, err := Dial(ctx, Config{Addr: "127.0.0.1:22", User: "x", Signer: newSigner(t)})
	if err == nil || !strings.Contains(err.Error(), "HostKey is nil") {
		t.Errorf("Dial without a host key: %v, want a HostKey error", err)
	}
}

func TestWaitReadyServerComesUpLate(t *testing.T) {
	hostKey, clientKey := newSigner(t), newSigner(t)
	// Reserve a port, free it, and bring the server up on it later, as
	// QEMU's forward comes to life once the guest's sshd starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := Config{Addr: addr, User: "pidreuse", Signer: clientKey, HostKey: hostKey.PublicKey()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	go func() {
		time.Sleep(1200 * time.Millisecond)
		startTestServer(t, addr, hostKey, clientKey.PublicKey())
	}()
	var mu sync.Mutex
	var attempts []error
	c, err := WaitReady(ctx, cfg, func(n int, err error) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, err)
	})
	if err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	defer c.Close()
	mu.Lock()
	n := len(attempts)
	mu.Unlock()
	if n < 2 {
		t.Errorf("WaitReady reported %d failed attempts before the server came up, want several", n)
	}
	out, _, _, err := c.Run(ctx, "echo up", nil)
	if err != nil || string(out) != "up\n" {
		t.Errorf("Run after WaitReady: %q, %v", out, err)
	}
}

func TestWaitReadyGivesUpWithLastError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := Config{Addr: addr, User: "pidreuse", Signer: newSigner(t), HostKey: newSigner(t).PublicKey()}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err = WaitReady(ctx, cfg, nil)
	if err == nil {
		t.Fatal("WaitReady succeeded with no server")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap the context's error", err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q does not include the last dial error", err)
	}
}

func TestRunContextTimeout(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, code, err := c.Run(ctx, "echo started; sleep 30", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run past the deadline: %v, want DeadlineExceeded", err)
	}
	if code != -1 {
		t.Errorf("exit code %d on timeout, want -1", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned %v after start, want soon after the 500ms deadline", d)
	}
	// The connection survives a cancelled command.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if out, _, _, err := c.Run(ctx2, "echo still here", nil); err != nil || string(out) != "still here\n" {
		t.Errorf("Run after a cancelled one: %q, %v", out, err)
	}
}

func TestRunConnectionLost(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		time.Sleep(300 * time.Millisecond)
		f.srv.DropConnections() // the guest goes down mid-command
	}()
	_, _, _, err := c.Run(ctx, "sleep 5", nil)
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Run across a dropped connection: %v, want ErrConnectionLost", err)
	}
	// And later calls say the same.
	_, _, _, err = c.Run(ctx, "true", nil)
	if !errors.Is(err, ErrConnectionLost) {
		t.Errorf("Run on a dead connection: %v, want ErrConnectionLost", err)
	}
}

// TestKeepAliveDetectsSilentPeer covers a peer that keeps the TCP
// connection open but stops answering, as QEMU's user-mode network does
// when the guest resets in place.
func TestKeepAliveDetectsSilentPeer(t *testing.T) {
	hostKey, clientKey := newSigner(t), newSigner(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A proxy to a real server that can be told to stop forwarding.
	srv := startTestServer(t, "127.0.0.1:0", hostKey, clientKey.PublicKey())
	freeze := make(chan struct{})
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		up, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			return
		}
		defer up.Close()
		pipe := func(dst, src net.Conn) {
			buf := make([]byte, 32*1024)
			for {
				n, err := src.Read(buf)
				if err != nil {
					return
				}
				select {
				case <-freeze:
					continue // swallow: the peer went silent
				default:
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		go pipe(up, conn)
		pipe(conn, up)
	}()

	cfg := Config{Addr: ln.Addr().String(), User: "pidreuse", Signer: clientKey, HostKey: hostKey.PublicKey(), KeepAliveInterval: 100 * time.Millisecond}
	c := dial(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		time.Sleep(300 * time.Millisecond)
		close(freeze)
	}()
	start := time.Now()
	_, _, _, err = c.Run(ctx, "sleep 8", nil)
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Run with a silent peer: %v, want ErrConnectionLost", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent peer detected after %v, want about 300ms + 3 keepalive intervals", d)
	}
}

func TestUpload(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := t.TempDir()
	target := filepath.Join(dir, "it's a file") // quoting matters
	data := "#!/bin/sh\necho agent\n"
	if err := c.Upload(ctx, strings.NewReader(data), target, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != data {
		t.Errorf("uploaded content = %q, want %q", got, data)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("uploaded mode = %v, want 0755", fi.Mode().Perm())
	}
	if _, err := os.Stat(target + ".pidreuse-upload"); !os.IsNotExist(err) {
		t.Errorf("temporary upload file left behind: %v", err)
	}

	// Overwrite with a smaller file and other mode.
	if err := c.Upload(ctx, strings.NewReader("x"), target, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "x" {
		t.Errorf("after overwrite content = %q, want x", got)
	}

	err = c.Upload(ctx, strings.NewReader("x"), filepath.Join(dir, "missing-dir", "f"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("Upload into a missing directory: %v, want a remote shell error", err)
	}
}

func TestParseAuthorizedKey(t *testing.T) {
	s := newSigner(t)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " root@guest\n"
	k, err := ParseAuthorizedKey(line)
	if err != nil {
		t.Fatal(err)
	}
	if string(k.Marshal()) != string(s.PublicKey().Marshal()) {
		t.Error("parsed key differs from the original")
	}
	for _, bad := range []string{"", "ssh-ed25519 notbase64"} {
		if _, err := ParseAuthorizedKey(bad); err == nil {
			t.Errorf("ParseAuthorizedKey(%q) accepted garbage", bad)
		}
	}
}

func TestLoadSigner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "id_ed25519")
	// Round-trip through the OpenSSH private key format.
	_, priv, err := generateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(path); err != nil {
		t.Errorf("LoadSigner: %v", err)
	}
	if _, err := LoadSigner(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadSigner of a missing file succeeded")
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigner(path); err == nil {
		t.Error("LoadSigner of garbage succeeded")
	}
}

func TestStream(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A line-by-line conversation with one command, as the node's exec
	// server holds one.
	st, err := c.Stream(ctx, `while read l; do echo "got $l"; done`)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	buf := make([]byte, 64)
	for _, l := range []string{"one", "two"} {
		if _, err := io.WriteString(st.Stdin, l+"\n"); err != nil {
			t.Fatal(err)
		}
		n, err := st.Stdout.Read(buf)
		if err != nil || string(buf[:n]) != "got "+l+"\n" {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, "got "+l+"\n")
		}
	}
	if st.Lost() {
		t.Error("Lost on a live connection")
	}
	f.srv.DropConnections()
	if _, err := st.Stdout.Read(buf); err == nil {
		t.Error("read across a dropped connection succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !st.Lost() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !st.Lost() {
		t.Error("Lost is false after the connection dropped")
	}
	if _, err := c.Stream(ctx, "cat"); !errors.Is(err, ErrConnectionLost) {
		t.Errorf("Stream on a dead connection: %v, want ErrConnectionLost", err)
	}
}
