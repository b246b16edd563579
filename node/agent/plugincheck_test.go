package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// countingPlugin is a loopback plugin that answers VERSION as every
// loopback version does and writes a line to $PLUGIN_RUNS each time it
// runs, so a test can count the checks that ran it.
const countingPlugin = `package main

import (
	"fmt"
	"os"
)

func main() {
	f, err := os.OpenFile(os.Getenv("PLUGIN_RUNS"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintln(f, os.Getenv("CNI_COMMAND"))
		f.Close()
	}
	fmt.Print(` + "`" + `{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}` + "`" + `)
}
`

// TestPluginCheckedOncePerFile: the plugin dir check runs the plugin the
// first time, not again while the file is unchanged, and again once the
// file is touched in any way.
func TestPluginCheckedOncePerFile(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(countingPlugin), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module loopback\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(dir, "loopback")
	build := exec.Command("go", "build", "-o", plugin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the plugin: %v\n%s", err, out)
	}
	runs := filepath.Join(t.TempDir(), "runs")
	t.Setenv("PLUGIN_RUNS", runs)
	count := func() int {
		data, _ := os.ReadFile(runs)
		return strings.Count(string(data), "VERSION")
	}

	a := &Agent{StateDir: t.TempDir()}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := a.checkPluginDir(ctx, dir); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(); got != 1 {
		t.Fatalf("three checks of an unchanged plugin ran it %d times, want 1", got)
	}

	// A touch changes the file's times (and its change time): checked again.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(plugin, later, later); err != nil {
		t.Fatal(err)
	}
	if err := a.checkPluginDir(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != 2 {
		t.Fatalf("after a touch the plugin ran %d times in all, want 2", got)
	}

	// A plugin that fails the check is never recorded as passed.
	if err := os.WriteFile(plugin, []byte("not a plugin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := a.checkPluginDir(ctx, dir); err == nil {
			t.Fatalf("check %d of a broken plugin passed", i+1)
		}
	}
}
