package odds

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/internal/crioguest"
)

// Node is what the run must know of the node's profile (images/crionode,
// build side, which this host-side package does not import).
type Node struct {
	// Profile names it (crio-1.17, crio-1.34).
	Profile string
	// Pods are every static pod's container name, the run's extra pods
	// included: all must run before a cycle starts.
	Pods []string
	// ExtraPods is how many of them the run added.
	ExtraPods int
	// PIDMax is the kernel.pid_max the run asked for (0: the guest's own).
	PIDMax int
	// Cmdline is the kernel command line the VM was booted with.
	Cmdline string
}

// Options configures a run.
type Options struct {
	Node    Node
	Reboots int
	// Stop, when closed, ends the run after the current cycle (the first
	// Ctrl-C); cancelling the context ends it at once.
	Stop <-chan struct{}
	// Progress gets one line per step; OnCycle the cycle just measured and
	// the rate so far.
	Progress func(string)
	OnCycle  func(c Cycle, soFar Rate)
	// OnReady is called once the node is prepared, as the first cycle
	// starts: from then on a stop request waits for the cycle to end.
	OnReady func()
	// PodTimeout bounds each wait for the static pods (default 8 minutes).
	PodTimeout time.Duration
}

// Report is the run's result.
type Report struct {
	Node    Node   `json:"node"`
	Runtime string `json:"runtime"`
	// Pinning is CRI-O's own configuration (`crio config`), and DelPath
	// what it makes DEL name after a reboot: the path this run measured.
	Pinning  string `json:"pinning"`
	DelPath  string `json:"delPath"`
	DelPaths string `json:"delPathsSeen"`
	// PIDMax is the guest's pid_max as read in the node.
	PIDMax  int `json:"pidMax"`
	Reboots int `json:"rebootsAsked"`
	// SettleReboots are reboots before the first cycle that do not count
	// (pid_max took only from the second boot on).
	SettleReboots int     `json:"settleReboots,omitempty"`
	Cycles        []Cycle `json:"cycles"`
	// Rate is cycles with a hit over cycles measured; Reuse cycles in
	// which some old PID was held at its DEL; PerSandbox old sandboxes
	// whose DEL entered the host over old sandboxes.
	Rate       Rate      `json:"rate"`
	Reuse      Rate      `json:"reuse"`
	PerSandbox Rate      `json:"perSandbox"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	// Stopped says why the run ended before Reboots cycles ("" when it did
	// not).
	Stopped string `json:"stopped,omitempty"`
	// RawRecords are the recorder's lines of every boot, as the node wrote
	// them (RecordsFile in the report dir): what the cycles were judged
	// from, kept so they can be judged again.
	RawRecords []byte `json:"-"`
}

type run struct {
	node harness.Node
	opts Options
	boot string
}

func (r *run) step(index int, msg string) {
	if r.opts.Progress != nil {
		r.opts.Progress(fmt.Sprintf("odds: cycle %d/%d: %s", index, r.opts.Reboots, msg))
	}
}

func (r *run) say(msg string) {
	if r.opts.Progress != nil {
		r.opts.Progress("odds: " + msg)
	}
}

// Run measures opts.Reboots cycles on node, a booted CRI-O/kubelet VM with
// the odds layer (images/crionode.OddsFiles). It always returns the report
// of the cycles done; the error says why the run ended early (a cycle
// that could not be measured, the context cancelled).
func Run(ctx context.Context, node harness.Node, opts Options) (Report, error) {
	if opts.PodTimeout == 0 {
		opts.PodTimeout = 8 * time.Minute
	}
	r := &run{node: node, opts: opts}
	rep := Report{Node: opts.Node, Reboots: opts.Reboots, Started: time.Now().UTC()}
	err := r.prepare(ctx, &rep)
	if err == nil && opts.OnReady != nil {
		opts.OnReady()
	}
	for i := 1; err == nil && i <= opts.Reboots; i++ {
		if stopped(opts.Stop) {
			rep.Stopped = fmt.Sprintf("stopped by the user after cycle %d of %d", i-1, opts.Reboots)
			break
		}
		var c Cycle
		c, err = r.cycle(ctx, i)
		if err != nil {
			c.Error = err.Error()
			rep.Stopped = fmt.Sprintf("cycle %d could not be measured: %v", i, err)
			if ctx.Err() != nil {
				rep.Stopped = fmt.Sprintf("interrupted in cycle %d", i)
			}
			break
		}
		rep.Cycles = append(rep.Cycles, c)
		rep.summarize()
		if opts.OnCycle != nil {
			opts.OnCycle(c, rep.Rate)
		}
	}
	if err != nil && rep.Stopped == "" {
		rep.Stopped = "the node could not be prepared: " + err.Error()
	}
	rep.summarize()
	// Even after a Ctrl-C: the node is still up, and the lines are small.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if out, rerr := harness.Shell(rctx, node, "cat "+crioguest.OddsRecordFile); rerr == nil {
		rep.RawRecords = []byte(out)
	}
	rep.Finished = time.Now().UTC()
	return rep, err
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// summarize computes the rates over the cycles measured.
func (rep *Report) summarize() {
	hits, reuse, sbHits, sbs := 0, 0, 0, 0
	for _, c := range rep.Cycles {
		if c.Hit {
			hits++
		}
		if c.Held > 0 {
			reuse++
		}
		for _, o := range c.Sandboxes {
			sbs++
			if o.Hit {
				sbHits++
			}
		}
	}
	rep.Rate, rep.Reuse, rep.PerSandbox = NewRate(hits, len(rep.Cycles)), NewRate(reuse, len(rep.Cycles)), NewRate(sbHits, sbs)
	rep.DelPaths = DelPaths(rep.Cycles)
}

// prepare waits for the first boot's pods and reads what the run measures
// against: CRI-O's version and pinning, pid_max (a settle reboot when the
// asked pid_max took only from the second boot), the PID floor left
// alone, and the recorder in CRI-O's network list (an ADD recorded per
// pod-network sandbox).
func (r *run) prepare(ctx context.Context, rep *Report) error {
	r.say("first boot: waiting for the static pods " + strings.Join(r.opts.Node.Pods, ", "))
	if err := waitPods(ctx, r.node, r.opts.Node.Pods, r.opts.PodTimeout, r.opts.Progress); err != nil {
		return err
	}
	var err error
	if r.boot, err = harness.BootID(ctx, r.node); err != nil {
		return err
	}
	v, err := kube.Runtime(ctx, r.node)
	if err != nil {
		return err
	}
	rep.Runtime = fmt.Sprintf("%s %s (CRI %s)", v.RuntimeName, v.RuntimeVersion, v.APIVersion)
	cfg, err := harness.Shell(ctx, r.node, "crio config 2>/dev/null")
	if err != nil {
		return fmt.Errorf("crio config in the node: %w", err)
	}
	pin, err := kube.ParsePinning(cfg)
	if err != nil {
		return err
	}
	rep.Pinning, rep.DelPath = pin.String(), delPath(pin)
	r.say(fmt.Sprintf("%s: %s: DEL after a reboot names %s", rep.Runtime, rep.Pinning, rep.DelPath))

	if rep.PIDMax, err = r.pidMax(ctx); err != nil {
		return err
	}
	if want := r.opts.Node.PIDMax; want != 0 && rep.PIDMax != want {
		// The layer writes /etc/sysctl.d/50-pid-max.conf at each boot,
		// racing systemd-sysctl on the first: from the second boot on the
		// file is on disk before it runs.
		r.say(fmt.Sprintf("pid_max is %d, not %d, on the first boot: one settle reboot (not counted)", rep.PIDMax, want))
		if err := r.node.Reboot(ctx); err != nil {
			return fmt.Errorf("settle reboot: %w", err)
		}
		rep.SettleReboots++
		if r.boot, err = harness.BootID(ctx, r.node); err != nil {
			return err
		}
		if err := waitPods(ctx, r.node, r.opts.Node.Pods, r.opts.PodTimeout, r.opts.Progress); err != nil {
			return err
		}
		if rep.PIDMax, err = r.pidMax(ctx); err != nil {
			return err
		}
		if rep.PIDMax != want {
			return fmt.Errorf("the guest's pid_max is %d after a settle reboot, not the %d asked (kernel command line %q)", rep.PIDMax, want, r.opts.Node.Cmdline)
		}
	}
	floor, err := harness.Shell(ctx, r.node, "systemctl show -p ConditionResult --value "+crioguest.PIDFloorUnit)
	if err != nil {
		return err
	}
	if strings.TrimSpace(floor) == "yes" {
		return fmt.Errorf("%s ran: the pods got PIDs from its floor, not the node's own; the odds would mean nothing (is %s in the run's layer?)", crioguest.PIDFloorUnit, crioguest.PIDFloorDone)
	}
	recs, _, err := records(ctx, r.node, r.boot)
	if err != nil {
		return err
	}
	if Adds(recs) == 0 {
		return fmt.Errorf("the recording CNI plugin saw no ADD in this boot: is %s last in %s, and in %s?", crioguest.CNIRecordPlugin, crioguest.PodNetworkConfig, crioguest.CNIPluginDir)
	}
	r.say(fmt.Sprintf("pid_max %d; the recorder saw %d ADDs in this boot", rep.PIDMax, Adds(recs)))
	return nil
}

func (r *run) pidMax(ctx context.Context) (int, error) {
	out, err := harness.Shell(ctx, r.node, "cat /proc/sys/kernel/pid_max")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return 0, fmt.Errorf("pid_max %q: %w", out, err)
	}
	return n, nil
}

// delPath says what CRI-O's configuration makes DEL name after a reboot.
// A CRI-O without a pinning switch always pins (kube.Pinning says so in
// words, but ParsePinning leaves Pins false for it: read the switch too).
func delPath(p kube.Pinning) string {
	if p.Pins || p.Switch == "" {
		return "a pinned /var/run/netns/<id>, gone after the reboot: DEL gets an empty netns or the dead pin, never a PID, so zero hits by construction"
	}
	return "/proc/<old infra pid>/ns/net, checked to exist at DEL time: empty when the PID is free, whoever holds it when not"
}
