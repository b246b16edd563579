// Package ssh reaches pidreuse VMs over the loopback port forward QEMU sets
// up. The guest's host key is always pinned: the image is built with a known
// key, so anything else answering on the port is refused, never trusted on
// first use.
package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pidreuse/pidreuse/internal/shell"
)

// ErrConnectionLost is wrapped by errors from a Client whose connection went
// away, typically because the guest rebooted or QEMU stopped. A caller that
// asked for a reboot expects it; dial again with WaitReady.
var ErrConnectionLost = errors.New("ssh connection lost")

// ErrHostKeyMismatch is wrapped when the server's host key is not the
// pinned one.
var ErrHostKeyMismatch = errors.New("host key did not match the pinned one")

// Default keepalive settings; see Config.KeepAliveInterval.
const (
	defaultKeepAliveInterval = 5 * time.Second
	keepAliveMissed          = 3
)

// Config says where and as whom to connect.
type Config struct {
	// Addr is the forwarded port, 127.0.0.1:PORT.
	Addr string
	// Dial, when set, opens the TCP connection to Addr instead of a
	// plain dial from this machine: a guest on a remote libvirt host is
	// reached through that host (libvirt.Client.DialHost).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// User to log in as.
	User string
	// Signer is the client's private key (LoadSigner).
	Signer ssh.Signer
	// HostKey is the guest's pinned public host key (ParseAuthorizedKey).
	HostKey ssh.PublicKey
	// KeepAliveInterval is how often an idle connection is probed; after
	// three unanswered probes it is closed and calls fail with
	// ErrConnectionLost. This catches a guest reset in place: QEMU's
	// user-mode network keeps the host side of the TCP connection open,
	// so without probes a command would wait forever. Zero means 5 s,
	// negative disables the probes.
	KeepAliveInterval time.Duration
}

func (c Config) validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("Addr is empty: set it to 127.0.0.1:<forwarded port>"))
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("Addr %q is not host:port: %w", c.Addr, err))
	}
	if c.User == "" {
		errs = append(errs, errors.New("User is empty"))
	}
	if c.Signer == nil {
		errs = append(errs, errors.New("Signer is nil: load the client key with LoadSigner"))
	}
	if c.HostKey == nil {
		// Refusing here is what keeps "accept any host key" out.
		errs = append(errs, errors.New("HostKey is nil: pin the guest's host key (ParseAuthorizedKey of its ssh_host_*_key.pub)"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid ssh config: %w", errors.Join(errs...))
	}
	return nil
}

// hostKeyAlgorithms asks the server for the pinned key's type, so a server
// with several host keys (ed25519, ecdsa, rsa) presents the pinned one
// instead of whichever it prefers.
func hostKeyAlgorithms(k ssh.PublicKey) []string {
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{k.Type()}
}

func pinnedHostKey(want ssh.PublicKey) ssh.HostKeyCallback {
	wantBytes := want.Marshal()
	return func(hostname string, remote net.Addr, got ssh.PublicKey) error {
		if bytes.Equal(got.Marshal(), wantBytes) {
			return nil
		}
		return fmt.Errorf("%w: %s presented %s %s, pinned %s %s (is another VM or service on this port, or was the image rebuilt with a new key?)",
			ErrHostKeyMismatch, remote, got.Type(), ssh.FingerprintSHA256(got), want.Type(), ssh.FingerprintSHA256(want))
	}
}

// Client is an SSH connection to one guest. It is safe for concurrent use;
// each Run opens its own session.
type Client struct {
	c    *ssh.Client
	addr string

	// closed is closed once the underlying connection has ended, for
	// whatever reason; Run uses it to tell a lost connection from other
	// failures.
	closed    chan struct{}
	closeOnce sync.Once
	stopKA    chan struct{}
}

// Dial makes one connection attempt, bounded by ctx.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dial := cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	conn, err := dial(ctx, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssh dial %s: %w", cfg.Addr, err)
	}
	// The handshake has no context of its own: closing the connection
	// when ctx ends is what interrupts it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sshConn, chans, reqs, err := ssh.NewClientConn(conn, cfg.Addr, &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(cfg.Signer)},
		HostKeyCallback:   pinnedHostKey(cfg.HostKey),
		HostKeyAlgorithms: hostKeyAlgorithms(cfg.HostKey),
	})
	if !stop() {
		// ctx ended during the handshake and closed conn.
		if err == nil {
			sshConn.Close()
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", cfg.Addr, ctx.Err())
	}
	if err != nil {
		conn.Close()
		if errors.Is(err, ErrHostKeyMismatch) {
			return nil, fmt.Errorf("ssh %s: %w", cfg.Addr, err)
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("ssh %s: user %s was refused with key %s: check the image's authorized_keys: %w",
				cfg.Addr, cfg.User, ssh.FingerprintSHA256(cfg.Signer.PublicKey()), err)
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", cfg.Addr, err)
	}
	c := &Client{
		c:      ssh.NewClient(sshConn, chans, reqs),
		addr:   cfg.Addr,
		closed: make(chan struct{}),
		stopKA: make(chan struct{}),
	}
	go func() {
		_ = c.c.Wait()
		close(c.closed)
	}()
	interval := cfg.KeepAliveInterval
	if interval == 0 {
		interval = defaultKeepAliveInterval
	}
	if interval > 0 {
		go c.keepAlive(interval)
	}
	return c, nil
}

// keepAlive closes the connection when the server stops answering; see
// Config.KeepAliveInterval.
func (c *Client) keepAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stopKA:
			return
		case <-c.closed:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			// Any reply, even "unsupported", proves the peer is
			// alive; OpenSSH answers this one with failure.
			_, _, err := c.c.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				c.c.Close()
				return
			}
		case <-time.After(keepAliveMissed * interval):
			c.c.Close()
			return
		case <-c.stopKA:
			return
		case <-c.closed:
			return
		}
	}
}

// Close ends the connection.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.stopKA) })
	err := c.c.Close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		select {
		case <-c.closed:
			return nil // already gone, nothing left to close
		default:
		}
		return fmt.Errorf("close ssh connection to %s: %w", c.addr, err)
	}
	return nil
}

// isClosed reports whether the connection has ended.
func (c *Client) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// lost wraps err as ErrConnectionLost.
func (c *Client) lost(what string, err error) error {
	return fmt.Errorf("%s on %s: %w: %w", what, c.addr, ErrConnectionLost, err)
}

// runGrace bounds how long Run waits for a session to wind down after ctx
// ended; a dead peer would otherwise keep it waiting forever.
const runGrace = 2 * time.Second

// Run runs cmd through the guest's login shell and waits for it. stdin may be
// nil. A non-zero exit status is not an error: it is returned as exitCode
// (128+N for a command killed by signal N). Errors are failures to run or
// finish the command: ctx ending (the session is closed and ctx's error is
// wrapped), or the connection going away (ErrConnectionLost is wrapped).
// On error exitCode is -1.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) (stdout, stderr []byte, exitCode int, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, -1, fmt.Errorf("run %q on %s: %w", cmd, c.addr, err)
	}
	sess, err := c.c.NewSession()
	if err != nil {
		if c.isClosed() || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return nil, nil, -1, c.lost(fmt.Sprintf("open session for %q", cmd), err)
		}
		return nil, nil, -1, fmt.Errorf("open session for %q on %s: %w", cmd, c.addr, err)
	}
	defer sess.Close()

	// Two buffers: the session copies stdout and stderr from two
	// goroutines, so one shared buffer would be a data race.
	var outBuf, errBuf bytes.Buffer
	sess.Stdout = &outBuf
	sess.Stderr = &errBuf
	if stdin != nil {
		sess.Stdin = stdin
	}
	if err := sess.Start(cmd); err != nil {
		if c.isClosed() || errors.Is(err, io.EOF) {
			return nil, nil, -1, c.lost(fmt.Sprintf("start %q", cmd), err)
		}
		return nil, nil, -1, fmt.Errorf("start %q on %s: %w", cmd, c.addr, err)
	}

	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()

	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		// Ask the remote side to kill the command (OpenSSH ≥ 7.9
		// honours it), then tear the session down in any case.
		_ = sess.Signal(ssh.SIGKILL)
		_ = sess.Close()
		select {
		case <-done:
			// The copy goroutines have finished; the buffers are
			// ours again and hold what the command printed.
			return outBuf.Bytes(), errBuf.Bytes(), -1, fmt.Errorf("run %q on %s: %w", cmd, c.addr, ctx.Err())
		case <-time.After(runGrace):
			// Still copying: the buffers stay with the goroutine.
			return nil, nil, -1, fmt.Errorf("run %q on %s: %w (session did not wind down)", cmd, c.addr, ctx.Err())
		}
	}

	var exitErr *ssh.ExitError
	switch {
	case waitErr == nil:
		return outBuf.Bytes(), errBuf.Bytes(), 0, nil
	case errors.As(waitErr, &exitErr):
		return outBuf.Bytes(), errBuf.Bytes(), exitErr.ExitStatus(), nil
	}
	// No exit status: the channel was torn down under the command. That
	// is what a reboot looks like (sshd killed, or QEMU gone).
	var missing *ssh.ExitMissingError
	if errors.As(waitErr, &missing) || c.isClosed() || errors.Is(waitErr, io.EOF) {
		return outBuf.Bytes(), errBuf.Bytes(), -1, c.lost(fmt.Sprintf("run %q", cmd), waitErr)
	}
	return outBuf.Bytes(), errBuf.Bytes(), -1, fmt.Errorf("run %q on %s: %w", cmd, c.addr, waitErr)
}

// Stream is a command started by Client.Stream: a conversation over its
// stdin and stdout that outlives the call that started it.
type Stream struct {
	Stdin  io.WriteCloser
	Stdout io.Reader
	sess   *ssh.Session
	c      *Client
}

// Stream starts cmd in a session of its own and returns its stdin and
// stdout; its stderr is dropped. The command runs until Close, or until its
// input ends, or the connection goes away (a reboot).
func (c *Client) Stream(ctx context.Context, cmd string) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %q on %s: %w", cmd, c.addr, err)
	}
	sess, err := c.c.NewSession()
	if err != nil {
		if c.isClosed() || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return nil, c.lost(fmt.Sprintf("open session for %q", cmd), err)
		}
		return nil, fmt.Errorf("open session for %q on %s: %w", cmd, c.addr, err)
	}
	st := &Stream{sess: sess, c: c}
	if st.Stdin, err = sess.StdinPipe(); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start %q on %s: %w", cmd, c.addr, err)
	}
	if st.Stdout, err = sess.StdoutPipe(); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start %q on %s: %w", cmd, c.addr, err)
	}
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		if c.isClosed() || errors.Is(err, io.EOF) {
			return nil, c.lost(fmt.Sprintf("start %q", cmd), err)
		}
		return nil, fmt.Errorf("start %q on %s: %w", cmd, c.addr, err)
	}
	return st, nil
}

// Lost says whether the stream's connection has ended.
func (s *Stream) Lost() bool { return s.c.isClosed() }

// Close ends the stream's input, asks the guest to kill the command and
// tears the session down.
func (s *Stream) Close() error {
	_ = s.Stdin.Close()
	_ = s.sess.Signal(ssh.SIGKILL)
	err := s.sess.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("close stream on %s: %w", s.c.addr, err)
	}
	return nil
}

// Upload writes data to remotePath with the given permission bits. It
// writes a temporary file next to the target and renames it into place, so
// a connection lost halfway (a reboot) never leaves a truncated file at
// remotePath.
func (c *Client) Upload(ctx context.Context, data io.Reader, remotePath string, mode os.FileMode) error {
	if remotePath == "" || strings.HasSuffix(remotePath, "/") {
		return fmt.Errorf("upload to %s: remote path %q must name a file", c.addr, remotePath)
	}
	tmp := remotePath + ".pidreuse-upload"
	q, qt := shell.Quote(remotePath), shell.Quote(tmp)
	script := fmt.Sprintf("umask 077 && cat > %s && chmod %04o %s && mv -f %s %s || { rc=$?; rm -f %s; exit $rc; }",
		qt, mode.Perm(), qt, qt, q, qt)
	_, stderr, code, err := c.Run(ctx, script, data)
	if err != nil {
		return fmt.Errorf("upload to %s:%s: %w", c.addr, remotePath, err)
	}
	if code != 0 {
		return fmt.Errorf("upload to %s:%s: remote shell exited %d: %s (does the directory exist and is it writable by the ssh user?)",
			c.addr, remotePath, code, strings.TrimSpace(string(stderr)))
	}
	return nil
}

// WaitReady dials until a connection succeeds or ctx ends, backing off from
// 250 ms to 2 s between attempts. onAttempt, if not nil, sees every failed
// attempt (for progress logs). A host key mismatch stops at once: retrying
// would not change the key. The final error wraps ctx's error and the last
// dial error.
func WaitReady(ctx context.Context, cfg Config, onAttempt func(attempt int, err error)) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	const (
		minBackoff = 250 * time.Millisecond
		maxBackoff = 2 * time.Second
		// attemptTimeout bounds one dial: QEMU accepts the forwarded
		// connection even while the guest cannot answer yet, and
		// such a connection may then just hang.
		attemptTimeout = 15 * time.Second
	)
	start := time.Now()
	backoff := minBackoff
	var lastErr error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		c, err := Dial(actx, cfg)
		cancel()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil && lastErr != nil {
			// This attempt was cut short by ctx; the previous
			// error says more about why the guest is not up.
			err = lastErr
		}
		lastErr = err
		if onAttempt != nil {
			onAttempt(attempt, err)
		}
		if errors.Is(err, ErrHostKeyMismatch) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh %s not ready after %d attempts in %v: %w; last error: %w",
				cfg.Addr, attempt, time.Since(start).Round(time.Millisecond), ctx.Err(), lastErr)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// ParseAuthorizedKey parses one public key in authorized_keys / .pub format,
// e.g. the content of /etc/ssh/ssh_host_ed25519_key.pub.
func ParseAuthorizedKey(line string) (ssh.PublicKey, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return nil, errors.New("parse public key: empty input: expected a line like \"ssh-ed25519 AAAA... comment\"")
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("parse public key %q: %w: expected a line like \"ssh-ed25519 AAAA... comment\"", abbreviate(line), err)
	}
	return k, nil
}

// LoadSigner reads an unencrypted private key (OpenSSH or PEM format).
func LoadSigner(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ssh private key: %w (generate the harness key pair with `make images`)", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, fmt.Errorf("ssh private key %s is passphrase-protected: the harness needs an unencrypted key: %w", path, err)
		}
		return nil, fmt.Errorf("parse ssh private key %s: %w", path, err)
	}
	return s, nil
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
