package kube

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/node/agentapi"
)

// nodecri containers, trimmed from a run on the node.
const containersJSON = `{"runtime":{"apiVersion":"v1"},"containers":[
 {"id":"a","sandboxID":"s1","name":"sdn","attempt":0,"state":"CONTAINER_EXITED","labels":{"io.kubernetes.pod.name":"sdn-pidreuse-node"}},
 {"id":"b","sandboxID":"s1","name":"sdn","attempt":2,"state":"CONTAINER_RUNNING","labels":{"io.kubernetes.pod.name":"sdn-pidreuse-node"},"pid":611},
 {"id":"c","sandboxID":"s2","name":"web","attempt":0,"state":"CONTAINER_CREATED","labels":{"io.kubernetes.pod.name":"web-pidreuse-node"}}
]}`

func TestRunningRestartsAndPIDs(t *testing.T) {
	var out agentapi.CRIContainers
	if err := json.Unmarshal([]byte(containersJSON), &out); err != nil {
		t.Fatal(err)
	}
	cs := out.Containers
	if !AllRunning(cs, "sdn") {
		t.Error("sdn has a running container")
	}
	if AllRunning(cs, "sdn", "web") {
		t.Error("web is only created, not running")
	}
	if got := Restarts(cs, "sdn"); got != 2 {
		t.Errorf("sdn restarts %d, want 2", got)
	}
	if cs[1].PodName() != "sdn-pidreuse-node" {
		t.Errorf("pod name %q: kubelet suffixes static pods with the node name", cs[1].PodName())
	}
	if pids := ContainerPIDs(cs); len(pids) != 1 || pids[0] != 611 {
		t.Errorf("PIDs %v, want the running container's only", pids)
	}
}

// waitNode answers nodecri's waits from a list of answers, one per call,
// and notes the arguments.
type waitNode struct {
	harness.Node
	answers []string
	calls   *[][]string
}

func (waitNode) Name() string { return "wait" }

func (n waitNode) Exec(_ context.Context, argv ...string) (harness.ExecResult, error) {
	i := len(*n.calls)
	*n.calls = append(*n.calls, argv)
	return harness.ExecResult{Stdout: []byte(n.answers[min(i, len(n.answers)-1)])}, nil
}

// The node is asked to wait for the named pods within a window the
// caller's deadline bounds, and asked again until they run.
func TestWaitRunning(t *testing.T) {
	running := `{"containers":[{"id":"b","name":"sdn","state":"CONTAINER_RUNNING"},{"id":"c","name":"web","state":"CONTAINER_RUNNING"}]}`
	var calls [][]string
	n := waitNode{answers: []string{containersJSON, running}, calls: &calls}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := WaitRunning(ctx, n, nil, "web", "sdn")
	if err != nil || !AllRunning(cs, "web", "sdn") {
		t.Fatalf("WaitRunning = %+v, %v; want both running", cs, err)
	}
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2: %q", len(calls), calls)
	}
	argv := strings.Join(calls[0], " ")
	if !strings.HasPrefix(argv, "nodecri containers --running web,sdn --timeout ") {
		t.Fatalf("argv %q", argv)
	}
	window, err := time.ParseDuration(calls[0][len(calls[0])-1])
	if err != nil || window < time.Second || window > 5*time.Second {
		t.Errorf("window %v (%v): want at most the 5s the caller left, at least 1s", window, err)
	}

	// Never running: the caller's deadline ends it, with the pods named.
	calls = nil
	n = waitNode{answers: []string{containersJSON}, calls: &calls}
	ctx, cancel = context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := WaitRunning(ctx, n, nil, "web", "sdn"); err == nil || !strings.Contains(err.Error(), "[web sdn] not running") {
		t.Fatalf("error = %v, want the pods not running", err)
	}
}

func TestLineTimeAndCreatedAfter(t *testing.T) {
	clock := Clock{Wall: time.Date(2026, 12, 7, 23, 2, 0, 0, time.UTC)}
	failure := `Dec 07 23:01:53.315898 pidreuse-node kubelet[350]: I1207 23:01:53.252476     350 prober.go:116] Liveness probe for "sdn-pidreuse-node_kube-system(20c1):sdn" failed (failure)`
	at, err := LineTime(failure, clock)
	if want := time.Date(2026, 12, 7, 23, 1, 53, 315898000, time.UTC); err != nil || !at.Equal(want) {
		t.Fatalf("LineTime = %v, %v; want %v", at, err, want)
	}
	if _, err := LineTime("not a journal line", clock); err == nil {
		t.Error("a line without a time reads")
	}
	first := Container{Name: "sdn", CreatedAt: at.Add(-6 * time.Second)}
	restarted := Container{Name: "sdn", CreatedAt: at.Add(3 * time.Second)}
	web := Container{Name: "web", CreatedAt: at.Add(5 * time.Second)}
	if CreatedAfter([]Container{first, web}, "sdn", at) {
		t.Error("no sdn container came after the failure (web's does not count)")
	}
	if !CreatedAfter([]Container{first, restarted}, "sdn", at) {
		t.Error("the sdn container created 3 s after the failure is its restart")
	}
}
