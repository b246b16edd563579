package kubescenario

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// stopRace plays stop-race: the bug without a reboot. kubelet stops the
// web pod (its manifest leaves the static pod dir) and calls the
// runtime's StopPodSandbox; the runtime reads the sandbox's netns path and
// runs CNI DEL, whose first plugin the CNI gate holds at its start
// (crioguest.GateScript): the window in which, on a busy node, the pause
// can die and a host process can take its PID, made deterministic. The
// harness kills the pause, has a host process take its PID, looks at what
// DEL's path names then, and opens the gate. The path is the runtime's
// own: the gate records what the runtime handed the plugin.
//
// Read in the runtimes' sources: cri-dockerd v0.4.3's StopPodSandbox
// (core/sandbox_stop.go) calls TearDownPod (network/cni/cni.go), which
// takes the path from GetNetNS → docker inspect → getNetworkNamespace
// (core/helpers_linux.go): /proc/<State.Pid>/ns/net, read before the
// plugins run. CRI-O 1.34 hands DEL the sandbox's pin under
// /var/run/netns, which lives until CRI-O removes it after DEL.
func (p *play) stopRace(ctx context.Context) error {
	node := p.opts.Node
	var config func() (string, error)
	if node.CRIO() {
		config = p.background(ctx, "crio config 2>/dev/null")
	}
	if err := p.podsRunning(ctx, true); err != nil {
		return err
	}
	procPath, err := p.learnStopRuntime(ctx, config)
	if err != nil {
		return err
	}
	p.expect = p.sc.StopRaceChecks(procPath)

	var sb kube.Sandbox
	var victim victim
	if err := p.retry(ctx, 2*time.Minute, "waiting for the web pod's ready sandbox", func() error {
		var err error
		sb, victim, err = p.stopVictim(ctx)
		return err
	}); err != nil {
		return err
	}
	plugin := node.gatePlugin()
	if err := p.armGate(ctx, plugin, sb.ID); err != nil {
		return err
	}
	p.step("CNI gate armed", fmt.Sprintf("%s's first DEL of sandbox %s waits at its start until the harness opens the gate (at most %d s): the race's window, made deterministic",
		plugin, shortID(sb.ID), crioguest.GateHoldMaxSeconds))
	if _, err := p.shell(ctx, fmt.Sprintf("mkdir -p /var/lib/pidreuse && mv /etc/kubernetes/manifests/%[1]s.yaml /var/lib/pidreuse/%[1]s.yaml.removed", crioguest.WebPod)); err != nil {
		return err
	}
	p.stopped = map[string]bool{crioguest.WebPod: true}
	// A stop-race that ends early must not leave the node's web pod
	// stopped and its DEL held: in CI the next scenario on the node waited
	// 8 minutes for web.
	p.onFailure("open the CNI gate and bring the web pod back", fmt.Sprintf(
		"touch %[1]s/release; if [ -e /var/lib/pidreuse/%[2]s.yaml.removed ]; then mv /var/lib/pidreuse/%[2]s.yaml.removed /etc/kubernetes/manifests/%[2]s.yaml; fi",
		crioguest.GateDir, crioguest.WebPod))
	p.step("kubelet stops the web pod", "its manifest left /etc/kubernetes/manifests: kubelet stops its container, then calls the runtime's StopPodSandbox")

	held, err := p.waitGateHeld(ctx, 3*time.Minute)
	if err != nil {
		return err
	}
	p.res.NetnsPath = held.NetNS
	p.res.Record(scenarios.CheckDelHeld, "", held.ContainerID == sb.ID,
		fmt.Sprintf("%s got DEL of sandbox %s with netns %q (gate PID %d)", held.Plugin, shortID(held.ContainerID), held.NetNS, held.GatePID))
	p.step("DEL held at the gate", fmt.Sprintf("%s: netns %q, as the runtime handed it", held.Plugin, held.NetNS))

	if err := p.killVictim(ctx, victim, "DEL"); err != nil {
		return err
	}
	var reuse agentapi.PIDReuse
	if err := harness.Agent(ctx, p.node, &reuse, "pid", "reuse", "--pid", strconv.Itoa(victim.pid)); err != nil {
		return fmt.Errorf("a host process could not take PID %d: %w", victim.pid, err)
	}
	p.res.HolderPID, p.res.PIDReused = victim.pid, reuse.IsHostNetns
	p.res.Record(scenarios.CheckPIDTakenByHost, "", reuse.IsHostNetns,
		fmt.Sprintf("PID %d held by a new host process (netns %d, the host's %d) after %d attempts", victim.pid, reuse.NetnsInode, reuse.HostNetnsInode, reuse.Attempts))
	p.step("PID reuse", fmt.Sprintf("a host process holds PID %d (%s's)%s", victim.pid, victim.what, waitedFor(reuse)))

	names, err := p.pathNames(ctx, held.NetNS)
	if err != nil {
		return err
	}
	p.res.DelTarget = string(names)
	p.step("DEL's path names", fmt.Sprintf("%q names the %s netns", held.NetNS, names))
	stale := fmt.Sprintf("/proc/%d/ns/net", victim.pid)
	if procPath {
		p.res.Record(scenarios.CheckDelProcPathHost, "", held.NetNS == stale && names == agentapi.TargetHost,
			fmt.Sprintf("DEL got %q (the pause's /proc path is %s); it names the %s netns", held.NetNS, stale, names))
	} else {
		p.res.Record(scenarios.CheckDelPathNotHost, "", names != agentapi.TargetHost,
			fmt.Sprintf("DEL got %q, which names the %s netns; a host process holds PID %d", held.NetNS, names, victim.pid))
	}

	done, err := p.releaseGate(ctx)
	if err != nil {
		return err
	}
	del := runner.Del{Time: epochTime(done.At), Pod: crioguest.WebPod, SandboxID: sb.ID, NetnsPath: held.NetNS, Issuer: "kubelet (StopPodSandbox)"}
	if done.Exit != 0 {
		del.Error = fmt.Sprintf("%s exited %d", held.Plugin, done.Exit)
		p.res.DelError = del.Error
	}
	p.res.Dels = append(p.res.Dels, del)
	p.step(runner.StepDel+" released at the gate", fmt.Sprintf("%s ran with netns %q, exit %d", held.Plugin, held.NetNS, done.Exit))

	if err := p.judgeLo(ctx); err != nil {
		return err
	}
	// The next scenario on this node wants the web pod back.
	if _, err := p.shell(ctx, fmt.Sprintf("mv /var/lib/pidreuse/%[1]s.yaml.removed /etc/kubernetes/manifests/%[1]s.yaml", crioguest.WebPod)); err != nil {
		return err
	}
	p.step("web pod's manifest back", "kubelet starts it again")
	return nil
}

// waitedFor says which task the agent waited out before it could place
// the holder, if any.
func waitedFor(r agentapi.PIDReuse) string {
	if r.WaitedFor == "" {
		return ""
	}
	return fmt.Sprintf(", after waiting out %s", r.WaitedFor)
}

// judgeLo reads host lo after the DEL: down, it shows the symptom; up,
// the hostNetwork pod must answer kubelet's probes sent after the DEL and
// lo must still be up after them (a late DEL would show there).
func (p *play) judgeLo(ctx context.Context) error {
	lo, err := p.lo(ctx)
	if err != nil {
		return err
	}
	p.res.LoUp = lo.Up
	p.step("host lo "+runner.UpDown(lo.Up), lo.Flags)
	if !lo.Up {
		return p.showSymptom(ctx)
	}
	if err := p.watchLiveness(ctx); err != nil {
		return err
	}
	if lo, err = p.lo(ctx); err != nil {
		return err
	}
	if !lo.Up {
		p.res.LoUp = false
		p.step("host lo DOWN", "went down while the pods were watched")
		return p.showSymptom(ctx)
	}
	return nil
}

// learnStopRuntime asks the runtime what it is and decides, from what it
// is, whether its DEL gets the pause's /proc path: CRI-O says so in its
// configuration (pinning off); cri-dockerd always does (read in its
// source, see stopRace).
func (p *play) learnStopRuntime(ctx context.Context, config func() (string, error)) (bool, error) {
	if _, err := p.readRuntime(ctx); err != nil {
		return false, err
	}
	var procPath bool
	var why string
	switch {
	case p.opts.Node.Docker():
		procPath = p.opts.Node.ProcNetns
		why = "cri-dockerd hands DEL /proc/<pause pid>/ns/net from docker inspect (core/helpers_linux.go getNetworkNamespace), never a pin"
	case !p.opts.Node.CRIO():
		procPath = p.opts.Node.ProcNetns
		why = "containerd hands DEL the sandbox's pin (sandbox_stop.go teardownPodNetwork: sandbox.NetNSPath)"
	default:
		out, err := config()
		if err != nil {
			return false, fmt.Errorf("crio config in the node: %w", err)
		}
		pin, err := kube.ParsePinning(out)
		if err != nil {
			return false, err
		}
		procPath = !pin.Pins
		why = fmt.Sprintf("CRI-O: %s", pin)
	}
	p.res.ExpectedLoUp = !procPath
	p.step("runtime", fmt.Sprintf("%s: %s: expect host lo %s", p.res.Runtime, why, runner.UpDown(!procPath)))
	return procPath, nil
}

// victim is the process whose PID a host process takes while DEL waits.
type victim struct {
	pid  int
	what string
	// pause: it is the sandbox's infra process, which the harness kills
	// (else the pod's container, which kubelet stops itself).
	pause bool
}

// stopVictim finds the web pod's sandbox and the process whose death the
// race needs: the pause (the sandbox's infra process) where the runtime
// keeps one, else — CRI-O 1.34 drops the infra container of a pod with
// pinned namespaces — the pod's container, the netns's last process.
func (p *play) stopVictim(ctx context.Context) (kube.Sandbox, victim, error) {
	sbs, err := kube.Sandboxes(ctx, p.node)
	if err != nil {
		return kube.Sandbox{}, victim{}, err
	}
	var sb *kube.Sandbox
	for i := range sbs {
		if strings.HasPrefix(sbs[i].Name, crioguest.WebPod+"-") && sbs[i].State == "SANDBOX_READY" {
			sb = &sbs[i]
		}
	}
	if sb == nil {
		return kube.Sandbox{}, victim{}, fmt.Errorf("no ready sandbox of the %s pod among %d", crioguest.WebPod, len(sbs))
	}
	pid := sb.InfraPID
	if pid == 0 && p.opts.Node.Docker() {
		out, err := p.shell(ctx, "docker inspect -f '{{.State.Pid}}' "+sb.ID)
		if err != nil {
			return *sb, victim{}, err
		}
		if pid, err = strconv.Atoi(strings.TrimSpace(out)); err != nil {
			return *sb, victim{}, fmt.Errorf("docker inspect %s: pid %q: %w", shortID(sb.ID), out, err)
		}
	}
	if pid > 0 {
		v := victim{pid: pid, what: "the pause", pause: true}
		p.step("sandbox", fmt.Sprintf("%s: sandbox %s, pause PID %d", sb.Name, shortID(sb.ID), pid))
		return *sb, v, nil
	}
	cs, err := kube.Containers(ctx, p.node)
	if err != nil {
		return *sb, victim{}, err
	}
	for _, c := range cs {
		if c.SandboxID == sb.ID && c.State == kube.Running && c.PID > 0 {
			p.step("sandbox", fmt.Sprintf("%s: sandbox %s has no infra process; its container %s has PID %d", sb.Name, shortID(sb.ID), c.Name, c.PID))
			return *sb, victim{pid: c.PID, what: "the pod's container " + c.Name}, nil
		}
	}
	return *sb, victim{}, fmt.Errorf("sandbox %s has no infra PID and no running container: no PID to race for", shortID(sb.ID))
}

// armGate puts the gate in place of plugin in the runtime's plugin dir,
// atomically (a hard link keeps the real plugin, a rename puts the gate
// over it), armed for sandbox id.
func (p *play) armGate(ctx context.Context, plugin, id string) error {
	dir, path := crioguest.GateDir, crioguest.CNIPluginDir+"/"+plugin
	script := fmt.Sprintf(`set -e
rm -rf %[1]s && mkdir -p %[1]s
[ -e %[2]s%[3]s ] || ln %[2]s %[2]s%[3]s
install -m 0755 %[4]s %[2]s.pidreuse-new && mv -f %[2]s.pidreuse-new %[2]s
echo %[5]s > %[1]s/armed`, dir, path, crioguest.GatedSuffix, crioguest.GateScript, id)
	if _, err := p.shell(ctx, script); err != nil {
		return fmt.Errorf("arm the CNI gate on %s: %w", path, err)
	}
	return nil
}

// GateHeld is what the gate wrote when DEL reached it.
type GateHeld struct {
	At          string `json:"at"`
	GatePID     int    `json:"gate_pid"`
	Plugin      string `json:"plugin"`
	ContainerID string `json:"container_id"`
	NetNS       string `json:"netns"`
	IfName      string `json:"ifname"`
}

// GateDone is what the gate wrote when the real plugin returned.
type GateDone struct {
	At       string `json:"at"`
	Exit     int    `json:"exit"`
	Released bool   `json:"released"`
}

// ParseGateHeld and ParseGateDone read the gate's files.
func ParseGateHeld(data []byte) (GateHeld, error) {
	return parseGateFile[GateHeld](data, "the CNI gate's record")
}

func ParseGateDone(data []byte) (GateDone, error) {
	return parseGateFile[GateDone](data, "the CNI gate's result")
}

// parseGateFile reads one JSON file a gate script wrote.
func parseGateFile[T any](data []byte, what string) (T, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("%s %q: %w", what, strings.TrimSpace(string(data)), err)
	}
	return v, nil
}

// waitGateHeld waits for the runtime's DEL to reach the gate.
func (p *play) waitGateHeld(ctx context.Context, timeout time.Duration) (GateHeld, error) {
	out, err := p.waitNodeFile(ctx, crioguest.GateDir+"/held", timeout)
	if err != nil {
		return GateHeld{}, fmt.Errorf("the runtime's DEL never reached the gated plugin: %w (gates.txt and the runtime's log in the artifacts say more)", err)
	}
	return ParseGateHeld([]byte(out))
}

// releaseGate opens the gate and waits for the real plugin's exit.
func (p *play) releaseGate(ctx context.Context) (GateDone, error) {
	if _, err := p.shell(ctx, "touch "+crioguest.GateDir+"/release"); err != nil {
		return GateDone{}, fmt.Errorf("open the CNI gate: %w", err)
	}
	out, err := p.waitNodeFile(ctx, crioguest.GateDir+"/done", time.Minute)
	if err != nil {
		return GateDone{}, fmt.Errorf("the gated plugin did not return after the gate opened: %w", err)
	}
	d, err := ParseGateDone([]byte(out))
	if err == nil && !d.Released {
		err = fmt.Errorf("the gate gave up waiting (%d s) before the harness opened it: the timeline did not happen as scripted", crioguest.GateHoldMaxSeconds)
	}
	return d, err
}

// waitNodeFile waits for a file in the node and returns its content; each
// call waits in the node for up to 10 s, so the harness does not poll
// over SSH.
func (p *play) waitNodeFile(ctx context.Context, path string, timeout time.Duration) (string, error) {
	timeout = deadline.Scaled(ctx, timeout)
	until := time.Now().Add(timeout)
	script := fmt.Sprintf(`i=0; while [ ! -e %[1]s ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done; cat %[1]s 2>/dev/null || true`, path)
	for {
		out, err := p.shell(ctx, script)
		if err != nil {
			return "", err
		}
		if strings.TrimSpace(out) != "" {
			return out, nil
		}
		if time.Now().After(until) {
			return "", fmt.Errorf("%s not there after %s", path, timeout)
		}
	}
}

// killVictim makes the victim's PID free while held (the runtime's call
// waiting at a gate: "DEL", "runc create") waits: the harness kills the
// pause (SIGKILL, as the OOM killer would) and waits until its parent
// reaped it; a container kubelet stopped is gone already. Anything else
// holding the PID means the timeline cannot be played: no verdict.
func (p *play) killVictim(ctx context.Context, v victim, held string) error {
	var st agentapi.PIDStatus
	if err := harness.Agent(ctx, p.node, &st, "pid", "status", "--pid", strconv.Itoa(v.pid)); err != nil {
		return err
	}
	switch {
	case !st.Exists:
		p.res.Record(scenarios.CheckPauseGone, "", true, fmt.Sprintf("PID %d (%s) already gone when %s reached the gate", v.pid, v.what, held))
		p.step("PID free", fmt.Sprintf("%s (PID %d) already gone", v.what, v.pid))
		return nil
	case !v.pause:
		p.res.Record(scenarios.CheckPauseGone, "", false, fmt.Sprintf("PID %d (%s) still held by %q while %s waited", v.pid, v.what, st.Comm, held))
		return fmt.Errorf("PID %d (%s) is still held by %q while %s waits: the race cannot be played", v.pid, v.what, st.Comm, held)
	}
	script := fmt.Sprintf(`kill -KILL %[1]d; i=0; while [ -e /proc/%[1]d ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; [ ! -e /proc/%[1]d ]`, v.pid)
	if _, err := p.shell(ctx, script); err != nil {
		p.res.Record(scenarios.CheckPauseGone, "", false, fmt.Sprintf("PID %d (%q) still there 10 s after SIGKILL", v.pid, st.Comm))
		return fmt.Errorf("the pause (PID %d, %q) did not go away after SIGKILL: %w", v.pid, st.Comm, err)
	}
	p.res.Record(scenarios.CheckPauseGone, "", true, fmt.Sprintf("the pause (PID %d, %q) killed with SIGKILL and reaped while %s waited", v.pid, st.Comm, held))
	p.step("the pause dies", fmt.Sprintf("SIGKILL to PID %d (%q), as an OOM kill or a concurrent stop would end it", v.pid, st.Comm))
	return nil
}

// pathNames says which netns a path names now: the host's, another (the
// pod's, through a pin), or none.
func (p *play) pathNames(ctx context.Context, path string) (agentapi.NetnsTarget, error) {
	if path == "" {
		return agentapi.TargetEmpty, nil
	}
	out, err := p.shell(ctx, fmt.Sprintf(`echo "$(stat -L -c %%i /proc/1/ns/net) $(stat -L -c %%i '%s' 2>/dev/null || echo missing)"`, path))
	if err != nil {
		return "", err
	}
	return NetnsTargetOf(out)
}

// NetnsTargetOf reads "<host netns inode> <path's inode|missing>".
func NetnsTargetOf(out string) (agentapi.NetnsTarget, error) {
	f := strings.Fields(out)
	if len(f) != 2 {
		return "", fmt.Errorf("netns inodes: want 2 fields, got %q", out)
	}
	switch {
	case f[1] == "missing":
		return agentapi.TargetMissing, nil
	case f[0] == f[1]:
		return agentapi.TargetHost, nil
	}
	return agentapi.TargetOther, nil
}

// epochTime turns the gate's `date +%s.%N` into RFC 3339 (UTC); what does
// not parse stays as it is.
func epochTime(s string) string {
	t, err := parseEpoch(s)
	if err != nil {
		return s
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// parseEpoch reads the gate scripts' time stamps: seconds since the epoch
// with a fraction (`date +%s.%N`), on the node's wall clock.
func parseEpoch(s string) (time.Time, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time stamp %q: %w", s, err)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
