package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// hangingSteps is a node whose CNI plugin never returns and ignores its
// deadline: libcni waiting for output a plugin's child holds open.
type hangingSteps struct{ created int }

func (h *hangingSteps) CreateSandbox(_ context.Context, id string, mode agentapi.NetnsMode, pid int) (agentapi.Sandbox, error) {
	h.created++
	return agentapi.Sandbox{ID: id, Mode: mode, HolderPID: pid, NetnsPath: "/proc/1/ns/net"}, nil
}
func (h *hangingSteps) CNI(context.Context, string, CNIRequest) (agentapi.CNIResult, error) {
	select {}
}
func (h *hangingSteps) Boot() (agentapi.Boot, error)              { return agentapi.Boot{}, nil }
func (h *hangingSteps) ShowLink(string) (agentapi.Link, error)    { return agentapi.Link{Up: true}, nil }
func (h *hangingSteps) PIDStatus(int) (agentapi.PIDStatus, error) { return agentapi.PIDStatus{}, nil }
func (h *hangingSteps) ReusePID(context.Context, int) (agentapi.PIDReuse, error) {
	return agentapi.PIDReuse{}, nil
}
func (h *hangingSteps) RestoreLo(context.Context, time.Duration, time.Duration) (agentapi.LoRestore, error) {
	return agentapi.LoRestore{}, nil
}

// A step that never returns, not even at its deadline, is abandoned after
// the grace: the trial says which step timed out, and no later trial is
// played.
func TestPlayTrialsAbandonsAStepPastItsDeadline(t *testing.T) {
	steps := &hangingSteps{}
	req := agentapi.TrialsRequest{StepTimeoutMs: 50, Trials: []agentapi.TrialSpec{{ID: "a", Mode: agentapi.Ephemeral}, {ID: "b", Mode: agentapi.Ephemeral}}}
	start := time.Now()
	rep, err := PlayTrials(context.Background(), steps, "prepare", req)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	if len(rep.Trials) != 1 || steps.created != 1 {
		t.Fatalf("played %d trials, created %d sandboxes: want the first only", len(rep.Trials), steps.created)
	}
	tr := rep.Trials[0]
	if tr.TimedOut != "nodeagent cni add" || !strings.Contains(tr.Error, "timed out: nodeagent cni add after 50ms") || tr.Sandbox == nil || tr.Add != nil {
		t.Fatalf("report %+v", tr)
	}
}

func TestPlayTrialsRefusesBadRequests(t *testing.T) {
	if _, err := PlayTrials(context.Background(), &hangingSteps{}, "reboot", agentapi.TrialsRequest{StepTimeoutMs: 1}); err == nil {
		t.Error("unknown phase accepted")
	}
	if _, err := PlayTrials(context.Background(), &hangingSteps{}, "finish", agentapi.TrialsRequest{}); err == nil {
		t.Error("no step timeout accepted")
	}
}

// A call cancelled while a step hangs ends that step with the
// cancellation, not a zero result taken for the step's answer.
func TestPlayTrialsCancelledMidStep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req := agentapi.TrialsRequest{StepTimeoutMs: 60_000, Trials: []agentapi.TrialSpec{{ID: "a"}, {ID: "b"}}}
	rep, err := PlayTrials(ctx, &hangingSteps{}, "prepare", req)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Trials) != 1 || rep.Trials[0].Add != nil || rep.Trials[0].TimedOut != "" || !strings.Contains(rep.Trials[0].Error, "context canceled") {
		t.Fatalf("report %+v", rep.Trials)
	}
}
