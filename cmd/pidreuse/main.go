// Command pidreuse reproduces the CNI-DEL-after-reboot loopback bug on a
// throw-away node and says whether the host's lo survived.
//
//	pidreuse run    --tier sandbox|vm --scenario NAME|all [--plugin-version V|all] [--cni-bin-dir DIR] [--json]
//	pidreuse bisect --tier sandbox|vm --scenario NAME --cni-bin-dir DIR
//	pidreuse plugins [--plugin-version V|all]
//	pidreuse nodes
//	pidreuse image build|hash [--node NAME]
//	pidreuse build crio --src DIR --out DIR
//	pidreuse clean
//	pidreuse odds   --node NAME --reboots N [--pid-max P] [--pods K] [--json]
//
// Exit codes: 0 every scenario matched its expectation (bisect: host lo
// survived), 1 a mismatch (bisect: lo went down), 125 no verdict (bad
// input, a node that would not start, a step that failed), 2 usage.
// build: 0 built, 125 the tree does not build, 2 usage. odds: 0 every
// cycle measured, 125 stopped early (the report has the cycles done).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes, chosen for `git bisect run`.
const (
	exitGood      = 0
	exitBad       = 1
	exitUsage     = 2
	exitNoVerdict = 125
)

// noVerdict marks an error that prevented a verdict.
type noVerdict struct{ err error }

func (e noVerdict) Error() string { return e.err.Error() }
func (e noVerdict) Unwrap() error { return e.err }

type usageErr struct{ msg string }

func (e usageErr) Error() string { return e.msg }

func main() {
	ctx, stop := context.Background(), context.CancelFunc(func() {})
	// odds handles its signals itself: its first Ctrl-C ends the run after
	// the current cycle, not at once.
	if len(os.Args) < 2 || os.Args[1] != "odds" {
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	}
	defer stop()
	code, err := dispatch(ctx, os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "pidreuse: %v\n", err)
		var ue usageErr
		bisecting := len(os.Args) > 1 && os.Args[1] == "bisect"
		switch {
		case errors.As(err, &ue) && !bisecting:
			// git bisect run treats 2 as "bad": in bisect mode even a
			// usage error must say "skip" (125).
			code = exitUsage
		case errors.As(err, &ue):
			code = exitNoVerdict
		case code == exitGood:
			// Any error that is not a verdict means no verdict.
			code = exitNoVerdict
		}
	}
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		printHelp(os.Stderr)
		return exitUsage, usageErr{"no command given"}
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], false)
	case "bisect":
		return cmdRun(ctx, args[1:], true)
	case "plugins":
		return cmdPlugins(ctx, args[1:])
	case "image":
		return cmdImage(ctx, args[1:])
	case "clean":
		return cmdClean(ctx, args[1:])
	case "build":
		return cmdBuild(ctx, args[1:])
	case "nodes":
		return cmdNodes(ctx, args[1:])
	case "odds":
		return cmdOdds(ctx, args[1:])
	case "-h", "--help", "help":
		if len(args) > 1 {
			return dispatch(ctx, []string{args[1], "-h"})
		}
		printHelp(os.Stdout)
		return exitGood, nil
	}
	return exitUsage, usageErr{fmt.Sprintf("unknown command %q: use one of %s (pidreuse help)", args[0], commandNames())}
}
