package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// dialSSHHost opens the one SSH connection to a qemu+ssh host that carries
// libvirt's RPC and every guest SSH forward of this client. The host key
// must be in t.KnownHosts: an unknown key is refused (add it with
// ssh-keyscan after checking it), a changed one too, as ssh(1) does with
// StrictHostKeyChecking=yes.
func dialSSHHost(ctx context.Context, t Target) (*ssh.Client, error) {
	keyPEM, err := os.ReadFile(t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: read the SSH key (URI parameter keyfile): %w", t, err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: SSH key %s: %w", t, t.KeyFile, err)
	}
	hostKeys, err := knownhosts.New(t.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("%s: known_hosts %s (URI parameter known_hosts): %w", t, t.KnownHosts, err)
	}
	port := t.Port
	if port == "" {
		port = "22"
	}
	addr := net.JoinHostPort(t.Host, port)
	cfg := &ssh.ClientConfig{
		User: t.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := hostKeys(hostname, remote, key)
			var ke *knownhosts.KeyError
			if errors.As(err, &ke) {
				if len(ke.Want) == 0 {
					return fmt.Errorf("host key of %s (%s %s) is not in %s: check it and add it (ssh-keyscan -p %s %s >> %s): %w",
						addr, key.Type(), ssh.FingerprintSHA256(key), t.KnownHosts, port, t.Host, t.KnownHosts, err)
				}
				return fmt.Errorf("host key of %s CHANGED (now %s %s), %s pins another: refusing: %w",
					addr, key.Type(), ssh.FingerprintSHA256(key), t.KnownHosts, err)
			}
			return err
		},
		Timeout: 20 * time.Second,
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s: %w", t, addr, err)
	}
	// The handshake takes no context: closing the connection when ctx
	// ends is what interrupts it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stop() {
		if err == nil {
			c.Close()
		}
		return nil, fmt.Errorf("%s: SSH to %s: %w", t, addr, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: SSH to %s as %s: %w", t, addr, t.User, err)
	}
	client := ssh.NewClient(c, chans, reqs)
	go keepAlive(client, 10*time.Second)
	return client, nil
}

// keepAlive probes the connection so a dead libvirt host is noticed (the
// RPCs then fail instead of hanging) and NATs keep it open.
func keepAlive(c *ssh.Client, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			c.Close()
			return
		}
	}
}

// freeRemoteLoopbackPort asks the SSH server for a free port on its
// 127.0.0.1 (a remote forward on port 0) and gives it back: a port QEMU
// on that host can bind a moment later. As on this machine, someone may
// take it in between; the start then fails with ErrPortTaken and the
// caller picks another.
func freeRemoteLoopbackPort(c *ssh.Client) (int, error) {
	l, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on the libvirt host's 127.0.0.1 (does its sshd allow TCP forwarding?): %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("release the probe forward on the libvirt host's 127.0.0.1:%d: %w", port, err)
	}
	return port, nil
}
