package kubescenario

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/internal/crioguest"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// nsTypes are the namespaces a container joins by its sandbox's path
// (its PID namespace is its own unless the pod shares one).
var nsTypes = []string{"net", "ipc", "uts"}

// joinRace plays join-race (containerd#5630) without a reboot: the web
// pod's container dies and kubelet restarts it; the runtime's
// StartContainer reaches `runc create`, whose spec joins the sandbox by
// /proc/<pause pid>/ns/{net,ipc,uts}, and the runc gate
// (crioguest.RuncGateScript) holds it at its start: the window between the
// runtime's sandbox check and runc's setns, made deterministic. The
// harness kills the pause, has a host process take its PID, opens the
// gate, and compares the namespaces the container's init process got with
// its pod's and the host's.
//
// Read in containerd 1.6.20: WithPodNamespaces (pkg/cri/opts/spec_linux.go;
// in v2.2.9 internal/cri/opts/spec_opts.go, the same code) puts
// /proc/<sandbox pid>/ns/{net,ipc,uts} into every container's spec, the
// PID taken when the container is created and entered by runc when it is
// started.
func (p *play) joinRace(ctx context.Context) error {
	node := p.opts.Node
	if !node.ProcJoin {
		return fmt.Errorf("join-race plays on a node whose runtime joins containers to their sandbox by /proc/<pause pid>/ns/* (containerd); %s does not", node.Profile)
	}
	if err := p.podsRunning(ctx, true); err != nil {
		return err
	}
	if _, err := p.readRuntime(ctx); err != nil {
		return err
	}
	p.res.ExpectedForeignJoin, p.res.ExpectedLoUp = true, true
	p.expect = p.sc.JoinRaceChecks(true)
	p.step("runtime", fmt.Sprintf("%s: joins each container to its sandbox by /proc/<sandbox pid>/ns/{net,ipc,uts} (WithPodNamespaces): expect the restarted container in the host holder's namespaces", p.res.Runtime))

	var sb kube.Sandbox
	var web kube.Container
	if err := p.retry(ctx, 2*time.Minute, "waiting for the web pod's ready sandbox", func() error {
		var err error
		sb, web, err = p.joinVictims(ctx)
		return err
	}); err != nil {
		return err
	}
	pause := sb.InfraPID
	podNS, err := p.namespaces(ctx, pause)
	if err != nil {
		return err
	}
	hostNS, err := p.namespaces(ctx, 1)
	if err != nil {
		return err
	}
	p.step("sandbox", fmt.Sprintf("%s: sandbox %s, pause PID %d (%s); its container %s has PID %d", sb.Name, shortID(sb.ID), pause, nsList(podNS), web.Name, web.PID))
	if err := p.armRuncGate(ctx, pause); err != nil {
		return err
	}
	p.onFailure("open the runc gate", "touch "+crioguest.RuncGateDir+"/release")
	p.step("runc gate armed", fmt.Sprintf("the first `runc create` joining /proc/%d/ns/net waits at its start until the harness opens the gate (at most %d s): the race's window, made deterministic", pause, crioguest.GateHoldMaxSeconds))
	if _, err := p.shell(ctx, fmt.Sprintf("kill -KILL %d", web.PID)); err != nil {
		return fmt.Errorf("kill the web container (PID %d): %w", web.PID, err)
	}
	p.step("the web container dies", fmt.Sprintf("SIGKILL to PID %d: kubelet restarts it — CreateContainer, then StartContainer, whose `runc create` joins the sandbox's namespaces", web.PID))

	out, err := p.waitNodeFile(ctx, crioguest.RuncGateDir+"/held", 3*time.Minute)
	if err != nil {
		return fmt.Errorf("the runtime's start of the restarted container never reached `runc create` at the gate: %w (the runtime's and kubelet's logs in the artifacts say more)", err)
	}
	held, err := ParseRuncHeld([]byte(out))
	if err != nil {
		return err
	}
	joinsPause := strings.Contains(" "+held.Joins+" ", fmt.Sprintf(" /proc/%d/ns/net ", pause))
	p.res.NetnsPath = held.Joins
	p.res.Record(scenarios.CheckCreateHeld, "", joinsPause, fmt.Sprintf("runc create of %s held; its spec joins %s", shortID(held.ContainerID), held.Joins))
	p.step("runc create held at the gate", fmt.Sprintf("container %s, spec joins %s, as the runtime wrote it", shortID(held.ContainerID), held.Joins))

	if err := p.killVictim(ctx, victim{pid: pause, what: "the pause", pause: true}, "runc create"); err != nil {
		return err
	}
	var reuse agentapi.PIDReuse
	if err := harness.Agent(ctx, p.node, &reuse, "pid", "reuse", "--pid", strconv.Itoa(pause)); err != nil {
		return fmt.Errorf("a host process could not take PID %d: %w", pause, err)
	}
	p.res.HolderPID, p.res.PIDReused = pause, reuse.IsHostNetns
	p.res.Record(scenarios.CheckPIDTakenByHost, "", reuse.IsHostNetns,
		fmt.Sprintf("PID %d held by a new host process (netns %d, the host's %d) after %d attempts", pause, reuse.NetnsInode, reuse.HostNetnsInode, reuse.Attempts))
	p.step("PID reuse", fmt.Sprintf("a host process holds PID %d (the pause's)%s", pause, waitedFor(reuse)))

	if _, err := p.shell(ctx, "touch "+crioguest.RuncGateDir+"/release"); err != nil {
		return fmt.Errorf("open the runc gate: %w", err)
	}
	out, err = p.waitNodeFile(ctx, crioguest.RuncGateDir+"/done", time.Minute)
	if err != nil {
		return fmt.Errorf("runc create did not return after the gate opened: %w", err)
	}
	done, err := ParseRuncDone([]byte(out))
	if err != nil {
		return err
	}
	if !done.Released {
		return fmt.Errorf("the runc gate gave up waiting (%d s) before the harness opened it: the timeline did not happen as scripted", crioguest.GateHoldMaxSeconds)
	}
	got := map[string]string{"net": done.Net, "ipc": done.IPC, "uts": done.UTS}
	p.res.Joins, p.res.ForeignJoin = JudgeJoins(podNS, hostNS, got)
	p.step("runc create returned", fmt.Sprintf("exit %d, container init PID %d: %s", done.Exit, done.PID, nsList(got)))
	detail := fmt.Sprintf("runc create exit %d; %s", done.Exit, joinsTable(p.res.Joins))
	allHost := done.Exit == 0
	for _, j := range p.res.Joins {
		allHost = allHost && j.Container == j.Host && j.Container != j.Pod
	}
	p.res.Record(scenarios.CheckJoinedHost, "", allHost, detail)

	lo, err := p.lo(ctx)
	if err != nil {
		return err
	}
	p.res.LoUp = lo.Up
	p.step("host lo "+runner.UpDown(lo.Up), lo.Flags)
	return nil
}

// joinVictims finds the web pod's ready sandbox, which must have a pause
// process, and its running container.
func (p *play) joinVictims(ctx context.Context) (kube.Sandbox, kube.Container, error) {
	sbs, err := kube.Sandboxes(ctx, p.node)
	if err != nil {
		return kube.Sandbox{}, kube.Container{}, err
	}
	for _, sb := range sbs {
		if !strings.HasPrefix(sb.Name, crioguest.WebPod+"-") || sb.State != "SANDBOX_READY" {
			continue
		}
		if sb.InfraPID == 0 {
			return sb, kube.Container{}, fmt.Errorf("sandbox %s reports no pause PID: the runtime does not join containers by /proc/<pid>", shortID(sb.ID))
		}
		cs, err := kube.Containers(ctx, p.node)
		if err != nil {
			return sb, kube.Container{}, err
		}
		for _, c := range cs {
			if c.SandboxID == sb.ID && c.State == kube.Running && c.PID > 0 {
				return sb, c, nil
			}
		}
		return sb, kube.Container{}, fmt.Errorf("sandbox %s has no running container", shortID(sb.ID))
	}
	return kube.Sandbox{}, kube.Container{}, fmt.Errorf("no ready sandbox of the %s pod among %d", crioguest.WebPod, len(sbs))
}

// namespaces reads pid's net, ipc and uts namespaces ("net:[4026531840]").
func (p *play) namespaces(ctx context.Context, pid int) (map[string]string, error) {
	out, err := p.shell(ctx, fmt.Sprintf("for n in %s; do readlink /proc/%d/ns/$n; done", strings.Join(nsTypes, " "), pid))
	if err != nil {
		return nil, fmt.Errorf("namespaces of PID %d: %w", pid, err)
	}
	lines := strings.Fields(out)
	if len(lines) != len(nsTypes) {
		return nil, fmt.Errorf("namespaces of PID %d: want %d links, got %q", pid, len(nsTypes), out)
	}
	ns := map[string]string{}
	for i, t := range nsTypes {
		ns[t] = lines[i]
	}
	return ns, nil
}

// armRuncGate puts the runc gate over the node's runc, atomically, armed
// for containers joining pause's namespaces.
func (p *play) armRuncGate(ctx context.Context, pause int) error {
	dir, runc := crioguest.RuncGateDir, crioguest.RuncBinary
	script := fmt.Sprintf(`set -e
rm -rf %[1]s && mkdir -p %[1]s
[ -e %[2]s%[3]s ] || ln %[2]s %[2]s%[3]s
install -m 0755 %[4]s %[2]s.pidreuse-new && mv -f %[2]s.pidreuse-new %[2]s
echo %[5]d > %[1]s/armed`, dir, runc, crioguest.GatedSuffix, crioguest.RuncGateScript, pause)
	if _, err := p.shell(ctx, script); err != nil {
		return fmt.Errorf("arm the runc gate on %s: %w", runc, err)
	}
	return nil
}

// RuncHeld is what the runc gate wrote when runc create reached it.
type RuncHeld struct {
	At          string `json:"at"`
	GatePID     int    `json:"gate_pid"`
	ContainerID string `json:"container_id"`
	Bundle      string `json:"bundle"`
	// Joins are the /proc/<pid>/ns/* paths of the spec, space-separated.
	Joins string `json:"joins"`
}

// RuncDone is what the runc gate wrote when runc create returned.
type RuncDone struct {
	At       string `json:"at"`
	Exit     int    `json:"exit"`
	Released bool   `json:"released"`
	PID      int    `json:"pid"`
	Net      string `json:"net"`
	IPC      string `json:"ipc"`
	UTS      string `json:"uts"`
}

// ParseRuncHeld and ParseRuncDone read the runc gate's files.
func ParseRuncHeld(data []byte) (RuncHeld, error) {
	return parseGateFile[RuncHeld](data, "the runc gate's record")
}

func ParseRuncDone(data []byte) (RuncDone, error) {
	return parseGateFile[RuncDone](data, "the runc gate's result")
}

// JudgeJoins lays the container's namespaces next to its pod's and the
// host's, and says whether it joined any namespace of the host (a foreign
// process's: the host holder of the pause's PID).
func JudgeJoins(pod, host, container map[string]string) ([]runner.NamespaceJoin, bool) {
	var joins []runner.NamespaceJoin
	foreign := false
	for _, t := range nsTypes {
		j := runner.NamespaceJoin{Type: t, Pod: pod[t], Host: host[t], Container: container[t]}
		foreign = foreign || (j.Container == j.Host && j.Host != j.Pod)
		joins = append(joins, j)
	}
	return joins, foreign
}

func joinsTable(joins []runner.NamespaceJoin) string {
	var parts []string
	for _, j := range joins {
		who := "neither"
		switch j.Container {
		case j.Host:
			who = "the host's"
		case j.Pod:
			who = "the pod's"
		}
		parts = append(parts, fmt.Sprintf("%s: container %s = %s (pod %s, host %s)", j.Type, j.Container, who, j.Pod, j.Host))
	}
	return strings.Join(parts, "; ")
}

func nsList(ns map[string]string) string {
	var parts []string
	for _, t := range nsTypes {
		parts = append(parts, ns[t])
	}
	return strings.Join(parts, " ")
}
