// Package kubescenario plays the scenarios that need the CRI-O/kubelet
// node (images/crionode): the write-up's story with a real CRI-O issuing
// CNI DEL after a real reboot and a real kubelet probing a hostNetwork
// pod. The CLI (`pidreuse run|bisect --tier vm`) and the VM suite (e2e/vm)
// both play them through Run, so a bisect judges exactly what CI tests.
package kubescenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// ProbePeriod is the sdn pod's liveness period
// (images/crionode/rootfs/etc/kubernetes/manifests/sdn.yaml).
const ProbePeriod = 5 * time.Second

// LivenessFailed matches kubelet's line for a failed liveness probe of the
// sdn pod (logged from --v=1 up; the image runs kubelet with --v=2).
const LivenessFailed = `Probe failed.*probeType="Liveness".*sdn`

// Options configures a run.
type Options struct {
	// Plugins are the CNI plugins the legacy runtime (the node agent)
	// uses in legacy-symptom, as the node sees them. CRI-O uses its own
	// plugin_dirs (the image's, or the run's layer).
	Plugins runner.Plugins
	// Index numbers runs of legacy-symptom on one node, so each has its
	// own sandbox and holder PID.
	Index int
	// OnStep, if set, is called as each step starts (Ginkgo's By, progress).
	OnStep func(scenario, step string)
	// Progress gets one line while a long wait goes on.
	Progress func(string)
	// PodTimeout bounds each wait for the static pods (default 8 minutes:
	// after a TCG boot CRI-O and kubelet take ~10 s, a loaded CI machine
	// much longer).
	PodTimeout time.Duration
}

// Run plays sc on node, a booted CRI-O/kubelet node, and returns its
// result. A precondition that does not hold (pods never run, the PIDs
// were not taken, the node did not reboot) is an Error: no verdict.
func Run(ctx context.Context, node harness.Node, sc scenarios.Scenario, opts Options) runner.Result {
	if opts.PodTimeout == 0 {
		opts.PodTimeout = 8 * time.Minute
	}
	p := &play{node: node, opts: opts, sc: sc, start: time.Now()}
	p.res = runner.Result{Scenario: sc.Name, Tier: scenarios.TierVM, Node: node.Name(),
		NetnsMode: string(sc.Netns), ExpectedLoUp: sc.ExpectLoUp}
	var err error
	switch {
	case sc.DeleteBy == scenarios.CRIO:
		p.res.PluginVersion = "crio plugin_dirs"
		err = p.crioReboot(ctx)
	case sc.NeedsKubelet:
		p.res.PluginVersion = opts.Plugins.Version
		err = p.legacySymptom(ctx)
	default:
		err = fmt.Errorf("scenario %s does not need the CRI-O/kubelet node: the runner plays it", sc.Name)
	}
	if err != nil && p.res.Error == "" {
		p.res.Error = err.Error()
	}
	p.res.Pass = p.res.Error == "" && p.res.LoUp == sc.ExpectLoUp && len(p.res.FailedChecks()) == 0
	p.res.DurationMs = time.Since(p.start).Milliseconds()
	return p.res
}

type play struct {
	node  harness.Node
	opts  Options
	sc    scenarios.Scenario
	start time.Time
	res   runner.Result
}

func (p *play) step(step, detail string) {
	p.res.Timeline = append(p.res.Timeline, runner.Event{At: time.Now().UTC(), Step: step, Detail: detail})
	if p.opts.OnStep != nil {
		p.opts.OnStep(p.sc.Name, step)
	}
}

func (p *play) check(name string, ok bool, detail string) {
	p.res.Checks = append(p.res.Checks, runner.Check{Name: name, OK: ok, Detail: detail})
}

// waitPods waits for both static pods. A crio or kubelet that keeps
// failing (a build under test that cannot start) ends the wait early: no
// verdict in a minute rather than after the whole timeout.
func (p *play) waitPods(ctx context.Context, when string, timeout time.Duration) ([]kube.Container, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	for {
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		cs, err := kube.WaitRunning(wctx, p.node, nil, crionode.WebPod, crionode.SDNPod)
		wcancel()
		if err == nil {
			return cs, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: CRI-O and kubelet did not run the static pods within %s (see crio.log and kubelet.log in the artifacts): %w", when, timeout, err)
		}
		if why := p.failingUnit(ctx); why != "" {
			return nil, fmt.Errorf("%s: %s", when, why)
		}
		if p.opts.Progress != nil {
			p.opts.Progress(fmt.Sprintf("%s: waiting for pods %s, %s (%s)", p.node.Name(), crionode.WebPod, crionode.SDNPod, time.Since(start).Round(time.Second)))
		}
	}
}

// unitRestartLimit is how many restarts make crio or kubelet "failing":
// both restart on failure every 2 s, and neither restarts at all when
// healthy.
const unitRestartLimit = 3

// failingUnit names crio or kubelet when one keeps failing, with the last
// lines of the journal of the one to blame: crio when it is not active
// (kubelet then fails only for want of it), else the failing one. ""
// when both look alive (or cannot be asked).
func (p *play) failingUnit(ctx context.Context) string {
	out, err := p.shell(ctx, "for u in crio kubelet; do echo $u $(systemctl show -p NRestarts --value $u) $(systemctl show -p ActiveState --value $u); done")
	if err != nil {
		return ""
	}
	type unit struct {
		name, state string
		restarts    int
	}
	var units []unit
	failing := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		u := unit{name: f[0], state: f[2]}
		u.restarts, _ = strconv.Atoi(f[1])
		units = append(units, u)
		failing = failing || u.restarts >= unitRestartLimit || u.state == "failed"
	}
	if !failing || len(units) == 0 {
		return ""
	}
	blame := units[0] // crio
	if blame.state == "active" && len(units) > 1 {
		blame = units[1]
	}
	var states []string
	for _, u := range units {
		states = append(states, fmt.Sprintf("%s.service %s after %d restarts", u.name, u.state, u.restarts))
	}
	tail, _ := p.shell(ctx, "journalctl -b 0 -u "+blame.name+" -n 6 --no-pager -o cat")
	return fmt.Sprintf("%s: is the %s under test a working build for this node? %s.service's journal ends:\n%s",
		strings.Join(states, ", "), blame.name, blame.name, strings.TrimSpace(tail))
}

func (p *play) bootID(ctx context.Context) (string, error) {
	var b agentapi.Boot
	err := harness.Agent(ctx, p.node, &b, "boot")
	return b.BootID, err
}

func (p *play) reboot(ctx context.Context) error {
	p.step("reboot", p.node.Name())
	if err := p.node.Reboot(ctx); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	id, err := p.bootID(ctx)
	if err != nil {
		return err
	}
	p.res.BootIDAfter = id
	p.step("new boot", "boot_id "+id)
	if id == p.res.BootIDBefore {
		return fmt.Errorf("the node did not reboot: boot id %s unchanged", id)
	}
	return nil
}

func (p *play) lo(ctx context.Context) (agentapi.Link, error) {
	var l agentapi.Link
	err := harness.Agent(ctx, p.node, &l, "link", "show", "lo")
	return l, err
}

func (p *play) shell(ctx context.Context, script string) (string, error) {
	res, err := p.node.Exec(ctx, "sh", "-c", script)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("%s: exit %d: %s", script, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return string(res.Stdout), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// crioReboot is crio-kubelet-reboot: CRI-O pins every sandbox netns; the
// node reboots; host processes take every PID the containers had before
// CRI-O starts; CRI-O finds each pin gone, cleans up without entering any
// netns, and kubelet recreates the pods. Host lo must stay UP and the
// hostNetwork pod's liveness probe green.
func (p *play) crioReboot(ctx context.Context) error {
	p.step("static pods Running", crionode.WebPod+", "+crionode.SDNPod)
	if _, err := p.waitPods(ctx, "first boot", p.opts.PodTimeout); err != nil {
		return err
	}
	var err error
	if p.res.BootIDBefore, err = p.bootID(ctx); err != nil {
		return err
	}
	old, err := kube.Sandboxes(ctx, p.node)
	if err != nil {
		return err
	}
	if len(old) < 2 {
		return fmt.Errorf("want the web and sdn sandboxes, crictl shows %d", len(old))
	}
	var paths []string
	pinned := true
	for _, sb := range old {
		paths = append(paths, sb.Metadata.Name+"="+sb.NetnsPath)
		pinned = pinned && (strings.HasPrefix(sb.NetnsPath, "/var/run/netns/") || strings.HasPrefix(sb.NetnsPath, "/run/netns/"))
	}
	p.res.NetnsPath = strings.Join(paths, " ")
	p.step("sandboxes recorded", p.res.NetnsPath)
	p.check("CRI-O pins every sandbox netns under /var/run/netns", pinned, p.res.NetnsPath)
	pids, err := kube.ContainerPIDs(ctx, p.node)
	if err != nil {
		return err
	}
	if len(pids) == 0 {
		return fmt.Errorf("no running container has a PID: nothing for host processes to take")
	}
	words := make([]string, len(pids))
	for i, pid := range pids {
		words[i] = strconv.Itoa(pid)
	}
	p.res.HolderPID = pids[0]
	if _, err := p.shell(ctx, fmt.Sprintf("mkdir -p /var/lib/pidreuse && echo %s > %s && sync", strings.Join(words, " "), crionode.SquatFile)); err != nil {
		return err
	}
	if err := p.reboot(ctx); err != nil {
		return err
	}

	out, err := p.shell(ctx, "cat "+crionode.SquatResult)
	if err != nil {
		return fmt.Errorf("the squat unit left no result (journalctl -u pidreuse-squat): %w", err)
	}
	var squat agentapi.Squat
	if err := json.Unmarshal([]byte(out), &squat); err != nil {
		return fmt.Errorf("squat result %q: %w", out, err)
	}
	if len(squat.Missed) > 0 {
		return fmt.Errorf("host processes could not take every container PID, so the scenario cannot judge CRI-O: %+v", squat.Missed)
	}
	taken := map[int]string{}
	for _, r := range squat.Taken {
		if r.IsHostNetns {
			taken[r.PID] = r.HeldBy
		}
	}
	var took []string
	for _, pid := range pids {
		by, ok := taken[pid]
		if !ok {
			return fmt.Errorf("PID %d was not taken by a host process: %s", pid, out)
		}
		if by == "" {
			by = "nodeagent hold"
		}
		took = append(took, fmt.Sprintf("%d (%s)", pid, by))
	}
	order, err := p.shell(ctx, "systemctl show -p ExecMainExitTimestampMonotonic --value pidreuse-squat.service; systemctl show -p ExecMainStartTimestampMonotonic --value crio.service")
	if err != nil {
		return err
	}
	f := strings.Fields(order)
	if len(f) != 2 {
		return fmt.Errorf("unit timestamps: %q", order)
	}
	squatDone, _ := strconv.ParseInt(f[0], 10, 64)
	crioStart, _ := strconv.ParseInt(f[1], 10, 64)
	if squatDone == 0 || squatDone > crioStart {
		return fmt.Errorf("the PIDs must be taken before CRI-O starts: squat done at %d µs, crio started at %d µs", squatDone, crioStart)
	}
	p.res.PIDReused = true
	p.step("PID reuse", "before crio.service: "+strings.Join(took, ", "))

	p.step("static pods Running again", "kubelet recreates the sandboxes, CRI-O cleans the old ones")
	if _, err := p.waitPods(ctx, "after the reboot", p.opts.PodTimeout); err != nil {
		return err
	}
	journal, err := kube.Journal(ctx, p.node, "crio")
	if err != nil {
		return err
	}
	p.res.DelTarget = string(agentapi.TargetMissing)
	for _, sb := range old {
		// logrus quotes the message, so the journal shows \" for ".
		restore := regexp.MustCompile(`Could not restore sandbox ` + sb.ID + `: failed to Statfs \\?"` + regexp.QuoteMeta(sb.NetnsPath) + `\\?": no such file or directory`)
		line := restore.FindString(journal)
		p.check("CRI-O finds the pin of "+sb.Metadata.Name+" gone", line != "", orNone(line))
		if line != "" && p.res.DelError == "" {
			p.res.DelError = line
		}
		if line == "" {
			p.res.DelTarget = "?"
		}
		if sb.HostNetwork {
			continue // its pin named the host netns: there is no pod network to delete
		}
		del := regexp.MustCompile(`Got pod network &\{Name:` + regexp.QuoteMeta(sb.Metadata.Name) + ` Namespace:\S+ ID:` + sb.ID + ` UID:\S+ NetNS: Networks:`)
		p.check("CRI-O runs CNI DEL for the old "+sb.Metadata.Name+" with an empty netns", del.MatchString(journal) &&
			strings.Contains(journal, "Deleting pod "+sb.Metadata.Namespace+"_"+sb.Metadata.Name+" from CNI network"), "")
	}
	p.step("CNI DEL by CRI-O", p.res.DelError)

	lo, err := p.lo(ctx)
	if err != nil {
		return err
	}
	cs, err := kube.Containers(ctx, p.node)
	if err != nil {
		return err
	}
	before := kube.Restarts(cs, crionode.SDNPod)
	p.step("liveness", fmt.Sprintf("watching the hostNetwork sdn pod for three probe periods (%s)", 3*ProbePeriod))
	if err := sleep(ctx, 3*ProbePeriod+2*time.Second); err != nil {
		return err
	}
	if cs, err = kube.Containers(ctx, p.node); err != nil {
		return err
	}
	after := kube.Restarts(cs, crionode.SDNPod)
	p.check("the sdn pod keeps running, not restarted", kube.Running(cs, crionode.SDNPod, crionode.WebPod) && after == before,
		fmt.Sprintf("restarts %d → %d", before, after))
	failures, err := kube.JournalGrep(ctx, p.node, "kubelet", LivenessFailed)
	if err != nil {
		return err
	}
	p.check("kubelet sees no failed liveness probe", strings.TrimSpace(failures) == "", lastLines(failures, 5))
	lo2, err := p.lo(ctx)
	if err != nil {
		return err
	}
	p.res.LoUp = lo.Up && lo2.Up
	p.step("host lo "+upDown(p.res.LoUp), lo2.Flags)
	return nil
}

// legacySymptom is legacy-symptom: next to CRI-O's pods, a legacy runtime
// (the node agent) records an ephemeral netns path; after the reboot a
// host process takes the PID and the legacy DEL sets the host's lo down.
// The runner plays that timeline, as on every node; this adds what a user
// of a Kubernetes node sees: kubelet fails the hostNetwork pod's liveness
// probe and restarts it while lo is down, and stops once lo is up again.
func (p *play) legacySymptom(ctx context.Context) error {
	if p.opts.Plugins.Dir == "" {
		return fmt.Errorf("legacy-symptom: no CNI plugin dir for the legacy runtime")
	}
	p.step("static pods Running", crionode.WebPod+", "+crionode.SDNPod)
	if _, err := p.waitPods(ctx, "first boot", p.opts.PodTimeout); err != nil {
		return err
	}
	var before int
	r := runner.New(p.node, runner.Options{
		Tier: scenarios.TierVM, OnStep: p.opts.OnStep, FirstTrial: p.opts.Index,
		WhileLoDown: func(ctx context.Context) error {
			p.step("kubelet liveness", "waiting for kubelet to fail the sdn pod's probe and restart it")
			restarted, failures, err := p.waitLivenessRestart(ctx, before, 4*time.Minute)
			if err != nil {
				return err
			}
			p.check("kubelet fails the hostNetwork pod's liveness probe and restarts it", restarted, lastLines(failures, 3))
			return nil
		},
	})
	t, err := r.PrepareWith(ctx, p.sc, p.opts.Plugins)
	if err == nil {
		err = r.Reboot(ctx)
	}
	if err == nil {
		p.step("static pods Running again", "")
		var cs []kube.Container
		if cs, err = p.waitPods(ctx, "after the reboot", p.opts.PodTimeout); err == nil {
			before = kube.Restarts(cs, crionode.SDNPod)
		}
	}
	if err != nil {
		return p.adopt(t.Result(), err)
	}
	if err := p.adopt(r.Finish(ctx, t), nil); err != nil || p.res.LoUp {
		return err // lo UP: no symptom to show; the verdict says whether one was expected
	}

	cs, err := p.waitPods(ctx, "after lo came back", 4*time.Minute)
	if err != nil {
		return err
	}
	settled := kube.Restarts(cs, crionode.SDNPod)
	if err := sleep(ctx, 3*ProbePeriod+2*time.Second); err != nil {
		return err
	}
	if cs, err = kube.Containers(ctx, p.node); err != nil {
		return err
	}
	now := kube.Restarts(cs, crionode.SDNPod)
	p.check("kubelet stops restarting the sdn pod once lo is back", kube.Running(cs, crionode.SDNPod) && now == settled,
		fmt.Sprintf("restarts %d → %d", settled, now))
	return nil
}

// adopt takes the runner's result as the scenario's, keeping the steps
// and checks this play added, in time order; err, or the runner's own
// error, becomes the scenario's.
func (p *play) adopt(res runner.Result, err error) error {
	timeline := append(append([]runner.Event{}, p.res.Timeline...), res.Timeline...)
	sort.SliceStable(timeline, func(i, j int) bool { return timeline[i].At.Before(timeline[j].At) })
	res.Timeline, res.Checks, res.Pass = timeline, p.res.Checks, false
	p.res = res
	if err != nil {
		return err
	}
	if res.Error != "" {
		return errors.New(res.Error)
	}
	return nil
}

// waitLivenessRestart polls until kubelet has logged a failed liveness
// probe and restarted the sdn container, or timeout passes (not an error:
// the check records it).
func (p *play) waitLivenessRestart(ctx context.Context, before int, timeout time.Duration) (bool, string, error) {
	deadline := time.Now().Add(timeout)
	for {
		failures, err := kube.JournalGrep(ctx, p.node, "kubelet", LivenessFailed)
		if err != nil {
			return false, "", err
		}
		cs, err := kube.Containers(ctx, p.node)
		if err != nil {
			return false, "", err
		}
		if strings.TrimSpace(failures) != "" && kube.Restarts(cs, crionode.SDNPod) > before {
			return true, failures, nil
		}
		if time.Now().After(deadline) {
			return false, failures, nil
		}
		if err := sleep(ctx, 5*time.Second); err != nil {
			return false, "", err
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func upDown(up bool) string {
	if up {
		return "UP"
	}
	return "DOWN"
}

// lastLines keeps the last n non-empty lines of s.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
