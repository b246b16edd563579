package kubescenario

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/scenarios"
)

// netnsPath is the path CRI-O hands CNI for a sandbox: the one it reports
// (CRI-O >= 1.19), or for an older CRI-O that does not pin, the infra
// process's /proc path ("" when unknown: a pin an old CRI-O does not
// report).
func netnsPath(sb kube.Sandbox, pins bool) string {
	if sb.NetnsPath != "" || pins || sb.InfraPID == 0 {
		return sb.NetnsPath
	}
	return fmt.Sprintf("/proc/%d/ns/net", sb.InfraPID)
}

// recordNetns records how CRI-O references each sandbox's netns and checks
// it agrees with CRI-O's configuration.
func (p *play) recordNetns(ctx context.Context, rt scenarios.CRIORuntime, old []kube.Sandbox) error {
	var paths, bad []string
	podNetwork := 0
	for _, sb := range old {
		path := netnsPath(sb, rt.Pins)
		paths = append(paths, sb.Name+"="+orUnreported(path))
		if sb.HostNetwork {
			continue
		}
		podNetwork++
		pinned := strings.HasPrefix(path, "/var/run/netns/") || strings.HasPrefix(path, "/run/netns/")
		switch {
		case rt.Pins && path != "" && !pinned, !rt.Pins && !strings.HasPrefix(path, "/proc/"):
			bad = append(bad, sb.Name+"="+orUnreported(path))
		}
	}
	p.res.NetnsPath = strings.Join(paths, " ")
	p.step("sandboxes recorded", p.res.NetnsPath)
	detail := p.res.NetnsPath
	if rt.Pins && old[0].NetnsPath == "" {
		// CRI-O before 1.19 does not report the path: count its pins.
		out, err := p.shell(ctx, "findmnt -rn -t nsfs -o TARGET | grep -c '^/var/run/netns/\\|^/run/netns/' || true")
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		detail += fmt.Sprintf("; %d netns pins mounted under /var/run/netns for %d pod-network sandboxes", n, podNetwork)
		if n < podNetwork {
			bad = append(bad, fmt.Sprintf("only %d pins", n))
		}
	}
	if len(bad) > 0 {
		detail += "; not as configured: " + strings.Join(bad, " ")
	}
	p.res.Record(scenarios.CheckCRIONetns, "", len(bad) == 0, detail)
	return nil
}

func orUnreported(path string) string {
	if path == "" {
		return "(not reported)"
	}
	return path
}

// judgeDels reads CRI-O's journal of the new boot: every CNI DEL of an old
// sandbox, with its path, who asked for it and its error, into the result
// and the timeline; and the checks on them.
//
// clock places each DEL on the timeline at the journal's time (a zero
// clock leaves it at the time it was read, under a step name that does
// not count as a DEL for the phases).
func (p *play) judgeDels(rt scenarios.CRIORuntime, journal string, old []kube.Sandbox, spare *kube.Sandbox, clock kube.Clock) {
	ops := kube.ParseCNIOps(journal)
	p.res.DelTarget = string(agentapi.TargetMissing)
	for _, sb := range old {
		if sb.HostNetwork {
			continue // no pod network, no CNI DEL
		}
		dels := kube.DelsOf(ops, sb.ID)
		for _, d := range dels {
			p.res.Dels = append(p.res.Dels, runner.Del{Time: d.Time, Pod: d.Pod, SandboxID: d.SandboxID, NetnsPath: d.NetNS, Issuer: d.Issuer(), Error: d.Error})
			detail := fmt.Sprintf("%s with netns %q, issued by %s; error: %s", d.Pod, d.NetNS, d.Issuer(), runner.OrNone(d.Error))
			p.delStep(clock, d.Time, detail)
			if d.Error != "" && p.res.DelError == "" {
				p.res.DelError = d.Error
			}
		}
		isSpare := spare != nil && sb.ID == spare.ID
		stale := netnsPath(sb, false)
		switch {
		case rt.Pins:
			stalePath := false
			for _, d := range dels {
				stalePath = stalePath || strings.HasPrefix(d.NetNS, "/proc/")
			}
			p.res.Record(scenarios.CheckDelNoStalePath, sb.Name, !stalePath, describeDels(dels))
			// CRI-O 1.19+ reports the pin; an older one names it only in
			// this line.
			line := kube.RestoreFailedLine(journal, sb.ID, sb.NetnsPath)
			p.res.Record(scenarios.CheckPinGone, sb.Name, line != "", runner.OrNone(line))
		case isSpare:
			if crioStatfs(p.expect) {
				line := runner.StatfsLine(stale)
				ok := false
				for _, d := range dels {
					ok = ok || strings.Contains(d.Error, line)
				}
				p.res.Record(scenarios.CheckCRIOStatfs, sb.Name, ok, describeDels(dels))
			}
		default:
			named := false
			for _, d := range dels {
				named = named || (d.NetNS == stale && stale != "")
			}
			if named {
				p.res.DelTarget = string(agentapi.TargetHost)
				p.res.NetnsPath, p.res.HolderPID = stale, sb.InfraPID
			}
			p.res.Record(scenarios.CheckDelStalePath, sb.Name, named, fmt.Sprintf("old infra PID %d; %s", sb.InfraPID, describeDels(dels)))
		}
	}
}

func crioStatfs(expect []scenarios.Check) bool {
	for _, c := range expect {
		if c.ID == scenarios.CheckCRIOStatfs.ID {
			return true
		}
	}
	return false
}

func describeDels(dels []kube.CNIOp) string {
	if len(dels) == 0 {
		return "no CNI DEL in CRI-O's journal"
	}
	var out []string
	for _, d := range dels {
		out = append(out, fmt.Sprintf("%s DEL netns %q by %s, error: %s", d.Time, d.NetNS, d.Issuer(), runner.OrNone(d.Error)))
	}
	return strings.Join(out, "; ")
}

// delStep records a DEL of CRI-O's journal at the journal's time, on the
// harness's clock; without a clock (or a time that does not parse), when
// it was read.
func (p *play) delStep(clock kube.Clock, stamp, detail string) {
	if !clock.At.IsZero() {
		if t, err := clock.JournalTime(stamp); err == nil {
			p.delOverAt(clock.FromWall(t))
			p.stepAt(clock.FromWall(t), runner.StepDelJournal, "by CRI-O: "+detail)
			if p.opts.OnStep != nil {
				p.opts.OnStep(p.sc.Name, runner.StepDelJournal)
			}
			return
		}
	}
	// Not placed: it was over by the time the journal was read.
	p.delOverAt(time.Now())
	p.step("read from the journal: CNI DEL by CRI-O", detail)
}
