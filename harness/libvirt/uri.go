package libvirt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// LocalURI is libvirtd's system instance on this machine.
const LocalURI = "qemu:///system"

// Transport is how a URI reaches libvirtd.
type Transport string

// Transports the harness speaks, named as in libvirt's URIs.
const (
	// TransportUnix is this machine's socket: qemu:///system.
	TransportUnix Transport = "unix"
	// TransportSSH is qemu+ssh://: libvirt's RPC and the guests' SSH
	// forwards both go through one SSH connection to the host.
	TransportSSH Transport = "ssh"
	// TransportTCP is qemu+tcp://: plain, unauthenticated TCP.
	TransportTCP Transport = "tcp"
)

// Target is a parsed libvirt URI: which libvirtd to talk to and how.
type Target struct {
	// URI is the URI as given.
	URI       string
	Transport Transport
	// Host and Port are the libvirt host (ssh, tcp); Port may be empty.
	Host, Port string
	// User logs in over SSH (default: this process's user).
	User string
	// KeyFile and KnownHosts are libvirt's URI parameters of the same
	// names (keyfile, known_hosts) for ssh; defaults ~/.ssh/id_ed25519
	// (then id_rsa) and ~/.ssh/known_hosts, as ssh(1) would use.
	KeyFile, KnownHosts string
	// Socket is libvirtd's socket on the libvirt host (URI parameter
	// socket; default DefaultSocket).
	Socket string
}

// Remote says whether libvirtd runs behind a network transport. Disks,
// kernels and console logs then live in a storage pool on its host, not
// in this machine's files, even when that host is this machine.
func (t Target) Remote() bool { return t.Transport != TransportUnix }

// String is the URI without its parameters, for progress lines.
func (t Target) String() string {
	if u, err := url.Parse(t.URI); err == nil {
		u.RawQuery = ""
		return u.String()
	}
	return t.URI
}

// ParseURI reads a libvirt URI: qemu:///system (also qemu+unix:///system
// with ?socket=), qemu+ssh://[user@]host[:port]/system with ?keyfile= and
// ?known_hosts=, or qemu+tcp://host[:port]/system. Only the system
// instance: the session instance cannot start domains with the network
// the harness needs.
func ParseURI(s string) (Target, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = LocalURI
	}
	u, err := url.Parse(s)
	if err != nil {
		return Target{}, fmt.Errorf("libvirt URI %q: %w", s, err)
	}
	usage := "use qemu:///system, qemu+ssh://user@host/system or qemu+tcp://host/system"
	driver, transport, _ := strings.Cut(u.Scheme, "+")
	if driver != "qemu" {
		return Target{}, fmt.Errorf("libvirt URI %q: driver %q: the harness runs QEMU guests only: %s", s, driver, usage)
	}
	if u.Path != "/system" {
		return Target{}, fmt.Errorf("libvirt URI %q: path %q: only the system instance (/system) runs the harness's guests: %s", s, u.Path, usage)
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "socket", "keyfile", "known_hosts":
		default:
			return Target{}, fmt.Errorf("libvirt URI %q: parameter %q is not supported here (supported: socket, keyfile, known_hosts)", s, k)
		}
	}
	t := Target{URI: s, Host: u.Hostname(), Port: u.Port(), Socket: q.Get("socket")}
	if t.Socket == "" {
		t.Socket = DefaultSocket
	}
	switch transport {
	case "", "unix":
		if u.Host != "" {
			return Target{}, fmt.Errorf("libvirt URI %q names host %q without a transport: write qemu+ssh://%s/system or qemu+tcp://%s/system", s, u.Host, u.Host, u.Host)
		}
		t.Transport = TransportUnix
	case "ssh":
		if t.Host == "" {
			return Target{}, fmt.Errorf("libvirt URI %q: qemu+ssh needs a host", s)
		}
		t.Transport = TransportSSH
		t.User = u.User.Username()
		if t.User == "" {
			t.User = os.Getenv("USER")
		}
		if t.User == "" {
			t.User = "root"
		}
		home, _ := os.UserHomeDir()
		t.KnownHosts = q.Get("known_hosts")
		if t.KnownHosts == "" {
			t.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
		}
		t.KeyFile = q.Get("keyfile")
		if t.KeyFile == "" {
			t.KeyFile = filepath.Join(home, ".ssh", "id_ed25519")
			if _, err := os.Stat(t.KeyFile); errors.Is(err, os.ErrNotExist) {
				t.KeyFile = filepath.Join(home, ".ssh", "id_rsa")
			}
		}
	case "tcp":
		if t.Host == "" {
			return Target{}, fmt.Errorf("libvirt URI %q: qemu+tcp needs a host", s)
		}
		// A guest's SSH forward listens on its host's 127.0.0.1 only
		// (the harness never opens one on another address), so without
		// an SSH connection to jump through it is reachable only when
		// that host is this machine.
		if !isLoopbackHost(t.Host) {
			return Target{}, fmt.Errorf("libvirt URI %q: over qemu+tcp the guests' SSH forwards on %s's 127.0.0.1 cannot be reached from here: use qemu+ssh://%s/system", s, t.Host, t.Host)
		}
		t.Transport = TransportTCP
	default:
		return Target{}, fmt.Errorf("libvirt URI %q: transport %q: %s", s, transport, usage)
	}
	return t, nil
}

// ParseURIList reads a comma-separated list of URIs (the suites give
// Ginkgo process i the host i mod n).
func ParseURIList(s string) ([]Target, error) {
	var ts []Target
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		t, err := ParseURI(part)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		t, _ := ParseURI(LocalURI)
		ts = append(ts, t)
	}
	return ts, nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
