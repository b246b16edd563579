package nodebin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	for _, name := range All() {
		if err := Check(dir); err == nil || !strings.Contains(err.Error(), name+" (") || !strings.Contains(err.Error(), "make build") {
			t.Fatalf("with %s missing: %v", name, err)
		}
		os.WriteFile(filepath.Join(dir, name), nil, 0o755)
	}
	if err := Check(dir); err != nil {
		t.Fatal(err)
	}

	os.Chmod(filepath.Join(dir, CNIRecord), 0o644)
	if err := Check(dir); err == nil || !strings.Contains(err.Error(), "the recording CNI plugin") {
		t.Errorf("a file that is not executable: %v", err)
	}
	os.Remove(filepath.Join(dir, NodeCRI))
	if err := Check(dir, Agent, Failonce); err != nil {
		t.Errorf("only the named ones are needed: %v", err)
	}
}
