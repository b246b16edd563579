package sandbox_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/node/agentapi"
)

// The CRI-O scenario's squat (images/crionode's pidreuse-squat.service)
// on a real kernel: neighbouring PIDs, where in ascending order a holder's
// runtime threads would take the next PID on the list, and a PID a host
// process already holds (the node's init, PID 1).
var _ = Describe("nodeagent pid squat", Label("sandbox"), func() {
	failures := e2eutil.TrackFailures()
	It("takes neighbouring PIDs and counts one a host process holds", func(ctx SpecContext) {
		node := startNode(ctx, failures, "squat")
		// The node sees the machine's file system (its own /run only).
		pids := filepath.Join(GinkgoT().TempDir(), "squat-pids")
		Expect(os.WriteFile(pids, []byte("1 30500 30501 30502 30503\n"), 0o644)).To(Succeed())
		var squat agentapi.Squat
		Expect(harness.Agent(ctx, node, &squat, "pid", "squat", "--pids-file", pids)).To(Succeed())
		Expect(squat.Missed).To(BeEmpty())
		// The kernel's PID counter is back where it was: the next process
		// does not get 30504, right after the lowest PID taken.
		Expect(squat.LastPIDRestored).To(BeNumerically(">", 0))
		res, err := node.Exec(ctx, "sh", "-c", "echo $$")
		Expect(err).NotTo(HaveOccurred())
		next, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
		Expect(err).NotTo(HaveOccurred())
		Expect(next).To(BeNumerically("<", 30500), "the PID after the squat")
		taken := map[int]agentapi.PIDReuse{}
		for _, r := range squat.Taken {
			Expect(r.IsHostNetns).To(BeTrue(), "PID %d", r.PID)
			taken[r.PID] = r
		}
		Expect(taken).To(HaveLen(5))
		Expect(taken[1].HeldBy).NotTo(BeEmpty(), "PID 1 was already held")
		for _, pid := range []int{30500, 30501, 30502, 30503} {
			Expect(taken[pid].HeldBy).To(BeEmpty(), "PID %d must be a new holder", pid)
			var st agentapi.PIDStatus
			Expect(harness.Agent(ctx, node, &st, "pid", "status", "--pid", strconv.Itoa(pid))).To(Succeed())
			Expect(st.Exists).To(BeTrue())
			Expect(st.NetnsTarget).To(Equal(agentapi.TargetHost))
		}
	}, NodeTimeout(time.Minute))
})

// A task that has the PID when `pid reuse` comes — in CI a thread of a runc
// the runtime started as the pause died — is waited out, and said.
var _ = Describe("nodeagent pid reuse", Label("sandbox"), func() {
	failures := e2eutil.TrackFailures()
	It("waits for a task that holds the PID to go, and says which it was", func(ctx SpecContext) {
		node := startNode(ctx, failures, "busy")
		var sb agentapi.Sandbox
		Expect(harness.Agent(ctx, node, &sb, "sandbox", "create", "--id", "busy", "--mode", "ephemeral", "--pid", "30600")).To(Succeed())
		Expect(sb.HolderPID).To(Equal(30600))
		_, err := harness.Shell(ctx, node, "(sleep 1; kill 30600) >/dev/null 2>&1 &")
		Expect(err).NotTo(HaveOccurred())
		var reuse agentapi.PIDReuse
		Expect(harness.Agent(ctx, node, &reuse, "pid", "reuse", "--pid", "30600")).To(Succeed())
		Expect(reuse.WaitedFor).To(ContainSubstring("pid is in use by process"))
		Expect(reuse.IsHostNetns).To(BeTrue())
		Expect(reuse.DurationMs).To(BeNumerically(">=", 500), "it waited for the kill")
	}, NodeTimeout(time.Minute))
})
