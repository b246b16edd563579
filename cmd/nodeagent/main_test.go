package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

func TestStepAnswersAsTheProcessWould(t *testing.T) {
	ctx := context.Background()
	resp := step(ctx, []string{"link", "show", "lo"})
	var l agentapi.Link
	if resp.ExitCode != 0 || json.Unmarshal(resp.Stdout, &l) != nil || l.Name != "lo" {
		t.Fatalf("link show lo: %+v", resp)
	}
	if !strings.HasSuffix(string(resp.Stdout), "}\n") || strings.Count(string(resp.Stdout), "\n") != 1 {
		t.Errorf("link show lo: stdout %q is not one JSON line", resp.Stdout)
	}
	for _, tt := range []struct {
		args []string
		exit int
		msg  string
	}{
		{[]string{"nonsense"}, 2, `unknown step "nonsense"`},
		{[]string{"pid", "status", "--pid", "x"}, 2, "invalid value"},
		{[]string{"pid", "status", "--pid", "1", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"link", "show", "no-such-link0"}, 1, "no-such-link0"},
	} {
		resp := step(ctx, tt.args)
		if resp.ExitCode != tt.exit || len(resp.Stdout) != 0 || !strings.Contains(string(resp.Stderr), tt.msg) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, resp.ExitCode, resp.Stdout, resp.Stderr, tt.exit, tt.msg)
		}
	}
}

// Only steps that fork nothing and place no PID are answered by the
// serving process itself.
func TestInProcessSteps(t *testing.T) {
	ctx := context.Background()
	for _, argv := range [][]string{
		{"nodeagent", "link", "show", "lo"},
		{"nodeagent", "link", "show"},
	} {
		resp, ok := inProcess(ctx, argv)
		if !ok || resp.ExitCode != 0 {
			t.Errorf("%v: ok %v, %+v; want it answered in process", argv, ok, resp)
		}
	}
	// These read /proc/1/ns/net, which a test may not be allowed to: only
	// who answers is checked.
	for _, argv := range [][]string{
		{"nodeagent", "boot"},
		{"nodeagent", "pid", "status", "--pid", strconv.Itoa(os.Getpid())},
		{"nodeagent", "probe", "--timeout", "1ms"},
	} {
		if _, ok := inProcess(ctx, argv); !ok {
			t.Errorf("%v was not answered in process", argv)
		}
	}
	for _, argv := range [][]string{
		{"nodeagent", "pid", "reuse", "--pid", "30000"},
		{"nodeagent", "sandbox", "create", "--id", "x"},
		{"nodeagent", "cni", "del", "--id", "x"},
		{"nodeagent", "pid", "squat", "--pids-file", "f"},
		{"nodeagent", "serve"},
		{"nodeagent"},
		{"sh", "-c", "true"},
	} {
		if _, ok := inProcess(ctx, argv); ok {
			t.Errorf("%v was answered in process; it must run as a process of its own", argv)
		}
	}
}
