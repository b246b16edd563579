package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// probeChildEnv marks the copy of this test binary that runs in a network
// namespace of its own, where setting lo down touches nothing else; it
// holds the netns inode of the test that started it.
const probeChildEnv = "PIDREUSE_PROBE_TEST_NETNS"

// TestProbeAnswersWhenLoDropsTheSYN: with lo down, the probe says the
// node's own address is unreachable as soon as lo drops its SYN, long
// before its timeout; with lo up it connects.
func TestProbeAnswersWhenLoDropsTheSYN(t *testing.T) {
	if os.Getenv(probeChildEnv) == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root: runs in a network namespace of its own")
		}
		machine, err := netnsInode("/proc/self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestProbeAnswersWhenLoDropsTheSYN$", "-test.v")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", probeChildEnv, machine))
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("in a new netns: %v\n%s", err, out)
		}
		return
	}
	// Never set the machine's own lo down: this copy must be in a netns
	// other than its parent's.
	own, err := netnsInode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if machine := os.Getenv(probeChildEnv); machine == strconv.FormatUint(own, 10) {
		t.Fatalf("refusing: in the netns of the test that started it (%s)", machine)
	}
	ctx := context.Background()
	const timeout = 5 * time.Second

	if _, err := SetLink("lo", true); err != nil {
		t.Fatal(err)
	}
	up, err := Probe(ctx, "127.0.0.1", timeout)
	if err != nil || !up.OK || up.LoDropped != 0 {
		t.Fatalf("lo up: probe %+v, %v; want reachable, nothing dropped", up, err)
	}

	if _, err := SetLink("lo", false); err != nil {
		t.Fatal(err)
	}
	down, err := Probe(ctx, "127.0.0.1", timeout)
	if err != nil || down.OK || down.LoDropped == 0 {
		t.Fatalf("lo down: probe %+v, %v; want unreachable with lo's drop counted", down, err)
	}
	if got := time.Duration(down.DurationMs) * time.Millisecond; got > timeout/2 {
		t.Fatalf("lo down: the probe took %s of its %s timeout: it did not answer at the drop", got, timeout)
	}
	t.Logf("lo down: %s after %d ms", down.Error, down.DurationMs)
}
