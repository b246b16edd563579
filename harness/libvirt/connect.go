package libvirt

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// ConnectURI opens a connection to the libvirtd a URI names (see
// ParseURI); "" is this machine's qemu:///system. socket, when not empty,
// replaces the socket path of a local URI (--libvirt-socket).
func ConnectURI(ctx context.Context, uri, socket string) (*Client, error) {
	t, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return ConnectTarget(ctx, t, socket)
}

// ConnectTarget is ConnectURI for a parsed URI.
func ConnectTarget(ctx context.Context, t Target, socket string) (*Client, error) {
	switch t.Transport {
	case TransportUnix:
		if socket == "" {
			socket = t.Socket
		}
		c, err := Connect(ctx, socket)
		if err != nil {
			return nil, err
		}
		c.target = t
		return c, nil
	case TransportSSH:
		jump, err := dialSSHHost(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("libvirtd at %s not reachable: %w", t, err)
		}
		var conn net.Conn
		err = do(ctx, func() error {
			var err error
			conn, err = jump.Dial("unix", t.Socket)
			return err
		}, nil)
		if err != nil {
			jump.Close()
			return nil, fmt.Errorf("libvirtd at %s: open its socket %s over SSH (is libvirtd running there? `make deps` on that host): %w", t, t.Socket, err)
		}
		l := golibvirt.NewWithDialer(dialers.NewAlreadyConnected(conn))
		if err := do(ctx, func() error { return l.ConnectToURI(golibvirt.QEMUSystem) }, func() { _ = l.Disconnect() }); err != nil {
			jump.Close()
			return nil, fmt.Errorf("libvirtd at %s: connect: %w", t, err)
		}
		return &Client{l: l, socket: t.String(), target: t, jump: jump}, nil
	case TransportTCP:
		opts := []dialers.RemoteOption{dialers.UsePort(t.Port)}
		if t.Port == "" {
			opts = nil
		}
		l := golibvirt.NewWithDialer(dialers.NewRemote(t.Host, opts...))
		if err := do(ctx, func() error { return l.ConnectToURI(golibvirt.QEMUSystem) }, func() { _ = l.Disconnect() }); err != nil {
			return nil, fmt.Errorf("libvirtd at %s not reachable (does it listen on TCP? libvirtd --listen or virtproxyd-tcp.socket): %w", t, err)
		}
		return &Client{l: l, socket: t.String(), target: t}, nil
	}
	return nil, fmt.Errorf("libvirt URI %s: transport %q not supported", t.URI, t.Transport)
}

// Target says which libvirtd this client talks to.
func (c *Client) Target() Target { return c.target }

// DialHost connects to port on the libvirt host's 127.0.0.1, where a
// guest's SSH forward listens: directly on this machine, through the SSH
// connection for qemu+ssh.
func (c *Client) DialHost(ctx context.Context, port int) (net.Conn, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if c.jump == nil {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	var conn net.Conn
	err := do(ctx, func() error {
		var err error
		conn, err = c.jump.Dial("tcp", addr)
		return err
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s on %s through SSH: %w", addr, c.target.Host, err)
	}
	return conn, nil
}

// ReservePort picks the port on the libvirt host's 127.0.0.1 for a guest's
// SSH forward: locked against the other pidreuse processes of this machine
// when that host is this machine (ReservePort), asked of the host's sshd
// for qemu+ssh.
func (c *Client) ReservePort() (*PortLease, error) {
	if c.jump == nil {
		return ReservePort()
	}
	port, err := freeRemoteLoopbackPort(c.jump)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.target, err)
	}
	return &PortLease{Port: port}, nil
}

// Connect opens a connection to libvirtd on this machine's socketPath
// (DefaultSocket when empty).
func Connect(ctx context.Context, socketPath string) (*Client, error) {
	if socketPath == "" {
		socketPath = DefaultSocket
	}
	notReachable := func(err error) error {
		return fmt.Errorf("libvirtd not reachable at %s: run `make deps` (or start it: virtlogd -d && libvirtd -d): %w", socketPath, err)
	}
	// Checked up front because the dial error for a missing socket
	// ("connect: no such file or directory") does not say which file.
	if _, err := os.Stat(socketPath); err != nil {
		return nil, notReachable(err)
	}
	timeout := 15 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	l := golibvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(socketPath), dialers.WithLocalTimeout(timeout)))
	err := do(ctx, func() error { return l.ConnectToURI(golibvirt.QEMUSystem) }, func() { _ = l.Disconnect() })
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("connect to libvirtd at %s: %w", socketPath, ctxErr)
		}
		return nil, notReachable(err)
	}
	t, _ := ParseURI(LocalURI)
	t.Socket = socketPath
	return &Client{l: l, socket: socketPath, target: t}, nil
}
