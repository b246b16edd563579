// Package vm is the VM node: a libvirt domain booted from the node image's
// qcow2 base through a per-VM overlay, reached over SSH with the image's
// pinned host key, and rebooted for real.
package vm

import (
	"context"
	"errors"
	"fmt"
	"github.com/pidreuse/pidreuse/harness/deadline"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/harness/ssh"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/images/layer"
	"github.com/pidreuse/pidreuse/internal/flock"
	"github.com/pidreuse/pidreuse/internal/shell"
	"github.com/pidreuse/pidreuse/node/agentapi"
)

// Reboot modes.
const (
	// RebootDestroyStart is the guest's own `systemctl reboot` with
	// on_reboot=destroy, then a fresh start of the same domain: a full
	// guest shutdown and a fresh boot from the same disk, ~2x faster under
	// TCG than a reset in place.
	RebootDestroyStart = "destroy-start"
	// RebootReset is the guest's own reboot with on_reboot=restart: QEMU
	// resets the machine in place.
	RebootReset = "reset"
)

// Options says how to make a VM node.
type Options struct {
	// Name is the domain name; it carries the run ID.
	Name string
	// Dir holds the overlay disk and the console log.
	Dir   string
	Image *images.Image
	// URI is the libvirt host (libvirt.ParseURI; default qemu:///system).
	// On a remote one the image goes into its storage pool once and the
	// guest's SSH is reached through the host.
	URI string
	// Socket is libvirtd's socket for a local URI (default
	// /var/run/libvirt/libvirt-sock).
	Socket     string
	VCPUs      int
	MemoryMiB  int
	RebootMode string
	// BootTimeout bounds each boot to SSH (default 6 minutes: TCG is slow
	// and a loaded CI machine slower).
	BootTimeout time.Duration
	// Cmdline replaces the image's kernel command line (tests use it to
	// make a boot fail).
	Cmdline string
	// Layer holds the run's own binaries, laid over the image at boot (see
	// images/layer); Start checks that the guest runs them.
	Layer layer.Layer
	// Artifacts are shell scripts, by output file name, whose output the
	// image's owner wants among the node's artifacts (crio and kubelet
	// logs for the CRI-O node: images/crionode.Profile.Artifacts).
	Artifacts map[string]string
	// FailureConsole, if set, is where a failed Start leaves the serial
	// console before it removes the node and its Dir: a boot that never
	// answered is read there (the error names the file).
	FailureConsole string
	// Keep leaves the domain running and Dir in place at Close.
	Keep bool
	// MayKeep starts the domain without libvirt's autodestroy because
	// KeepRunning may be called later (--keep=on-failure). Every other
	// domain is started with it, so it dies with this process's libvirt
	// connection, SIGKILL included; libvirt cannot lift the flag from a
	// running domain, so a kept one must go without it from the start.
	// Keep implies it.
	MayKeep bool
	// Progress receives one line per long step.
	Progress func(string)
}

// Timing records when the node's domain started and how long its boots
// took: the phases of a scenario's result (runner.Phases) and benchmarks.
type Timing struct {
	// Started is when the domain was started the first time; SSHUp when
	// the first boot answered over SSH.
	Started, SSHUp time.Time
	Boot           time.Duration
	Reboot         time.Duration
}

// Node is a VM node.
type Node struct {
	opts    Options
	lv      *libvirt.Client
	sshCfg  ssh.Config
	mu      sync.Mutex
	ssh     *ssh.Client
	served  servedExec
	bootID  string
	kvm     bool
	port    *libvirt.PortLease
	spec    libvirt.DomainSpec
	dirLock *flock.Lock
	overlay string
	console string
	// remote is set when the domain runs on a remote libvirt host.
	remote  *remoteFiles
	defined bool
	closed  bool
	Timing  Timing
}

var _ harness.Node = (*Node)(nil)

func (o *Options) defaults() {
	o.MayKeep = o.MayKeep || o.Keep
	if o.VCPUs == 0 {
		o.VCPUs = 2
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 2048
	}
	if o.RebootMode == "" {
		o.RebootMode = RebootDestroyStart
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 6 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
}

// Start defines and boots the VM and waits until its node agent answers
// over SSH. On failure nothing is left behind (unless Keep).
func Start(ctx context.Context, opts Options) (_ *Node, err error) {
	opts.defaults()
	if opts.Image == nil {
		return nil, errors.New("vm: no image: run `pidreuse image build`")
	}
	if opts.RebootMode != RebootDestroyStart && opts.RebootMode != RebootReset {
		return nil, fmt.Errorf("vm: reboot mode %q: use %s or %s", opts.RebootMode, RebootDestroyStart, RebootReset)
	}
	n := &Node{opts: opts}
	defer func() {
		if err != nil {
			err = n.keepFailedConsole(ctx, err)
			n.Close(context.Background())
		}
	}()
	if n.lv, err = libvirt.ConnectURI(ctx, opts.URI, opts.Socket); err != nil {
		return nil, err
	}
	remote := n.lv.Target().Remote()
	if opts.Dir, err = filepath.Abs(opts.Dir); err != nil {
		return nil, fmt.Errorf("vm %s: %w", opts.Name, err)
	}
	n.opts.Dir = opts.Dir
	// Held until Close: `pidreuse clean` leaves the dir, and the domain
	// whose metadata names it, alone while this process lives.
	if n.dirLock, err = lockDir(opts.Dir); err != nil {
		return nil, fmt.Errorf("vm %s: %w", opts.Name, err)
	}
	if !remote {
		if err := checkTraversable(opts.Dir); err != nil {
			return nil, fmt.Errorf("vm %s: %w", opts.Name, err)
		}
	}
	signer, err := ssh.LoadSigner(opts.Image.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("vm %s: %w", opts.Name, err)
	}
	hostKey, err := ssh.ParseAuthorizedKey(opts.Image.Manifest.HostPublicKey)
	if err != nil {
		return nil, fmt.Errorf("vm %s: image host key: %w", opts.Name, err)
	}
	var why string
	n.kvm, why = libvirt.KVMUsable()
	if !n.kvm {
		opts.Progress("no KVM, running under TCG (slow): " + why)
	}
	n.sshCfg = ssh.Config{User: "root", Signer: signer, HostKey: hostKey}
	if remote {
		// The forward listens on the libvirt host's 127.0.0.1.
		n.sshCfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return n.lv.DialHost(ctx, n.spec.SSHPort)
		}
		opts.Progress(fmt.Sprintf("%s: libvirt host %s", opts.Name, n.lv.Target()))
	}
	n.console = filepath.Join(opts.Dir, "console.log")
	if !remote {
		n.overlay = filepath.Join(opts.Dir, "disk.qcow2")
		if err := libvirt.CreateOverlay(ctx, opts.Image.BaseDisk, n.overlay); err != nil {
			return nil, fmt.Errorf("vm %s: %w", opts.Name, err)
		}
	}
	onReboot := libvirt.OnRebootDestroy
	if opts.RebootMode == RebootReset {
		onReboot = libvirt.OnRebootRestart
	}
	cmdline := opts.Image.Manifest.KernelCmdline
	if opts.Cmdline != "" {
		cmdline = opts.Cmdline
	}
	if !n.kvm {
		// Under TCG on a busy host the kernel's early check that the
		// timer interrupt arrives through the IO-APIC can time out, and
		// the guest panics ("IO-APIC + timer doesn't work!"; seen here
		// with four TCG guests on two cores). The check proves nothing
		// about an emulated machine; cloud images turn it off the same way.
		cmdline += " no_timer_check"
	}
	var layerDisks []libvirt.ReadOnlyDisk
	if !opts.Layer.Empty() {
		opts.Progress(fmt.Sprintf("%s: laying the run's own files over the image: %s", opts.Name, layerNames(opts.Layer)))
		disk, err := layer.Build(ctx, opts.Layer, opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("vm %s: %w", opts.Name, err)
		}
		layerDisks = append(layerDisks, libvirt.ReadOnlyDisk{Path: disk, Serial: layer.Serial})
		cmdline += " " + layer.CmdlineFlag
	}
	n.spec = libvirt.DomainSpec{
		Name: opts.Name, VCPUs: opts.VCPUs, MemoryMiB: opts.MemoryMiB, KVM: n.kvm,
		Kernel: opts.Image.Kernel, Initrd: opts.Image.Initrd, Cmdline: cmdline,
		Disk: n.overlay, ConsoleLog: n.console, OnReboot: onReboot,
		ReadOnlyDisks: layerDisks, OwnerDir: opts.Dir,
	}
	if remote {
		if err := n.prepareRemote(ctx); err != nil {
			return nil, fmt.Errorf("vm %s: %w", opts.Name, err)
		}
	}
	start := time.Now()
	console := consoleSize(n.console)
	if err := n.start(ctx); err != nil {
		return nil, fmt.Errorf("vm %s: %w", opts.Name, err)
	}
	if err := n.waitBoot(ctx, "", console); err != nil {
		return nil, err
	}
	n.Timing.Started, n.Timing.SSHUp = start, time.Now()
	n.Timing.Boot = n.Timing.SSHUp.Sub(start)
	opts.Progress(fmt.Sprintf("%s booted to SSH in %s (%s)", opts.Name, n.Timing.Boot.Round(100*time.Millisecond), n.accel()))
	if err := n.checkLayer(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *Node) accel() string {
	if n.kvm {
		return "KVM"
	}
	return "TCG"
}

// sshLineLimit bounds the wait for the console's sshd line; past it (an
// image whose console shows no unit status) the dial's retries go on
// alone.
const sshLineLimit = 2 * time.Minute

// waitBoot waits for SSH and for a boot ID other than old. On a local
// libvirt it dials once the serial console, past console (its size when
// the boot began), says sshd started (after the network is online: the
// image orders it so).
func (n *Node) waitBoot(ctx context.Context, old string, console int64) error {
	ctx, cancel := context.WithTimeout(ctx, deadline.Scaled(ctx, n.opts.BootTimeout))
	defer cancel()
	started := time.Now()
	last := time.Now()
	n.opts.Progress(fmt.Sprintf("%s: waiting for SSH", n.opts.Name))
	// A remote host's console is a volume to download: not polled.
	if n.remote == nil {
		switch {
		case waitConsole(ctx, n.console, console, deadline.Scaled(ctx, sshLineLimit), sshStarted):
			n.opts.Progress(fmt.Sprintf("%s: the console says sshd started (%s)", n.opts.Name, time.Since(started).Round(100*time.Millisecond)))
		case ctx.Err() == nil:
			n.opts.Progress(fmt.Sprintf("%s: the console did not say sshd started within %s: dialing anyway", n.opts.Name, deadline.Scaled(ctx, sshLineLimit)))
		}
	}
	for {
		c, err := ssh.WaitReady(ctx, n.sshCfg, func(attempt int, err error) {
			if time.Since(last) > 15*time.Second {
				last = time.Now()
				n.opts.Progress(fmt.Sprintf("%s: waiting for SSH (%s)", n.opts.Name, time.Since(started).Round(time.Second)))
			}
		})
		if err != nil {
			return fmt.Errorf("boot %s: no SSH within %s: %w\nlast lines of the serial console (%s):\n%s",
				n.opts.Name, n.opts.BootTimeout, err, n.console, n.consoleTail(15))
		}
		n.mu.Lock()
		n.ssh = c
		n.mu.Unlock()
		var b agentapi.Boot
		if err := harness.Agent(ctx, n, &b, "boot"); err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				// Interrupted: say so, with ctx's error in the chain
				// (Start keeps no console then), not a boot timeout.
				return fmt.Errorf("boot %s: %w (%v)", n.opts.Name, ctx.Err(), err)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("boot %s: SSH answered, the node agent did not within %s: %w\nlast lines of the serial console (%s):\n%s",
					n.opts.Name, n.opts.BootTimeout, err, n.console, n.consoleTail(15))
			}
			// sshd of the dying boot may still answer during shutdown.
			time.Sleep(time.Second)
			continue
		}
		if b.BootID != old {
			n.bootID = b.BootID
			return nil
		}
		time.Sleep(time.Second)
	}
}

// Name implements harness.Node.
func (n *Node) Name() string { return n.opts.Name }

// BootID is the boot ID the node answered with last.
func (n *Node) BootID() string { return n.bootID }

// SSHCommand tells a person how to reach the node.
func (n *Node) SSHCommand() string {
	if t := n.lv.Target(); t.Remote() && t.Transport == libvirt.TransportSSH {
		jump := t.User + "@" + t.Host
		if t.Port != "" {
			jump += ":" + t.Port
		}
		return fmt.Sprintf("ssh -J %s -i %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p %d root@127.0.0.1    # or: virsh -c '%s' console %s",
			jump, n.opts.Image.ClientKey, n.spec.SSHPort, t.URI, n.opts.Name)
	}
	return fmt.Sprintf("ssh -i %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p %d root@127.0.0.1    # or: virsh console %s",
		n.opts.Image.ClientKey, n.spec.SSHPort, n.opts.Name)
}

// Console is the path of the serial console log.
func (n *Node) Console() string { return n.console }

// Exec implements harness.Node over SSH.
func (n *Node) Exec(ctx context.Context, argv ...string) (harness.ExecResult, error) {
	n.mu.Lock()
	c := n.ssh
	n.mu.Unlock()
	if c == nil {
		return harness.ExecResult{}, fmt.Errorf("exec on %s: not connected", n.opts.Name)
	}
	if len(argv) > 0 && argv[0] == "nodeagent" {
		argv = append([]string{images.GuestAgentPath}, argv[1:]...)
	}
	if res, ok, err := n.served.exec(ctx, c, argv); ok {
		return res, err
	}
	stdout, stderr, code, err := c.Run(ctx, shell.Join(argv), nil)
	if err != nil {
		return harness.ExecResult{}, err
	}
	return harness.ExecResult{Stdout: stdout, Stderr: stderr, ExitCode: code}, nil
}

// Reboot implements harness.Node: the guest reboots itself, and the node
// answers again with a new boot ID.
func (n *Node) Reboot(ctx context.Context) error {
	old := n.bootID
	start := time.Now()
	console := consoleSize(n.console)
	n.opts.Progress(fmt.Sprintf("%s: rebooting (%s)", n.opts.Name, n.opts.RebootMode))
	// The session may die with the guest's sshd before it reports back.
	_ = deadline.Run(ctx, "systemctl reboot on "+n.opts.Name, deadline.ShellStep, func(ctx context.Context) error {
		_, err := n.Exec(ctx, "systemctl", "reboot")
		return err
	})
	n.dropSSH()
	if n.opts.RebootMode == RebootDestroyStart {
		wctx, cancel := context.WithTimeout(ctx, deadline.Scaled(ctx, n.opts.BootTimeout))
		reason, err := n.lv.WaitStopped(wctx, n.opts.Name)
		cancel()
		if err != nil {
			return fmt.Errorf("reboot %s: the guest did not shut down: %w\nlast lines of the serial console:\n%s", n.opts.Name, err, n.consoleTail(15))
		}
		// libvirt reports a plain shutdown: we asked for the reboot.
		if reason != "shutdown" {
			return fmt.Errorf("reboot %s: the domain stopped (%s), not by the guest's reboot", n.opts.Name, reason)
		}
		// Started again on the same connection, with autodestroy again:
		// a harness killed after the reboot leaves no running domain
		// either.
		if err := n.start(ctx); err != nil {
			return fmt.Errorf("reboot %s: %w", n.opts.Name, err)
		}
	}
	if err := n.waitBoot(ctx, old, console); err != nil {
		return fmt.Errorf("reboot %s: %w", n.opts.Name, err)
	}
	n.Timing.Reboot = time.Since(start)
	n.opts.Progress(fmt.Sprintf("%s rebooted to SSH in %s, boot_id %s", n.opts.Name, n.Timing.Reboot.Round(100*time.Millisecond), n.bootID))
	return nil
}

func (n *Node) dropSSH() {
	n.mu.Lock()
	if n.ssh != nil {
		n.ssh.Close()
		n.ssh = nil
	}
	n.mu.Unlock()
	// After the connection: closing it ends a call still on the stream,
	// which holds the stream's lock until then.
	n.served.drop()
}

// Close implements harness.Node: destroy and undefine the domain, remove
// the overlay. With Keep it leaves all of it and says how to get in.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.dropSSH()
	// Last, after the dir is gone: clean must not find it unlocked
	// while it is still being removed.
	defer n.dirLock.Release()
	defer n.port.Release()
	if n.lv == nil {
		return nil
	}
	defer n.lv.Close()
	if n.opts.Keep && n.defined {
		if !n.opts.MayKeep {
			n.opts.Progress(fmt.Sprintf("kept %s's disk and dir, but not the domain: it was started with autodestroy and stops when this process exits (start the node with MayKeep, or run with --keep)", n.opts.Name))
			return nil
		}
		n.opts.Progress(fmt.Sprintf("kept %s running%s: %s", n.opts.Name, n.keepRemoteNote(), n.SSHCommand()))
		return nil
	}
	var errs []error
	if n.defined {
		errs = append(errs, n.lv.Destroy(ctx, n.opts.Name), n.lv.Undefine(ctx, n.opts.Name))
	}
	if n.overlay != "" {
		errs = append(errs, libvirt.RemoveOverlay(n.overlay))
	}
	errs = append(errs, n.removeRemote(ctx))
	// Only a dir this node locked is its to remove: a failed lock means
	// it belongs to another live run.
	if !n.opts.Keep && n.dirLock != nil {
		errs = append(errs, os.RemoveAll(n.opts.Dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s: %w", n.opts.Name, err)
	}
	return nil
}

// KeepRunning makes Close leave the domain, its disk and its dir in place,
// for debugging.
func (n *Node) KeepRunning() { n.opts.Keep = true }

// checkTraversable fails early, with the fix, where libvirt would fail at
// start: QEMU runs as libvirt-qemu and must reach the overlay and console
// log in dir, so no parent may be closed to others (a 0700 temp dir is).
func checkTraversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by others (mode %v): QEMU runs as %s and could not open the VM's disk; use a work dir under /tmp or /var/tmp", d, st.Mode().Perm(), libvirt.QEMUUser)
		}
		if d == "/" {
			return nil
		}
	}
}
