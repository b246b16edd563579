package kubescenario

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/scenarios"
)

// runtimeReboot plays kubelet-reboot: crio-kubelet-reboot's story on a
// node whose runtime is not CRI-O, the negative control of the live
// variants. The pods run; the CNI gate goes over the plugin the runtime
// runs first at DEL, unarmed, recording every DEL on disk; host processes
// take the old pauses' PIDs at the next boot before the runtime starts;
// the node reboots; kubelet removes the old sandboxes through the runtime.
// Read in the runtimes' sources: cri-dockerd gets the path from docker
// inspect, and Docker reports Pid 0 for an exited container
// (core/helpers_linux.go getNetworkNamespace refuses it: DEL gets no
// path); containerd hands DEL the pin, emptied when the pin is gone
// (sandbox_stop.go). Either way nothing stale is entered: host lo UP.
func (p *play) runtimeReboot(ctx context.Context) error {
	node := p.opts.Node
	pods := node.pods()
	if err := p.podsRunning(ctx, false); err != nil {
		return err
	}
	if _, err := p.readRuntime(ctx); err != nil {
		return err
	}
	p.expect = p.sc.Checks("", scenarios.TierVM)
	why := "containerd hands DEL the sandbox's pin, which a reboot removes"
	if node.Docker() {
		why = "cri-dockerd asks docker inspect for the pause's PID, and Docker reports Pid 0 for an exited container"
	}
	p.step("runtime", fmt.Sprintf("%s: %s: expect host lo UP", p.res.Runtime, why))

	old, err := p.readyRefs(ctx, 3*time.Minute)
	if err != nil {
		return err
	}
	var pids []int
	var refs []string
	for _, o := range old {
		pids = append(pids, o.pid)
		refs = append(refs, fmt.Sprintf("%s=%s (pause PID %d)", o.sb.Name, orUnreported(o.ref), o.pid))
	}
	p.res.NetnsPath = strings.Join(refs, " ")
	p.step("sandboxes recorded", p.res.NetnsPath)
	if err := p.armRecord(ctx, node.gatePlugin()); err != nil {
		return err
	}
	p.step("CNI gate recording", fmt.Sprintf("every DEL through %s is written to %s/dels.jsonl, on disk, across the reboot (nothing held)", node.gatePlugin(), crioguest.GateRecordDir))
	words := make([]string, len(pids))
	for i, pid := range pids {
		words[i] = strconv.Itoa(pid)
	}
	p.res.HolderPID = pids[0]
	if _, err := p.shell(ctx, fmt.Sprintf("mkdir -p \"$(dirname %[2]s)\" && echo %[1]s > %[2]s && sync", strings.Join(words, " "), crioguest.SquatFile)); err != nil {
		return err
	}
	if err := p.reboot(ctx); err != nil {
		return err
	}
	if err := p.judgeSquat(ctx, pids); err != nil {
		return err
	}
	if err := p.judgeOldRefs(ctx, old); err != nil {
		return err
	}
	p.step("waiting for the static pods again", "kubelet recreates the sandboxes, the runtime cleans the old ones up")
	if _, err := p.waitPods(ctx, "after the reboot", p.opts.PodTimeout); err != nil {
		return err
	}
	p.step("static pods Running again", strings.Join(pods, ", "))
	out, err := p.shell(ctx, "cat "+crioguest.GateRecordDir+"/dels.jsonl 2>/dev/null || true")
	if err != nil {
		return err
	}
	recorded, err := ParseGateRecord([]byte(out))
	if err != nil {
		return err
	}
	p.judgeRecordedDels(old, recorded)
	p.noteRecordedDels(ctx, recorded)
	return p.judgeLo(ctx)
}

// oldRef is one sandbox of the first boot: its pause's PID and the netns
// reference the runtime holds for it.
type oldRef struct {
	sb  kube.Sandbox
	pid int
	ref string
}

// readyRefs waits until every pod has a ready sandbox and reads them
// (oldRefs): after join-race on the same node the web container can show
// Running for a while in a sandbox whose pause is gone, before kubelet
// makes it a new one.
func (p *play) readyRefs(ctx context.Context, timeout time.Duration) ([]oldRef, error) {
	var old []oldRef
	err := p.retry(ctx, timeout, "waiting for a ready sandbox of each pod", func() error {
		var err error
		old, err = p.oldRefs(ctx)
		return err
	})
	return old, err
}

// oldRefs reads every sandbox's pause PID and netns reference: Docker's
// from docker inspect (cri-dockerd reports neither), containerd's from
// its sandbox status.
func (p *play) oldRefs(ctx context.Context) ([]oldRef, error) {
	sbs, err := kube.Sandboxes(ctx, p.node)
	if err != nil {
		return nil, err
	}
	var out []oldRef
	for _, sb := range sbs {
		if sb.State != "SANDBOX_READY" {
			continue
		}
		o := oldRef{sb: sb, pid: sb.InfraPID, ref: sb.NetnsPath}
		if p.opts.Node.Docker() {
			s, err := p.shell(ctx, "docker inspect -f '{{.State.Pid}}' "+sb.ID)
			if err != nil {
				return nil, err
			}
			if o.pid, err = strconv.Atoi(strings.TrimSpace(s)); err != nil {
				return nil, fmt.Errorf("docker inspect %s: pid %q: %w", shortID(sb.ID), s, err)
			}
			o.ref = fmt.Sprintf("/proc/%d/ns/net", o.pid)
		}
		if o.pid == 0 {
			return nil, fmt.Errorf("sandbox %s (%s) has no pause PID: nothing for a host process to take", shortID(sb.ID), sb.Name)
		}
		if sb.HostNetwork {
			o.ref = ""
		}
		out = append(out, o)
	}
	if len(out) < len(p.opts.Node.pods()) {
		return nil, fmt.Errorf("want the sandboxes of %s, the runtime shows %d ready", strings.Join(p.opts.Node.pods(), ", "), len(out))
	}
	return out, nil
}

// armRecord puts the CNI gate over plugin, unarmed, recording every DEL
// on disk.
func (p *play) armRecord(ctx context.Context, plugin string) error {
	path := crioguest.CNIPluginDir + "/" + plugin
	script := fmt.Sprintf(`set -e
mkdir -p %[1]s
[ -e %[2]s%[3]s ] || ln %[2]s %[2]s%[3]s
install -m 0755 %[4]s %[2]s.pidreuse-new && mv -f %[2]s.pidreuse-new %[2]s
sync`, crioguest.GateRecordDir, path, crioguest.GatedSuffix, crioguest.GateScript)
	if _, err := p.shell(ctx, script); err != nil {
		return fmt.Errorf("put the recording CNI gate on %s: %w", path, err)
	}
	return nil
}

// judgeOldRefs checks, right after the reboot, that no old reference
// names anything: Docker says Pid 0 for each old pause, containerd's pins
// are gone.
func (p *play) judgeOldRefs(ctx context.Context, old []oldRef) error {
	var seen []string
	ok := true
	for _, o := range old {
		if o.sb.HostNetwork {
			continue
		}
		var script string
		if p.opts.Node.Docker() {
			script = "docker inspect -f 'Pid {{.State.Pid}}' " + o.sb.ID
		} else {
			script = fmt.Sprintf("[ -e '%[1]s' ] && echo '%[1]s exists' || echo '%[1]s gone'", o.ref)
		}
		out, err := p.shell(ctx, script)
		if err != nil {
			return err
		}
		got := strings.TrimSpace(out)
		ok = ok && (got == "Pid 0" || strings.HasSuffix(got, " gone"))
		seen = append(seen, fmt.Sprintf("%s: %s", o.sb.Name, got))
	}
	p.res.Record(scenarios.CheckOldRefGone, "", ok && len(seen) > 0, strings.Join(seen, "; "))
	p.step("old netns references", strings.Join(seen, "; "))
	return nil
}

// GateDel is one DEL the gate recorded.
type GateDel struct {
	At          string `json:"at"`
	Plugin      string `json:"plugin"`
	ContainerID string `json:"container_id"`
	NetNS       string `json:"netns"`
}

// noteRecordedDels places the recorded DELs on the harness's clock for the
// liveness watch; a DEL that cannot be placed was over by now.
func (p *play) noteRecordedDels(ctx context.Context, recorded []GateDel) {
	clock, err := kube.ReadClock(ctx, p.node)
	for _, d := range recorded {
		at, perr := parseEpoch(d.At)
		if err != nil || perr != nil {
			p.delOverAt(time.Now())
			continue
		}
		p.delOverAt(clock.FromWall(at))
	}
}

// ParseGateRecord reads the gate's dels.jsonl.
func ParseGateRecord(data []byte) ([]GateDel, error) {
	var out []GateDel
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var d GateDel
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			return nil, fmt.Errorf("the CNI gate's record line %q: %w", line, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// judgeRecordedDels checks the DELs of the old pod-network sandboxes: one
// at least for each, none naming a /proc path.
func (p *play) judgeRecordedDels(old []oldRef, recorded []GateDel) {
	var missing, stale, seen []string
	for _, o := range old {
		if o.sb.HostNetwork {
			continue
		}
		n := 0
		for _, d := range recorded {
			if d.ContainerID != o.sb.ID {
				continue
			}
			n++
			p.res.Dels = append(p.res.Dels, runner.Del{Time: epochTime(d.At), Pod: o.sb.Name, SandboxID: o.sb.ID, NetnsPath: d.NetNS, Issuer: "kubelet (StopPodSandbox) via " + d.Plugin})
			seen = append(seen, fmt.Sprintf("%s DEL netns %q", o.sb.Name, d.NetNS))
			if strings.HasPrefix(d.NetNS, "/proc/") {
				stale = append(stale, fmt.Sprintf("%s: %s", o.sb.Name, d.NetNS))
			}
		}
		if n == 0 {
			missing = append(missing, o.sb.Name)
		}
	}
	detail := strings.Join(seen, "; ")
	if detail == "" {
		detail = "no DEL of an old sandbox recorded"
	}
	p.res.Record(scenarios.CheckOldDelRecorded, "", len(missing) == 0, detail+missingNote(missing))
	p.res.Record(scenarios.CheckDelNoStalePath, "", len(stale) == 0, detail)
	p.res.DelTarget = "missing"
	if len(stale) > 0 {
		p.res.DelTarget = "stale: " + strings.Join(stale, " ")
	}
	p.step(runner.StepDel+"s of the old sandboxes, as recorded", detail)
}

func missingNote(missing []string) string {
	if len(missing) == 0 {
		return ""
	}
	return "; none for " + strings.Join(missing, ", ")
}
