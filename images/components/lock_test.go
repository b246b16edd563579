package components

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Two builds of one cache entry at once: the second waits for the first,
// says so, and finds the entry built; a killed build's temp dir goes.
func TestEntryLockBuildsOnce(t *testing.T) {
	root := t.TempDir()
	r := recipe{Component: Component{Name: Kubelet, Version: "v9.9.9"}, key: "v9.9.9"}
	stale := filepath.Join(root, Kubelet, ".build-v9.9.9-123")
	if err := os.MkdirAll(filepath.Join(stale, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(root, Kubelet, r.key, Kubelet)
	var builds atomic.Int32
	var waitLines sync.Map
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := lockEntry(context.Background(), root, r, func(s string) { waitLines.Store(i, s) })
			if err != nil {
				t.Error(err)
				return
			}
			defer unlock()
			if _, err := os.Stat(entry); err == nil {
				return // the other one built it
			}
			removeStaleBuilds(filepath.Join(root, Kubelet), r.key)
			builds.Add(1)
			time.Sleep(700 * time.Millisecond)
			os.MkdirAll(filepath.Dir(entry), 0o755)
			os.WriteFile(entry, []byte("x"), 0o755)
		}()
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds of one entry, want 1", n)
	}
	waited := 0
	waitLines.Range(func(_, v any) bool {
		if strings.Contains(v.(string), "waiting for another build of kubelet v9.9.9") {
			waited++
		}
		return true
	})
	if waited != 1 {
		t.Errorf("%d builds said they waited, want 1", waited)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a killed build's temp dir is still there: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	unlock, err := lockEntry(context.Background(), root, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := lockEntry(ctx, root, r, func(string) {}); err == nil || !strings.Contains(err.Error(), "build kubelet v9.9.9") {
		t.Errorf("a wait past its context: %v", err)
	}
}
