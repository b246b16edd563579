package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/internal/flock"
)

// portAttempts bounds how often a start picks a new SSH port because
// another process took the last one between the pick and QEMU's bind.
const portAttempts = 3

// start (re)defines the domain and starts it, with autodestroy unless the
// node may be kept. It is the first boot and the second half of a
// destroy+start reboot alike: the same connection, the same flag. When
// QEMU cannot bind the SSH forward (someone took the port, e.g. while the
// domain was shut off for the reboot), it leases another port, redefines
// and starts again.
func (n *Node) start(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		if n.port == nil {
			lease, err := n.lv.ReservePort()
			if err != nil {
				return err
			}
			n.port = lease
			n.spec.SSHPort = lease.Port
			n.sshCfg.Addr = fmt.Sprintf("127.0.0.1:%d", lease.Port)
			xml, err := libvirt.DomainXML(n.spec)
			if err != nil {
				return err
			}
			if err := n.lv.Define(ctx, xml); err != nil {
				return err
			}
			n.defined = true
		}
		err := n.lv.Start(ctx, n.opts.Name, !n.opts.MayKeep)
		if err == nil || !errors.Is(err, libvirt.ErrPortTaken) || attempt == portAttempts {
			return err
		}
		n.opts.Progress(fmt.Sprintf("%s: port %d was taken by another process; picking another", n.opts.Name, n.port.Port))
		n.port.Release()
		n.port = nil
	}
}

// lockDir locks the node's dir for the node's life, creating it locked
// when it does not exist yet (an e2e node's dir under $TMPDIR, which
// clean must never see unlocked).
func lockDir(dir string) (*flock.Lock, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		l, err := flock.CreateDir(dir, 0o755)
		if !errors.Is(err, os.ErrExist) {
			return l, err
		}
	}
	return flock.LockDir(dir, 0o755)
}
