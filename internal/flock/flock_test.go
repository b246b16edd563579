package flock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper process: takes the lock named by FLOCK_TEST_HOLD (a dir's
// with FLOCK_TEST_DIR=1), says so on stdout and sleeps until killed.
func TestMain(m *testing.M) {
	if p := os.Getenv("FLOCK_TEST_HOLD"); p != "" {
		var err error
		if os.Getenv("FLOCK_TEST_DIR") != "" {
			_, err = CreateDir(p, 0o755)
		} else {
			_, err = Try(p)
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("held")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// holdInChild starts a process holding path's lock and returns it once
// the lock is held.
func holdInChild(t *testing.T, path string, dir bool) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FLOCK_TEST_HOLD="+path)
	if dir {
		cmd.Env = append(cmd.Env, "FLOCK_TEST_DIR=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		t.Fatalf("helper: %q", line)
	}
	return cmd
}

func TestTryHeldByAnotherProcessUntilSIGKILL(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	child := holdInChild(t, p, false)

	_, err := Try(p)
	if !errors.Is(err, ErrHeld) {
		t.Fatalf("Try on a held lock: %v, want ErrHeld", err)
	}
	if want := fmt.Sprintf("(pid %d)", child.Process.Pid); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the holder %s", err, want)
	}
	if held, err := Held(p); err != nil || !held {
		t.Fatalf("Held = %v, %v; want true", held, err)
	}
	if pid := HolderPID(p); pid != child.Process.Pid {
		t.Errorf("HolderPID = %d, want %d", pid, child.Process.Pid)
	}

	// SIGKILL: no cleanup code runs, the kernel drops the lock.
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	if held, err := Held(p); err != nil || held {
		t.Fatalf("Held after the holder was killed = %v, %v; want false", held, err)
	}
	l, err := Try(p)
	if err != nil {
		t.Fatalf("Try after the holder died: %v", err)
	}
	if pid := HolderPID(p); pid != os.Getpid() {
		t.Errorf("HolderPID = %d, want ours %d", pid, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
}

func TestWaitTakesTheLockWhenFreedAndObeysCtx(t *testing.T) {
	p := filepath.Join(t.TempDir(), "entry.lock")
	first, err := Try(p)
	if err != nil {
		t.Fatal(err)
	}
	// Held in this process through another open file: flock locks
	// belong to open files, so this conflicts like another process.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var told []int
	_, err = Wait(ctx, p, func(pid int) { told = append(told, pid) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a held lock with a short ctx: %v", err)
	}
	if len(told) != 1 || told[0] != os.Getpid() {
		t.Errorf("waiting called with %v, want once with our pid", told)
	}

	time.AfterFunc(200*time.Millisecond, func() { first.Release() })
	start := time.Now()
	second, err := Wait(context.Background(), p, nil)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	defer second.Release()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("Wait returned after %s, before the first holder let go", d)
	}
}

func TestReleaseAndRemoveLeavesNoFileAndNoDoubleHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "port.lock")
	a, err := Try(p)
	if err != nil {
		t.Fatal(err)
	}
	// b opened the file before a removed it: once a lets go, b's lock is
	// on a file nobody else can find, so Try must not hand it out.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := a.ReleaseAndRemove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("lock file still there: %v", err)
	}
	if sameFile(f, p) {
		t.Fatal("sameFile says a removed file is at its old path")
	}
	c, err := Try(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if !sameFile(c.f, p) {
		t.Error("Try handed out a lock on a file not at the path")
	}
}

func TestCreateDirIsLockedWhenItAppears(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "pidreuse-run")
	child := holdInChild(t, dir, true)

	held, pid, err := DirHeld(dir)
	if err != nil || !held || pid != child.Process.Pid {
		t.Fatalf("DirHeld = %v, %d, %v; want true, %d", held, pid, err, child.Process.Pid)
	}
	if _, err := CreateDir(dir, 0o755); !errors.Is(err, os.ErrExist) {
		t.Errorf("CreateDir of an existing dir: %v, want ErrExist", err)
	}
	if _, err := LockDir(dir, 0o755); !errors.Is(err, ErrHeld) {
		t.Errorf("LockDir of a held dir: %v, want ErrHeld", err)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 || entries[0].Name() != "pidreuse-run" {
		t.Errorf("parent holds %v, want only the dir (no staging dirs left)", entries)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("dir mode %v, %v; want 0755", st.Mode().Perm(), err)
	}

	child.Process.Kill()
	child.Wait()
	if held, _, err := DirHeld(dir); err != nil || held {
		t.Fatalf("DirHeld after the owner died = %v, %v", held, err)
	}
	l, err := LockDir(dir, 0o755)
	if err != nil {
		t.Fatalf("LockDir of a dead run's dir: %v", err)
	}
	l.Release()
}

func TestCreateTempDir(t *testing.T) {
	parent := t.TempDir()
	a, la, err := CreateTempDir(parent, "pidreuse-build-*-x", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release()
	b, lb, err := CreateTempDir(parent, "pidreuse-build-*-x", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Release()
	if a == b || !strings.HasPrefix(filepath.Base(a), "pidreuse-build-") || !strings.HasSuffix(a, "-x") {
		t.Errorf("temp dirs %s and %s", a, b)
	}
	if la.Path() != DirLockPath(a) {
		t.Errorf("lock path %s, want %s", la.Path(), DirLockPath(a))
	}
	if held, _, _ := DirHeld(a); !held {
		t.Error("a temp dir is not held by its creator")
	}
	if held, _, _ := DirHeld(filepath.Join(parent, "missing")); held {
		t.Error("a missing dir is held")
	}
}
