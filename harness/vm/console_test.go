package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/images"
)

// The wait sees a line written after it began, in pieces, and only past
// the offset: the previous boot's line does not count.
func TestWaitConsole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	old := "[  OK  ] Started \x1b[0;1;39mssh.service\x1b[0m - OpenBSD Secure Shell server.\r\n         Stopping ssh.service...\r\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	offset := consoleSize(path)
	if waitConsole(context.Background(), path, offset, 300*time.Millisecond, sshStarted) {
		t.Fatal("the previous boot's line counted")
	}
	// Every line asked for is wanted: one is not enough.
	if waitConsole(context.Background(), path, 0, 300*time.Millisecond, sshStarted, regexp.MustCompile("never printed")) {
		t.Fatal("one line of two was enough")
	}
	go func() {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		for _, piece := range []string{"[    5.1] Linux version ...\r\n[  OK  ] Star", "ted \x1b[0;1;39mssh.serv", "ice\x1b[0m - OpenBSD Secure Shell server.\r\n"} {
			time.Sleep(150 * time.Millisecond)
			f.WriteString(piece)
		}
	}()
	start := time.Now()
	if !waitConsole(context.Background(), path, offset, 10*time.Second, sshStarted) {
		t.Fatal("the new boot's line was not seen")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("seen after %s, want soon after it was written", d)
	}
}

// A console that never says it, or one not there at all, is a false after
// the limit or when ctx ends, never an error.
func TestWaitConsoleGivesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.log")
	if waitConsole(context.Background(), path, 0, 200*time.Millisecond, sshStarted) {
		t.Fatal("an absent console said sshd started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if waitConsole(ctx, path, 0, time.Minute, sshStarted) || time.Since(start) > time.Second {
		t.Fatal("an ended ctx did not end the wait")
	}
}

// The image's own line counts where systemd printed no unit status (a
// getty held the console when sshd started).
func TestWaitConsoleImageLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	boot := "[  OK  ] Started \x1b[0;1;39mserial-getty@ttyS0.service\x1b[0m - Serial Getty on ttyS0.\r\n" +
		"\r\npidreuse-node login: [   20.1] powernow_k8: Power state transitions not supported\r\n" +
		images.SSHListensLine + "\r\n"
	if err := os.WriteFile(path, []byte(boot), 0o644); err != nil {
		t.Fatal(err)
	}
	if !waitConsole(context.Background(), path, 0, 2*time.Second, sshStarted) {
		t.Fatal("the image's line was not seen")
	}
}

// A failed start leaves the console where it was asked to, says so in the
// error, and passes the error on untouched when there is no console yet
// (the domain never started) or no place was asked for.
func TestKeepFailedConsole(t *testing.T) {
	dir := t.TempDir()
	console := filepath.Join(dir, "node", "console.log")
	if err := os.MkdirAll(filepath.Dir(console), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(console, []byte("[    1.0] Kernel panic\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startErr := errors.New("boot n: no SSH within 6m0s")
	dst := filepath.Join(dir, "artifacts", "n", "console.log")

	n := &Node{opts: Options{FailureConsole: dst}, console: console}
	err := n.keepFailedConsole(context.Background(), startErr)
	if !errors.Is(err, startErr) || !strings.Contains(err.Error(), dst) {
		t.Errorf("error %q should wrap the start's and name %s", err, dst)
	}
	if data, rerr := os.ReadFile(dst); rerr != nil || string(data) != "[    1.0] Kernel panic\n" {
		t.Errorf("kept console: %q, %v", data, rerr)
	}

	interrupted := fmt.Errorf("boot n: %w", context.Canceled)
	if err := (&Node{opts: Options{FailureConsole: filepath.Join(dir, "other", "console.log")}, console: console}).keepFailedConsole(context.Background(), interrupted); err != interrupted {
		t.Errorf("an interrupted start: error %q, want it untouched", err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (&Node{opts: Options{FailureConsole: filepath.Join(dir, "other", "console.log")}, console: console}).keepFailedConsole(canceled, startErr); err != startErr {
		t.Errorf("a start whose context was canceled: error %q, want it untouched", err)
	}
	for _, n := range []*Node{
		{opts: Options{}, console: console},
		{opts: Options{FailureConsole: filepath.Join(dir, "other", "console.log")}, console: filepath.Join(dir, "never-started.log")},
		{opts: Options{FailureConsole: filepath.Join(dir, "other", "console.log")}},
	} {
		if err := n.keepFailedConsole(context.Background(), startErr); err != startErr {
			t.Errorf("node %+v: error %q, want the start's untouched", n.opts, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); !os.IsNotExist(err) {
		t.Errorf("a start without a console made %s: %v", filepath.Join(dir, "other"), err)
	}
}
