// Command nodeagent runs every step of a scenario that has to happen inside
// a node — a VM or a sandbox — and prints one JSON object per step. The
// harness outside the node only starts nodes, calls these steps and reboots.
//
//	nodeagent sandbox create --id ID --mode ephemeral|pinned [--pid N]
//	nodeagent cni add|del --id ID --cni-bin-dir DIR[:DIR] [--plugins loopback] [--netns PATH]
//	nodeagent pid reuse --pid N
//	nodeagent pid status --pid N
//	nodeagent pid squat --pids-file FILE
//	nodeagent link show|up|down [NAME]
//	nodeagent probe [--addr IP|auto] [--timeout 2s]
//	nodeagent boot
//	nodeagent trials prepare|finish --request JSON   (a phase of several scenarios in one call)
//	nodeagent lo restore [--down-timeout 100ms] [--up-timeout 5s]
//	nodeagent serve      (runs commands, one per JSON request line: node/execserve)
//
// A CRI runtime's state is read by its sibling, cmd/nodecri.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pidreuse/pidreuse/node/agent"
	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/node/execserve"
	"github.com/pidreuse/pidreuse/node/sandboxinit"
)

// usageError is bad input: exit 2, like flag's own errors.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	resp := step(ctx, os.Args[1:])
	os.Stdout.Write(resp.Stdout)
	os.Stderr.Write(resp.Stderr)
	os.Exit(resp.ExitCode)
}

// step runs one step and says what the process would print and exit with:
// one JSON line on stdout, or an error on stderr (exit 2 for bad input,
// like flag's own errors, 1 for the rest).
func step(ctx context.Context, args []string) execserve.Response {
	var resp execserve.Response
	out, err := run(ctx, args)
	if err == nil && out != nil {
		var data []byte
		if data, err = json.Marshal(out); err == nil {
			resp.Stdout = append(data, '\n')
		} else {
			err = fmt.Errorf("write result: %w", err)
		}
	}
	if err != nil {
		resp.Stdout = nil
		resp.Stderr = fmt.Appendf(nil, "nodeagent: %v\n", err)
		resp.ExitCode = 1
		var ue usageError
		if errors.As(err, &ue) {
			resp.ExitCode = 2
		}
	}
	return resp
}

// inProcessSteps are the steps `nodeagent serve` answers itself: reads and
// netlink calls that fork nothing and place no PID. A fresh process costs
// ~0.1 s under TCG, and a scenario asks these dozens of times; the steps
// that start processes (sandboxes, holders, CNI plugins) keep a process of
// their own, as each step had before.
var inProcessSteps = map[string]bool{
	"boot": true, "link show": true, "link up": true, "link down": true,
	"pid status": true, "probe": true, "lo restore": true,
}

// inProcess is serve's execserve.InProcess.
func inProcess(ctx context.Context, argv []string) (execserve.Response, bool) {
	if len(argv) < 2 || argv[0] != "nodeagent" {
		return execserve.Response{}, false
	}
	name := argv[1]
	if len(argv) > 2 && !strings.HasPrefix(argv[2], "-") {
		name += " " + argv[2]
	}
	if !inProcessSteps[name] {
		return execserve.Response{}, false
	}
	return step(ctx, argv[1:]), true
}

func run(ctx context.Context, args []string) (any, error) {
	if len(args) == 0 {
		return nil, usageError{"usage: nodeagent sandbox|cni|pid|link|probe|boot ... (see the package doc)"}
	}
	stateDir := os.Getenv("PIDREUSE_STATE_DIR")
	if stateDir == "" {
		stateDir = agent.DefaultStateDir
	}
	a := &agent.Agent{StateDir: stateDir}

	cmd, rest := args[0], args[1:]
	sub := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		sub, rest = rest[0], rest[1:]
	}
	switch cmd + " " + sub {
	case "sandbox create":
		fs := newFlags("sandbox create")
		id := fs.String("id", "", "sandbox id")
		mode := fs.String("mode", "ephemeral", "ephemeral or pinned")
		pid := fs.Int("pid", 0, "give the holder exactly this PID (0: any)")
		if err := parse(fs, rest); err != nil {
			return nil, err
		}
		return a.CreateSandbox(ctx, *id, agentapi.NetnsMode(*mode), *pid)
	case "cni add", "cni del":
		fs := newFlags("cni " + sub)
		id := fs.String("id", "", "sandbox id")
		binDir := fs.String("cni-bin-dir", "", "plugin dirs, colon-separated, searched in order")
		plugins := fs.String("plugins", "loopback", "network list, comma-separated, in ADD order")
		netns := fs.String("netns", "", "netns path (default: the one recorded at sandbox create)")
		if err := parse(fs, rest); err != nil {
			return nil, err
		}
		if *binDir == "" {
			return nil, usageError{"cni: --cni-bin-dir is required"}
		}
		res, err := a.CNI(ctx, strings.ToUpper(sub), agent.CNIRequest{
			ID: *id, NetnsPath: *netns, Plugins: strings.Split(*plugins, ","),
			PluginDirs: pluginDirs(*binDir),
		})
		if err != nil {
			return nil, err
		}
		if res.Command == "ADD" && res.Error != "" {
			// ADD must work for the scenario to mean anything.
			return nil, fmt.Errorf("cni ADD %s: %s", res.ID, res.Error)
		}
		return res, nil
	case "pid reuse", "pid status":
		fs := newFlags("pid " + sub)
		pid := fs.Int("pid", 0, "the PID")
		if err := parse(fs, rest); err != nil {
			return nil, err
		}
		if sub == "reuse" {
			return a.ReusePID(ctx, *pid)
		}
		return agent.PIDStatus(*pid)
	case "pid squat":
		fs := newFlags("pid squat")
		file := fs.String("pids-file", "", "file of PIDs, separated by white space")
		if err := parse(fs, rest); err != nil {
			return nil, err
		}
		pids, err := readPIDs(*file)
		if err != nil {
			return nil, err
		}
		return a.Squat(ctx, pids), nil
	case "link show", "link up", "link down":
		name := "lo"
		if len(rest) > 0 {
			name = rest[0]
		}
		if sub == "show" {
			return agent.ShowLink(name)
		}
		return agent.SetLink(name, sub == "up")
	case "probe ":
		fs := newFlags("probe")
		addr := fs.String("addr", "auto", "one of the node's own addresses, or auto")
		timeout := fs.Duration("timeout", 2*time.Second, "connect timeout")
		if err := parse(fs, rest); err != nil {
			return nil, err
		}
		return agent.Probe(ctx, *addr, *timeout)
	case "boot ":
		return agent.BootInfo()
	case "trials prepare", "trials finish":
		fs := newFlags("trials " + sub)
		request := fs.String("request", "", "the trials, as agentapi.TrialsRequest JSON")
		if err := parse(fs, rest); err != nil {
			return nil, err
		}
		var req agentapi.TrialsRequest
		if err := json.Unmarshal([]byte(*request), &req); err != nil {
			return nil, usageError{fmt.Sprintf("trials %s: --request: %v", sub, err)}
		}
		for i := range req.Trials {
			req.Trials[i].PluginDirs = pluginDirs(strings.Join(req.Trials[i].PluginDirs, string(filepath.ListSeparator)))
		}
		a.OneProcessManySteps = true
		return agent.PlayTrials(ctx, a, sub, req)
	case "lo restore":
		fs := newFlags("lo restore")
		down := fs.Duration("down-timeout", 100*time.Millisecond, "the probe while lo is down")
		up := fs.Duration("up-timeout", 5*time.Second, "the probe after lo is set up")
		if err := parse(fs, rest); err != nil {
			return nil, err
		}
		return agent.RestoreLo(ctx, *down, *up)
	case "init ":
		// PID 1 of a sandbox node (see harness/sandbox).
		return nil, sandboxinit.RunInit(ctx, rest)
	case "serve ":
		return nil, execserve.Serve(ctx, os.Stdin, os.Stdout, inProcess)
	}
	return nil, usageError{fmt.Sprintf("unknown step %q", strings.TrimSpace(cmd+" "+sub))}
}

// pluginDirs appends the agent's own directory, where our fault injector
// (cni-failonce, type "failonce") lives next to it; the user's dirs come
// first so their plugins win.
func pluginDirs(spec string) []string {
	dirs := filepath.SplitList(spec)
	if self, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(self))
	}
	return dirs
}

// readPIDs reads a file of PIDs separated by white space.
func readPIDs(file string) ([]int, error) {
	if file == "" {
		return nil, usageError{"pid squat: --pids-file is required"}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("pid squat: %w", err)
	}
	var pids []int
	for _, w := range strings.Fields(string(data)) {
		p, err := strconv.Atoi(w)
		if err != nil || p < 1 {
			return nil, fmt.Errorf("pid squat: %s: %q is not a PID", file, w)
		}
		pids = append(pids, p)
	}
	return pids, nil
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}
