package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pidreuse/pidreuse/harness/deadline"
	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/harness/odds"
	"github.com/pidreuse/pidreuse/harness/report"
	"github.com/pidreuse/pidreuse/harness/tier"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/images/layer"
	"github.com/pidreuse/pidreuse/internal/nodebin"
)

// oddsConfig is what `odds` takes from the command line.
type oddsConfig struct {
	node    string
	reboots int
	pidMax  int
	pods    int
	json    bool
	runID   string
	nodeFlags
}

func parseOddsFlags(args []string) (oddsConfig, error) {
	var c oddsConfig
	fs := newFlagSet("odds")
	fs.StringVar(&c.node, "node", crionode.CRIO117, "the CRI-O node profile ("+strings.Join(profileNames(), ", ")+")")
	fs.IntVar(&c.reboots, "reboots", 0, "how many reboot cycles to measure (required; ~2.5 min each under TCG)")
	fs.IntVar(&c.pidMax, "pid-max", 0, fmt.Sprintf("the guest's kernel.pid_max, from early boot (%d to %d; 0: the guest's own, systemd's 4194304)", crionode.PIDMaxMin, crionode.PIDMaxLimit))
	fs.IntVar(&c.pods, "pods", 3, "extra ordinary static pods besides the profile's own (web, batch) and the hostNetwork sdn pod")
	fs.BoolVar(&c.json, "json", false, "print the report as one JSON object instead of a table")
	c.nodeFlags.register(fs, "summary.md, odds.json, odds.svg")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageErr{fmt.Sprintf("odds: %v", err)}
	}
	switch {
	case fs.NArg() > 0:
		return c, usageErr{fmt.Sprintf("odds: unexpected argument %q", fs.Arg(0))}
	case c.reboots < 1:
		return c, usageErr{"odds: --reboots N is required (N >= 1): how many reboots to measure"}
	case c.pods < 0:
		return c, usageErr{"odds: --pods must be 0 or more"}
	case c.pidMax != 0 && (c.pidMax < crionode.PIDMaxMin || c.pidMax > crionode.PIDMaxLimit):
		return c, usageErr{fmt.Sprintf("odds: --pid-max %d: the kernel takes %d to %d", c.pidMax, crionode.PIDMaxMin, crionode.PIDMaxLimit)}
	}
	p, err := crionode.Lookup(c.node)
	if err != nil {
		return c, usageErr{"odds: --node: " + err.Error()}
	}
	// odds counts CRI-O's own DELs of old sandboxes after each reboot
	// (its recording plugin sits in CRI-O's pod network); on Docker and
	// containerd a reboot leaves DEL no path at all (kubelet-reboot).
	if !p.IsCRIO() {
		return c, usageErr{fmt.Sprintf("odds: --node %s runs %s: odds measures CRI-O's DELs after real reboots; on this node a reboot leaves DEL no path (see `pidreuse run --scenario kubelet-reboot`), and its race is stop-race", p.Name, p.Runtime)}
	}
	if err := c.nodeFlags.check(fs); err != nil {
		return c, err
	}
	c.runID = newRunID()
	return c, nil
}

// cmdOdds measures the natural odds: one VM, N real reboots, no forced
// PID reuse. It handles its own signals (main leaves them to it): the
// first Ctrl-C once cycles run stops after the current one, and the report
// of the cycles done is still written; a second Ctrl-C, or SIGTERM, or
// Ctrl-C before the first cycle, stops at once. Either way the VM, its
// disks and its dir are removed.
func cmdOdds(base context.Context, args []string) (int, error) {
	c, err := parseOddsFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return exitGood, nil
	}
	if err != nil {
		return exitUsage, err
	}
	profile, _ := crionode.Lookup(c.node)
	if err := profile.CheckSources(base); err != nil {
		return exitNoVerdict, err
	}
	if os.Geteuid() != 0 {
		return exitNoVerdict, errors.New("odds needs root (libvirt's system socket, image builds): run it as root")
	}
	if err := report.CheckDir(c.reportDir); err != nil {
		return exitNoVerdict, err
	}
	ctx, cancel := context.WithCancel(deadline.WithScale(base, c.timeoutScale))
	defer cancel()
	stop := make(chan struct{})
	var cycling atomic.Bool
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		stopping := false
		for sig := range sigs {
			if sig == syscall.SIGINT && cycling.Load() && !stopping {
				stopping = true
				close(stop)
				progressLine("odds: Ctrl-C: stopping after the current cycle (Ctrl-C again to stop now)")
				continue
			}
			progressLine("odds: stopping now")
			cancel()
			return
		}
	}()

	agentPath, err := findAgent(c.agentPath)
	if err != nil {
		return exitNoVerdict, err
	}
	files, err := profile.OddsFiles(crionode.OddsOptions{ExtraPods: c.pods, PIDMax: c.pidMax, Recorder: filepath.Join(filepath.Dir(agentPath), nodebin.CNIRecord)})
	if err != nil {
		return exitNoVerdict, err
	}
	lv, err := libvirt.ConnectURI(ctx, c.libvirtURI, c.libvirtSocket)
	if err != nil {
		return exitNoVerdict, err
	}
	lv.Close()
	img, err := crionode.BuildImage(ctx, profile, filepath.Dir(agentPath), progressLine)
	if err != nil {
		return exitNoVerdict, err
	}
	cmdline := img.Manifest.KernelCmdline
	if c.pidMax != 0 {
		cmdline += " " + crionode.PIDMaxArg(c.pidMax)
	}
	// Locked for the run's life, like run's: `clean` leaves a live odds
	// run's dir (and the VM's overlay in it) alone however long it runs.
	rd, err := openRunDir(c.workDir, &c.runID)
	if err != nil {
		return exitNoVerdict, err
	}
	defer rd.close()
	workDir := rd.path
	progressLine(fmt.Sprintf("odds %s: work dir %s (locked while the run lives)", c.runID, workDir))
	started := time.Now()
	node, err := vm.Start(ctx, vm.Options{
		Name: "pidreuse-" + c.runID + "-odds", Dir: filepath.Join(workDir, "odds"), Image: img, URI: c.libvirtURI, Socket: c.libvirtSocket,
		RebootMode: c.rebootMode, Keep: c.keep == tier.KeepAlways, MayKeep: c.keep != tier.KeepNever, Progress: progressLine, Cmdline: cmdline,
		Layer: layer.Layer{Files: files}, Artifacts: profile.Artifacts(),
	})
	if err != nil {
		return exitNoVerdict, err
	}
	pods := append(profile.Pods(), crionode.OddsPods(c.pods)...)
	rep, runErr := odds.Run(ctx, node, odds.Options{
		Node:    odds.Node{Profile: profile.Name, Pods: pods, ExtraPods: c.pods, PIDMax: c.pidMax, Cmdline: cmdline},
		Reboots: c.reboots, Stop: stop, Progress: progressLine,
		OnReady: func() { cycling.Store(true) },
		OnCycle: func(cy odds.Cycle, soFar odds.Rate) {
			what := "no hit"
			if cy.Hit {
				what = "HIT: " + strings.Join(cy.Holders(), "; ")
			} else if cy.Held > 0 {
				what = "no hit; held: " + strings.Join(cy.Holders(), "; ")
			}
			progressLine(fmt.Sprintf("odds: cycle %d/%d done in %s: %s; host lo %s; running rate %s",
				cy.Index, c.reboots, time.Duration(cy.DurationSec*float64(time.Second)).Round(time.Second), what, upDownWord(cy.Symptom.LoUp), soFar))
		},
	})
	dir := filepath.Join(c.reportDir, c.runID)
	if runErr != nil && ctx.Err() == nil {
		// A cycle that could not be measured: keep the node's logs with
		// the report (not in the work dir, which goes).
		art := filepath.Join(dir, "artifacts")
		if err := node.CollectArtifacts(context.Background(), art); err != nil {
			progressLine("collect artifacts: " + err.Error())
		}
		progressLine("artifacts of the failed cycle: " + art)
		if c.keep == tier.KeepOnFailure {
			node.KeepRunning()
		}
	}
	if err := node.Close(context.Background()); err != nil {
		progressLine(err.Error())
	}
	summary, err := odds.Write(dir, rep)
	if err != nil {
		return exitNoVerdict, err
	}
	if c.json {
		out := struct {
			odds.Report
			ReportDir string `json:"reportDir"`
		}{rep, dir}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return exitNoVerdict, err
		}
	} else {
		odds.PrintTable(os.Stdout, rep)
	}
	progressLine(fmt.Sprintf("odds: report %s (%d cycles in %s)", summary, len(rep.Cycles), time.Since(started).Round(time.Second)))
	switch {
	case runErr != nil && ctx.Err() != nil:
		return exitNoVerdict, fmt.Errorf("interrupted: the report has the %d cycles done", len(rep.Cycles))
	case runErr != nil:
		return exitNoVerdict, fmt.Errorf("%s: the report has the %d cycles done", rep.Stopped, len(rep.Cycles))
	case len(rep.Cycles) < c.reboots:
		return exitNoVerdict, fmt.Errorf("%s: the report has the %d cycles done", rep.Stopped, len(rep.Cycles))
	}
	return exitGood, nil
}

func upDownWord(up bool) string {
	if up {
		return "UP"
	}
	return "DOWN"
}
