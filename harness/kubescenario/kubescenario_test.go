package kubescenario

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/scenarios"
)

// noNode fails every command: Run must not need one to refuse a scenario
// that is not its own.
type noNode struct{ harness.Node }

func (noNode) Name() string { return "none" }

func TestRunRefusesScenariosOfTheRunner(t *testing.T) {
	scs, err := scenarios.Select("ephemeral-reused", scenarios.TierSandbox)
	if err != nil {
		t.Fatal(err)
	}
	res := Run(context.Background(), noNode{}, scs[0], Options{})
	if res.Error == "" || !strings.Contains(res.Error, "the runner plays it") || res.Pass {
		t.Fatalf("Run = error %q pass %v: want no verdict", res.Error, res.Pass)
	}
}

func TestLegacySymptomNeedsPlugins(t *testing.T) {
	scs, err := scenarios.Select("legacy-symptom", scenarios.TierVM)
	if err != nil {
		t.Fatal(err)
	}
	res := Run(context.Background(), noNode{}, scs[0], Options{})
	if !strings.Contains(res.Error, "no CNI plugin dir") || res.Verdict() != "NO-VERDICT" {
		t.Fatalf("Run = %+v", res)
	}
}

// clockNode answers the two questions markReady asks: its clocks, and
// when crio and kubelet became active (µs since its boot).
type clockNode struct {
	harness.Node
	uptime            float64
	crioUs, kubeletUs int64
}

func (clockNode) Name() string { return "clock" }

func (n clockNode) Exec(_ context.Context, argv ...string) (harness.ExecResult, error) {
	switch argv[0] {
	case "sh":
		return harness.ExecResult{Stdout: []byte(fmt.Sprintf("%.2f 1.00\n%d.000000000\n", n.uptime, time.Now().Unix()))}, nil
	case "systemctl":
		out := fmt.Sprintf("Id=crio.service\nActiveState=active\nNRestarts=0\nActiveEnterTimestampMonotonic=%d\n\nId=kubelet.service\nActiveState=active\nNRestarts=0\nActiveEnterTimestampMonotonic=%d\n", n.crioUs, n.kubeletUs)
		return harness.ExecResult{Stdout: []byte(out)}, nil
	}
	return harness.ExecResult{}, fmt.Errorf("unexpected %v", argv)
}

func TestReadyIsPlacedOnTheHarnessClock(t *testing.T) {
	// Booted 100 s ago, CRI-O ready at 30 s, kubelet at 31 s: 69 s ago.
	node := clockNode{uptime: 100, crioUs: 30_000_000, kubeletUs: 31_000_000}
	started := time.Now().Add(-90 * time.Second)
	p := &play{node: node, start: time.Now(), opts: Options{Started: started, SSHUp: started.Add(20 * time.Second)}}
	p.markReady(context.Background())
	if len(p.res.Timeline) != 1 || p.res.Timeline[0].Step != runner.StepReady {
		t.Fatalf("timeline %+v", p.res.Timeline)
	}
	if ago := time.Since(p.res.Timeline[0].At); ago < 68*time.Second || ago > 71*time.Second {
		t.Errorf("ready %s ago, want ~69 s", ago)
	}

	// A second scenario on the node: the runtime was ready long before it
	// began, and its phases must not reach back there.
	p = &play{node: node, start: time.Now()}
	p.markReady(context.Background())
	if got := p.res.Timeline[0]; got.At.Before(p.start) || !strings.Contains(got.Detail, "before this scenario began") {
		t.Errorf("ready step %+v of a scenario that began at %s", got, p.start)
	}
}

func TestRunningContainer(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	cs := []kube.Container{
		{ID: "old", Name: "sdn", State: "CONTAINER_EXITED", CreatedAt: t0.Add(2 * time.Second)},
		{ID: "a", Name: "sdn", State: kube.Running, CreatedAt: t0},
		{ID: "b", Name: "sdn", State: kube.Running, CreatedAt: t0.Add(time.Second)},
		{ID: "w", Name: "web", State: kube.Running, CreatedAt: t0.Add(3 * time.Second)},
	}
	if c, ok := runningContainer(cs, "sdn"); !ok || c.ID != "b" {
		t.Errorf("got %q %v, want the newest running sdn container b", c.ID, ok)
	}
	if _, ok := runningContainer(cs, "batch"); ok {
		t.Error("found a batch container that does not run")
	}
}

// probeNode runs one sdn container (attempt 1) whose log holds answers at
// the given times of the node's clock, which reads as the harness's.
type probeNode struct {
	harness.Node
	answers []time.Time
	read    *[]string // the log files read
}

func (probeNode) Name() string { return "probe" }

func (n probeNode) Exec(_ context.Context, argv ...string) (harness.ExecResult, error) {
	switch argv[0] {
	case "sh":
		return harness.ExecResult{Stdout: []byte(fmt.Sprintf("100.00 1.00\n%d.%09d\n", time.Now().Unix(), time.Now().Nanosecond()))}, nil
	case "nodecri":
		return harness.ExecResult{Stdout: []byte(`{"containers":[{"id":"sdn1","name":"sdn","attempt":1,"state":"CONTAINER_RUNNING","labels":{"io.kubernetes.pod.namespace":"kube-system","io.kubernetes.pod.name":"sdn-pidreuse-node","io.kubernetes.pod.uid":"uid1"}}]}`)}, nil
	case "grep":
		*n.read = append(*n.read, argv[len(argv)-1])
		var log strings.Builder
		for _, t := range n.answers {
			fmt.Fprintf(&log, "%s stdout F podserver: healthz answered at %s for 10.0.2.15:40000\n", t.Format(time.RFC3339Nano), t.UTC().Format(time.RFC3339Nano))
		}
		if log.Len() == 0 {
			return harness.ExecResult{ExitCode: 1}, nil
		}
		return harness.ExecResult{Stdout: []byte(log.String())}, nil
	}
	return harness.ExecResult{}, fmt.Errorf("unexpected %v", argv)
}

// Only answers at or after the moment count; the wait ends as soon as
// there are enough, or at its limit with what there is.
func TestWaitProbesAnswered(t *testing.T) {
	now := time.Now()
	since := now.Add(-10 * time.Second)
	var read []string
	node := probeNode{answers: []time.Time{now.Add(-12 * time.Second), now.Add(-7 * time.Second), now.Add(-2 * time.Second)}, read: &read}
	p := &play{node: node}
	w, err := p.waitProbesAnswered(context.Background(), since, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !w.enough() || len(w.answered) != 2 || w.sdn.ID != "sdn1" || time.Since(now) > 5*time.Second {
		t.Fatalf("watch %s (enough %v) after %s: want the two answers after since, at once", w, w.enough(), time.Since(now))
	}
	if want := "/var/log/pods/kube-system_sdn-pidreuse-node_uid1/sdn/1.log"; len(read) == 0 || read[0] != want {
		t.Errorf("read %q, want %s", read, want)
	}

	// One answer after since, and the limit passed: not enough, no wait.
	node.answers = node.answers[:2]
	p = &play{node: node}
	w, err = p.waitProbesAnswered(context.Background(), since, now)
	if err != nil {
		t.Fatal(err)
	}
	if w.enough() || len(w.answered) != 1 || !strings.Contains(w.String(), "answered 1 probe sent") {
		t.Fatalf("watch %s: want one answer, not enough", w)
	}
}

// A restart kubelet made before the harness began to wait counts when it
// follows a failure logged after the DELs; one after an earlier failure
// does not, nor does any without a DEL time.
func TestRestartedAfterDELs(t *testing.T) {
	// The node's clock and the harness's agree here.
	now := time.Date(2026, 12, 7, 23, 2, 0, 0, time.UTC)
	clock := kube.Clock{At: now, Wall: now}
	early := `Dec 07 23:01:40.000000 pidreuse-node kubelet[350]: I1207 prober.go:116] Liveness probe for "sdn-pidreuse-node_kube-system(1):sdn" failed (failure)`
	late := `Dec 07 23:01:53.315898 pidreuse-node kubelet[350]: I1207 prober.go:116] Liveness probe for "sdn-pidreuse-node_kube-system(1):sdn" failed (failure)`
	dels := time.Date(2026, 12, 7, 23, 1, 49, 0, time.UTC)
	sdn := func(at string) kube.Container {
		c, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		return kube.Container{Name: "sdn", CreatedAt: c}
	}
	p := &play{delsOver: dels}
	if !p.restartedAfterDELs([]kube.Container{sdn("2026-12-07T23:01:47Z"), sdn("2026-12-07T23:01:56Z")}, []string{early, late}, clock) {
		t.Error("the container created after the failure past the DELs is kubelet's restart")
	}
	if p.restartedAfterDELs([]kube.Container{sdn("2026-12-07T23:01:45Z")}, []string{early, late}, clock) {
		t.Error("a container created after a failure before the DELs is no restart for lo DOWN")
	}
	if (&play{}).restartedAfterDELs([]kube.Container{sdn("2026-12-07T23:01:56Z")}, []string{late}, clock) {
		t.Error("without a DEL time nothing counts but the restart count")
	}
}
