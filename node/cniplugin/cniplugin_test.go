package cniplugin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "loopback")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

const answer = `echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'` + "\n"

// A plugin that answers and exits, leaving a child that holds its stdout,
// must not make the check last as long as the child.
func TestVersionCheckDoesNotWaitForAChildHoldingStdout(t *testing.T) {
	p := script(t, answer+"sleep 300 &\nexit 0\n")
	start := time.Now()
	if err := checkVersionWithin(context.Background(), p, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s: waited for the child", took)
	}
}

func TestVersionCheckKillsAPluginThatNeverAnswers(t *testing.T) {
	p := script(t, "sleep 300\n")
	start := time.Now()
	err := checkVersionWithin(context.Background(), p, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "within 300ms (killed)") {
		t.Fatalf("want a timeout, got %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	if err := checkVersionWithin(context.Background(), script(t, answer), time.Second*10); err != nil {
		t.Errorf("a good plugin: %v", err)
	}
}
