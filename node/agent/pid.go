package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

const nsLastPIDFile = "/proc/sys/kernel/ns_last_pid"

// ErrPIDInUse is wrapped when the PID to take already belongs to a task.
var ErrPIDInUse = errors.New("pid is in use")

// maxPIDAttempts bounds the ns_last_pid loop. Each miss is some other
// process (or a new runtime thread) taking the PID between our write and
// our fork; on an idle node a few tries are enough.
const maxPIDAttempts = 500

// SpawnAtPID starts argv (detached, in a new session, with cloneflags) so
// that it gets exactly pid, by writing pid-1 to ns_last_pid right before
// each fork. It returns the number of forks it took.
//
// Threads take PIDs too. A Go runtime thread created between the write and
// the fork would hold pid for the life of its process, so nothing in that
// window may block or allocate a thread: the sysctl file and /dev/null are
// opened up front, the write is a raw pwrite (no scheduler hand-off), and
// the fork is syscall.ForkExec, which does no more than a pipe and a clone
// before the child exists (os.StartProcess would also probe pidfd support
// with a fork of its own).
func SpawnAtPID(ctx context.Context, pid int, argv []string, cloneflags uintptr) (int, error) {
	return spawnAtPID(ctx, pid, argv, cloneflags, true)
}

// spawnAtPID is SpawnAtPID; reexec says whether this process may replace
// itself with a fresh copy when one of its own threads has pid (see
// reexecForPID): not a process that plays several steps, which would
// play the earlier ones again.
func spawnAtPID(ctx context.Context, pid int, argv []string, cloneflags uintptr, reexec bool) (int, error) {
	if pid < 2 {
		return 0, fmt.Errorf("spawn at pid %d: pid must be 2 or more", pid)
	}
	sysctl, err := os.OpenFile(nsLastPIDFile, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("spawn at pid %d: open %s (needs root in the node's pid namespace): %w", pid, nsLastPIDFile, err)
	}
	defer sysctl.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("spawn at pid %d: %w", pid, err)
	}
	defer devnull.Close()
	null := devnull.Fd()
	attr := &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{null, null, null},
		Sys:   &syscall.SysProcAttr{Setsid: true, Cloneflags: cloneflags},
	}
	last := []byte(strconv.Itoa(pid - 1))
	// One P and no GC: the runtime then has no idle P to wake and no
	// background work to start, which is what makes it create threads.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for attempt := 1; attempt <= maxPIDAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return attempt - 1, fmt.Errorf("spawn at pid %d: %w", pid, err)
		}
		if owner, ok := pidOwner(pid); ok {
			if reexec && ownThread(pid) {
				reexecForPID(pid)
			}
			return attempt - 1, fmt.Errorf("spawn at pid %d: %w by %s", pid, ErrPIDInUse, owner)
		}
		_, _, errno := syscall.RawSyscall6(syscall.SYS_PWRITE64, sysctl.Fd(), uintptr(unsafe.Pointer(&last[0])), uintptr(len(last)), 0, 0, 0)
		if errno != 0 {
			return attempt - 1, fmt.Errorf("spawn at pid %d: write %s: %w", pid, nsLastPIDFile, errno)
		}
		got, err := syscall.ForkExec(argv[0], argv, attr)
		if err != nil {
			return attempt, fmt.Errorf("spawn at pid %d: start %s: %w", pid, argv[0], err)
		}
		if got == pid {
			return attempt, nil
		}
		// Someone else took the PID first: discard this process and retry.
		_ = syscall.Kill(got, syscall.SIGKILL)
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(got, &ws, 0, nil)
	}
	return maxPIDAttempts, fmt.Errorf("spawn at pid %d: still missed after %d attempts: the node is forking too fast", pid, maxPIDAttempts)
}

// ownThread says whether pid is a thread of this very process.
func ownThread(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", pid))
	return err == nil
}

// reexecEnv counts re-executions, so a step that keeps losing its PID to
// its own threads ends with an error instead of looping.
const reexecEnv = "PIDREUSE_SPAWN_REEXEC"

// reexecForPID replaces this process with a fresh copy of itself, running
// the same step: exec ends every other thread, which frees the PID one of
// them took. It returns only if it may not (or cannot) re-execute.
func reexecForPID(pid int) {
	n, _ := strconv.Atoi(os.Getenv(reexecEnv))
	if n >= 3 {
		return
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	env := append(os.Environ(), fmt.Sprintf("%s=%d", reexecEnv, n+1))
	fmt.Fprintf(os.Stderr, "nodeagent: a thread of this process took pid %d; re-executing to free it\n", pid)
	_ = syscall.Exec(self, os.Args, env)
}

// pidOwner describes the task that has pid: a process, or a thread of one
// (threads take PIDs too, and /proc/<tid> exists for them).
func pidOwner(pid int) (string, bool) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", false
	}
	var name, tgid string
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Name:"); ok {
			name = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			tgid = strings.TrimSpace(v)
		}
	}
	if tgid != strconv.Itoa(pid) {
		return fmt.Sprintf("a thread of process %s (%q)", tgid, name), true
	}
	return fmt.Sprintf("process %q", name), true
}

func pidComm(pid int) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(data)), true
}

// holderArgv is every holder the agent starts, a sandbox's infra process
// and the host process that takes a reused PID alike: `sleep infinity`,
// single-threaded. A Go program (`nodeagent hold`) would start its runtime
// threads right after, and each takes the next PID: on a node whose pods
// got consecutive PIDs, one of them took the PID of the pod a scenario
// leaves alone on purpose. sleep exits on SIGTERM, so nothing waits for a
// kill timeout at shutdown; the node's init (or systemd) reaps it.
func holderArgv() ([]string, error) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return nil, fmt.Errorf("no sleep(1) in the node: %w", err)
	}
	return []string{sleep, "infinity"}, nil
}

// busyPIDWait bounds ReusePID's wait for a task that holds the PID.
const busyPIDWait = 15 * time.Second

// ReusePID makes a host process (one in the node's own network namespace)
// take pid, and verifies that /proc/<pid>/ns/net now names the host netns.
func (a *Agent) ReusePID(ctx context.Context, pid int) (agentapi.PIDReuse, error) {
	return a.reusePID(ctx, pid, busyPIDWait)
}

// reusePID is ReusePID waiting at most busyWait for a task that has pid.
func (a *Agent) reusePID(ctx context.Context, pid int, busyWait time.Duration) (agentapi.PIDReuse, error) {
	start := time.Now()
	res := agentapi.PIDReuse{PID: pid}
	argv, err := holderArgv()
	if err != nil {
		return res, fmt.Errorf("reuse pid %d: %w", pid, err)
	}
	// A task that took pid between the caller's check and our fork is
	// most often short-lived: a thread of a runc the runtime started as
	// the pause died (seen in CI: "a thread of process 1123 (runc)").
	// Wait a bounded while for it to go rather than end the scenario.
	busyUntil := time.Now().Add(busyWait)
	for {
		attempts, err := spawnAtPID(ctx, pid, argv, 0, !a.OneProcessManySteps)
		res.Attempts += attempts
		if err == nil {
			break
		}
		if !errors.Is(err, ErrPIDInUse) || time.Now().After(busyUntil) {
			return res, fmt.Errorf("reuse pid: %w", err)
		}
		if res.WaitedFor == "" {
			res.WaitedFor = strings.TrimPrefix(err.Error(), fmt.Sprintf("spawn at pid %d: ", pid))
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("reuse pid: %w (%w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if res.NetnsInode, err = netnsInode(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil {
		return res, fmt.Errorf("reuse pid %d: %w", pid, err)
	}
	if res.HostNetnsInode, err = HostNetnsInode(); err != nil {
		return res, fmt.Errorf("reuse pid %d: %w", pid, err)
	}
	res.IsHostNetns = res.NetnsInode == res.HostNetnsInode
	res.DurationMs = time.Since(start).Milliseconds()
	if !res.IsHostNetns {
		return res, fmt.Errorf("reuse pid %d: the new process is in netns %d, not the host's %d", pid, res.NetnsInode, res.HostNetnsInode)
	}
	return res, nil
}

// PIDStatus reports who owns pid now and what its netns is.
func PIDStatus(pid int) (agentapi.PIDStatus, error) {
	st := agentapi.PIDStatus{PID: pid, NetnsTarget: agentapi.TargetMissing}
	comm, ok := pidComm(pid)
	if !ok {
		return st, nil
	}
	st.Exists, st.Comm = true, comm
	target, err := ClassifyNetns(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("pid status %d: %w", pid, err)
	}
	st.NetnsTarget = target
	return st, nil
}

// Squat makes host processes take every PID in pids. It takes the highest
// first: each holder is a Go program whose runtime threads take the PIDs
// right after its own, so in ascending order a holder's thread could take
// the next PID on the list. It goes on past a PID it cannot take and
// reports it, so one miss still says what happened to the others. A PID a
// host process already has counts as taken (see heldByHost): the previous
// boot's container PIDs lie in the range boot-time daemons get.
//
// Afterwards the kernel's PID counter is put back where it was: else the
// processes that start next (the runtime, its pods) get the PIDs right
// after the lowest one taken, which may be a PID the scenario leaves free
// on purpose (the spare pod's).
func (a *Agent) Squat(ctx context.Context, pids []int) agentapi.Squat {
	var res agentapi.Squat
	last, lastErr := readLastPID()
	for _, pid := range squatOrder(pids) {
		r, err := a.squatOne(ctx, pid)
		if err != nil {
			res.Missed = append(res.Missed, agentapi.SquatMiss{PID: pid, Error: err.Error()})
			continue
		}
		res.Taken = append(res.Taken, r)
	}
	if lastErr == nil {
		res.LastPIDRestored = last
		if err := os.WriteFile(nsLastPIDFile, []byte(strconv.Itoa(last)), 0); err != nil {
			res.LastPIDRestored = 0
		}
	}
	return res
}

// readLastPID is the PID the kernel handed out last in this PID namespace.
func readLastPID() (int, error) {
	data, err := os.ReadFile(nsLastPIDFile)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// squatAttempts bounds the tries per PID. Early in boot the kernel and
// systemd start tasks all the time: a PID can be taken between the check
// and the fork (measured in CI: by a kernel thread still named kthreadd,
// being born), so a miss is looked at again after a short pause.
const squatAttempts = 5

func (a *Agent) squatOne(ctx context.Context, pid int) (agentapi.PIDReuse, error) {
	var err error
	for attempt := 1; attempt <= squatAttempts; attempt++ {
		if owner, ok := pidOwner(pid); ok && !ownThread(pid) {
			var r agentapi.PIDReuse
			if r, err = heldByHost(pid, owner); err == nil {
				return r, nil
			}
		} else {
			var r agentapi.PIDReuse
			// No wait for a task that has the PID: the next try looks
			// at it (heldByHost) after a short pause.
			if r, err = a.reusePID(ctx, pid, 0); err == nil {
				settle(ctx, pid)
				return r, nil
			}
		}
		select {
		case <-ctx.Done():
			return agentapi.PIDReuse{PID: pid}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return agentapi.PIDReuse{PID: pid}, fmt.Errorf("after %d tries: %w", squatAttempts, err)
}

// heldByHost reports a PID some host process already has: what matters
// to a runtime that reads /proc/<pid>/ns/net is that the path names the
// host's netns, whoever holds it.
func heldByHost(pid int, owner string) (agentapi.PIDReuse, error) {
	res := agentapi.PIDReuse{PID: pid, HeldBy: owner}
	var err error
	if res.NetnsInode, err = netnsInode(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil {
		return res, err
	}
	if res.HostNetnsInode, err = HostNetnsInode(); err != nil {
		return res, err
	}
	res.IsHostNetns = res.NetnsInode == res.HostNetnsInode
	if !res.IsHostNetns {
		return res, fmt.Errorf("pid %d is held by %s in another netns", pid, owner)
	}
	return res, nil
}

// settle waits until the holder at pid has started whatever threads it
// starts at exec (they take PIDs too): the next holder's PID is written to
// ns_last_pid right before its fork, and a thread born in that window
// would take it. The holder is single-threaded today (holderArgv), so
// this returns after three reads; it stays because the squat must not
// depend on that. It gives up after half a second.
func settle(ctx context.Context, pid int) {
	last, stable := -1, 0
	for i := 0; i < 25 && stable < 3; i++ {
		n := threadCount(pid)
		if n == last && n > 0 {
			stable++
		} else {
			last, stable = n, 0
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// threadCount is the Threads: line of /proc/<pid>/status (0 if gone).
func threadCount(pid int) int {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// squatOrder is pids without duplicates, highest first.
func squatOrder(pids []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, p := range pids {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}
