// Package loopsshd runs OpenSSH's sshd on 127.0.0.1 with keys of its own,
// so the qemu+ssh path of the harness (libvirt RPC and guest SSH through
// the libvirt host) can be exercised on one machine against a real sshd:
// a real second path to libvirtd, not a stand-in. It binds loopback only
// and touches no system sshd configuration.
package loopsshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SSHD is where Debian's openssh-server puts the daemon.
const SSHD = "/usr/sbin/sshd"

// Server is a running sshd on 127.0.0.1.
type Server struct {
	Port int
	// KeyFile is the client key root accepts; KnownHosts pins the
	// server's host key ("[127.0.0.1]:port ...").
	KeyFile, KnownHosts string
	cmd                 *exec.Cmd
	dir                 string
	stderr              *bytes.Buffer
}

// Start runs sshd in dir (its keys, config and known_hosts go there) on a
// free port of 127.0.0.1, accepting root with a key made for it.
func Start(ctx context.Context, dir string) (*Server, error) {
	if _, err := os.Stat(SSHD); err != nil {
		return nil, fmt.Errorf("loopback sshd: %s: %w (install openssh-server: `make deps-sshd`)", SSHD, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Privilege separation needs it; the package makes it at boot only.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	s := &Server{dir: dir, KeyFile: filepath.Join(dir, "client_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	hostKey := filepath.Join(dir, "host_ed25519")
	for _, k := range []string{hostKey, s.KeyFile} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pidreuse-loopsshd", "-f", k).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("loopback sshd: ssh-keygen %s: %v: %s", k, err, out)
		}
	}
	clientPub, err := os.ReadFile(s.KeyFile + ".pub")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), clientPub, 0o600); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(string(hostPub))
	if err := os.WriteFile(s.KnownHosts, fmt.Appendf(nil, "[127.0.0.1]:%d %s %s\n", s.Port, fields[0], fields[1]), 0o600); err != nil {
		return nil, err
	}
	cfg := strings.Join([]string{
		"ListenAddress 127.0.0.1:" + strconv.Itoa(s.Port),
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"AllowTcpForwarding yes",
		"AllowStreamLocalForwarding yes",
		"MaxSessions 100",
		"MaxStartups 100",
		"",
	}, "\n")
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	s.stderr = &bytes.Buffer{}
	// Not CommandContext: the server outlives Start's context; Stop ends it.
	s.cmd = exec.Command(SSHD, "-D", "-e", "-f", cfgPath)
	s.cmd.Stderr = s.stderr
	// Its own process group, so Stop ends the per-connection children
	// too (they hold stderr open: Wait would wait for them).
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.WaitDelay = 2 * time.Second
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("loopback sshd: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("loopback sshd on 127.0.0.1:%d did not listen: %v: %s", s.Port, err, s.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URI is the libvirt URI reaching this machine's libvirtd through the
// server, with libvirt's keyfile and known_hosts parameters.
func (s *Server) URI() string {
	q := url.Values{"keyfile": {s.KeyFile}, "known_hosts": {s.KnownHosts}}
	return fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system?%s", s.Port, q.Encode())
}

// Stop ends the server (the sessions it forked end with their clients).
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	err := s.cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		err = nil // killed, as asked
	}
	return err
}
