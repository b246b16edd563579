// Command nodecri reads a CRI runtime's own view of the node (CRI-O's) over
// its gRPC socket, in runtime.v1 or runtime.v1alpha2 (whichever it
// answers), and prints it as one JSON object (node/agentapi): the node
// side of harness/kube. It replaces crictl in the node: no crictl that can
// be had speaks v1alpha2, the only version CRI-O 1.16/1.17 serve.
//
//	nodecri version|pods|containers [--endpoint URL] [--timeout 10s]
//	nodecri containers --running NAME[,NAME…] [--timeout 10s]
//
// With --running it reads the containers every 250 ms until the named ones
// run or the timeout passes, and prints the last list either way (the
// caller judges it): the harness waits for the pods so, in one process
// instead of one per look.
//
// Without --endpoint it asks the runtime /etc/crictl.yaml names (the node
// images write it for their runtime), else CRI-O's socket.
//
// It is a binary of its own, not a nodeagent step: gRPC and the CRI types
// cost every process that links them ~20 ms of start-up, and the node
// agent runs dozens of times per scenario on the sandbox tier, which has
// no CRI runtime at all.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pidreuse/pidreuse/node/cri"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out, code, err := run(ctx, os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "nodecri: %v\n", err)
		os.Exit(code)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "nodecri: write result: %v\n", err)
		os.Exit(1)
	}
}

// run returns the step's document, or an error and the exit code: 2 for
// bad input, 1 for a runtime that could not be read.
func run(ctx context.Context, args []string) (any, int, error) {
	if len(args) == 0 {
		return nil, 2, fmt.Errorf("usage: nodecri version|pods|containers [--endpoint URL] [--timeout D]")
	}
	sub := args[0]
	switch sub {
	case "version", "pods", "containers":
	default:
		return nil, 2, fmt.Errorf("unknown step %q: use version, pods or containers", sub)
	}
	fs := flag.NewFlagSet(sub, flag.ContinueOnError)
	endpoint := fs.String("endpoint", "", "the runtime's CRI socket (default: "+cri.CrictlConfig+"'s runtime-endpoint, else "+cri.DefaultEndpoint+")")
	timeout := fs.Duration("timeout", 10*time.Second, "for the whole step: connect, version detection and every call")
	var running []string
	if sub == "containers" {
		fs.Func("running", "wait until the containers NAME[,NAME…] run (or the timeout passes), then print the list", func(v string) error {
			for _, n := range strings.Split(v, ",") {
				if n = strings.TrimSpace(n); n == "" {
					return fmt.Errorf("empty container name in %q", v)
				}
				running = append(running, n)
			}
			return nil
		})
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, 2, err
	}
	if fs.NArg() > 0 {
		return nil, 2, fmt.Errorf("%s: unexpected argument %q", sub, fs.Arg(0))
	}
	if *endpoint == "" {
		*endpoint = defaultEndpoint(cri.CrictlConfig)
	}
	if len(running) > 0 {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		out, err := cri.WaitRunning(ctx, *endpoint, running, 250*time.Millisecond)
		if err != nil {
			return nil, 1, err
		}
		return out, 0, nil
	}
	out, err := step(ctx, sub, *endpoint, *timeout)
	if err != nil {
		return nil, 1, err
	}
	return out, 0, nil
}

// defaultEndpoint is the runtime-endpoint of the crictl config at path,
// or CRI-O's socket when there is none.
func defaultEndpoint(path string) string {
	data, err := os.ReadFile(path)
	if err == nil {
		if e := cri.EndpointFromCrictlConfig(data); e != "" {
			return e
		}
	}
	return cri.DefaultEndpoint
}

// step runs one step within timeout: the harness calls it over SSH and
// must get an answer, not a hung session, from a stuck runtime.
func step(ctx context.Context, sub, endpoint string, timeout time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := cri.Dial(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	switch sub {
	case "pods":
		return c.Pods(ctx)
	case "containers":
		return c.Containers(ctx)
	}
	return c.Runtime(), nil
}
