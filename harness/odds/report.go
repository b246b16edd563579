package odds

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// Report files, in the report dir.
const (
	SummaryFile = "summary.md"
	JSONFile    = "odds.json"
	PlotFile    = "odds.svg"
	RecordsFile = "cni-records.jsonl"
)

// Write writes the report dir: odds.json (everything), odds.svg (the plot,
// when a cycle was measured), summary.md (the rate, how to read the plot,
// the per-cycle table, who took the PIDs) and cni-records.jsonl (the
// recorder's raw lines). It returns the summary's path.
func Write(dir string, rep Report) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("odds report: %w", err)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", fmt.Errorf("odds report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, JSONFile), append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("odds report: %w", err)
	}
	if len(rep.RawRecords) > 0 {
		if err := os.WriteFile(filepath.Join(dir, RecordsFile), rep.RawRecords, 0o644); err != nil {
			return "", fmt.Errorf("odds report: %w", err)
		}
	}
	plotted := false
	if len(rep.Cycles) > 0 {
		if err := WritePlot(rep, filepath.Join(dir, PlotFile)); err != nil {
			return "", err
		}
		plotted = true
	}
	summary := filepath.Join(dir, SummaryFile)
	if err := os.WriteFile(summary, []byte(Markdown(rep, plotted)), 0o644); err != nil {
		return "", fmt.Errorf("odds report: %w", err)
	}
	return summary, nil
}

// Markdown is summary.md.
func Markdown(rep Report, plotted bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# pidreuse odds: %s\n\n", rep.Node.Profile)
	fmt.Fprintf(&b, "**Host lo taken down by CRI-O's DEL after a reboot: %s of reboots.**\n\n", rep.Rate)
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	for _, kv := range [][2]string{
		{"node", rep.Node.Profile},
		{"runtime", rep.Runtime},
		{"pinning", rep.Pinning},
		{"DEL path measured", rep.DelPath},
		{"DEL paths seen", rep.DelPaths},
		{"pid_max (guest)", fmt.Sprint(rep.PIDMax) + pidMaxSource(rep)},
		{"pods", fmt.Sprintf("%s (extra ordinary pods: %d)", strings.Join(rep.Node.Pods, ", "), rep.Node.ExtraPods)},
		{"old PIDs are", pidSources(rep.Cycles)},
		{"cycles", fmt.Sprintf("%d of %d asked", len(rep.Cycles), rep.Reboots)},
		{"cycles with an old PID held at its DEL", rep.Reuse.String()},
		{"old sandboxes whose DEL entered the host", rep.PerSandbox.String()},
		{"wall time", rep.Finished.Sub(rep.Started).Round(1e9).String()},
	} {
		fmt.Fprintf(&b, "| %s | %s |\n", kv[0], mdCell(kv[1]))
	}
	if rep.SettleReboots > 0 {
		fmt.Fprintf(&b, "| settle reboots (not counted) | %d |\n", rep.SettleReboots)
	}
	if rep.Stopped != "" {
		fmt.Fprintf(&b, "\n**Stopped early:** %s. The numbers are of the cycles measured.\n", rep.Stopped)
	}
	if plotted {
		fmt.Fprintf(&b, "\n## Plot\n\n![per cycle: old sandbox PIDs against the PIDs handed out at DEL time](%s)\n\n", PlotFile)
		b.WriteString("Each column is one reboot. Dots are the old sandboxes' PIDs (the previous boot's); the blue\n" +
			"lines are the highest PID the new boot had handed out (`ns_last_pid`) when the first and the\n" +
			"last old sandbox's DEL ran. A PID above the lines was not reached yet: nothing could hold it.\n" +
			"Below them it was handed out to some task of the new boot; grey rings: that task had exited\n" +
			"by the time the DEL ran. Red triangle, a hit: a task in the host's netns held it and the DEL\n" +
			"entered that netns. Orange box, a near miss: a host-netns task held it while the DEL ran, but\n" +
			"CRI-O had checked the path a moment before, found it free, and passed an empty one (often the\n" +
			"CNI plugins of a DEL running in parallel). Purple square: held by a task in a pod's netns.\n")
	}
	b.WriteString("\n## Cycles\n\n")
	b.WriteString("| cycle | boot → DELs | old PIDs | ns_last_pid at DELs | held at DEL | DEL netns | host lo after DELs | lo set up | sdn liveness failed | sdn restarts | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range rep.Cycles {
		fmt.Fprintf(&b, "| %d%s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n",
			c.Index, hitMark(c), delTimes(c), oldPIDs(c), counters(c), mdCell(strings.Join(c.Holders(), "; ")), mdCell(delNetns(c)),
			upDown(c.Symptom.LoUp), yesNo(c.Symptom.LoSetUp), yesNo(c.Symptom.LivenessFailed), c.Symptom.SDNRestarts, mdCell(strings.Join(c.Notes, "; ")))
	}
	if who := holderTally(rep.Cycles); len(who) > 0 {
		b.WriteString("\n## Who took the old PIDs\n\n")
		for _, w := range who {
			fmt.Fprintf(&b, "- %s\n", w)
		}
	}
	b.WriteString("\n## CRI-O's DEL lines\n\n")
	for _, c := range rep.Cycles {
		for _, o := range c.Sandboxes {
			for _, j := range o.Journal {
				fmt.Fprintf(&b, "- cycle %d, %s: `%s` DEL netns %q, issued by %s; error: %s\n", c.Index, o.Pod, j.Time, j.Netns, j.Issuer, orNone(j.Error))
			}
		}
	}
	return b.String()
}

// PrintTable writes the per-cycle table for the terminal.
func PrintTable(w io.Writer, rep Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CYCLE\tHIT\tBOOT→DELS\tOLD PIDS\tNS_LAST_PID AT DELS\tHELD AT DEL\tHOST LO\tLO SET UP\tSDN LIVENESS\tSDN RESTARTS")
	for _, c := range rep.Cycles {
		held := strings.Join(c.Holders(), "; ")
		if held == "" {
			held = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", c.Index, yesNo(c.Hit), delTimes(c), oldPIDs(c), counters(c),
			held, upDown(c.Symptom.LoUp), yesNo(c.Symptom.LoSetUp), failedOK(c.Symptom.LivenessFailed), c.Symptom.SDNRestarts)
	}
	tw.Flush()
	fmt.Fprintf(w, "node %s, %s; %s; DEL path: %s\n", rep.Node.Profile, rep.Runtime, rep.Pinning, rep.DelPath)
	fmt.Fprintf(w, "DEL paths seen: %s; pid_max %d\n", rep.DelPaths, rep.PIDMax)
	fmt.Fprintf(w, "host lo taken down: %s\n", rep.Rate)
	fmt.Fprintf(w, "an old PID held at its DEL: %s\n", rep.Reuse)
	for _, c := range rep.Cycles {
		for _, n := range c.Notes {
			fmt.Fprintf(w, "cycle %d: note: %s\n", c.Index, n)
		}
	}
	if rep.Stopped != "" {
		fmt.Fprintf(w, "stopped early: %s\n", rep.Stopped)
	}
}

// pidSources says whose PIDs the old sandboxes are known by.
func pidSources(cycles []Cycle) string {
	for _, c := range cycles {
		for _, o := range c.Sandboxes {
			if o.PIDSource == "container" {
				return "the pods' container PIDs (this CRI-O runs no infra process; its DEL never names a PID anyway)"
			}
		}
	}
	return "the sandboxes' infra (pause) PIDs, which CRI-O keeps across the reboot"
}

func pidMaxSource(rep Report) string {
	if rep.Node.PIDMax != 0 {
		return " (--pid-max: kernel command line and /etc/sysctl.d)"
	}
	return " (the guest's own: systemd's 50-pid-max.conf)"
}

func hitMark(c Cycle) string {
	if c.Hit {
		return " **HIT**"
	}
	return ""
}

func delTimes(c Cycle) string {
	if c.LastDelSec == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f–%.1f s", c.FirstDelSec, c.LastDelSec)
}

func oldPIDs(c Cycle) string {
	var parts []string
	for _, o := range c.Sandboxes {
		parts = append(parts, fmt.Sprintf("%s=%d", o.Pod, o.PID))
	}
	return strings.Join(parts, " ")
}

func counters(c Cycle) string {
	if c.NsLastPIDMax == 0 {
		return "-"
	}
	s := fmt.Sprintf("%d–%d", c.NsLastPIDMin, c.NsLastPIDMax)
	if c.NsLastPIDMin == c.NsLastPIDMax {
		s = fmt.Sprint(c.NsLastPIDMax)
	}
	if c.Wrapped {
		s += " (wrapped)"
	}
	return s
}

func delNetns(c Cycle) string {
	var parts []string
	for _, o := range c.Sandboxes {
		path := o.DelNetns
		if o.Dels == 0 {
			path = "(no DEL)"
		} else if path == "" {
			path = `""`
		}
		parts = append(parts, fmt.Sprintf("%s: %s → %s", o.Pod, path, o.Entered))
	}
	return strings.Join(parts, "; ")
}

// holderTally counts who held old PIDs at their DEL, by process name and
// netns, most frequent first.
func holderTally(cycles []Cycle) []string {
	counts := map[string]int{}
	for _, c := range cycles {
		for _, o := range c.Sandboxes {
			if !o.Held || o.Holder == nil {
				continue
			}
			who := o.Holder.TGIDComm
			if who == "" {
				who = o.Holder.Comm
			}
			if o.Holder.TGID != 0 && o.Holder.TGID != o.Holder.PID {
				who += " (a thread: " + o.Holder.Comm + ")"
			}
			if o.Holder.HostNetns {
				who += ", host netns"
			} else {
				who += ", a pod's netns"
			}
			counts[who]++
		}
	}
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s: %d", k, counts[k]))
	}
	return out
}

func mdCell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

func upDown(up bool) string {
	if up {
		return "UP"
	}
	return "DOWN"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func failedOK(failed bool) string {
	if failed {
		return "failed"
	}
	return "ok"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
