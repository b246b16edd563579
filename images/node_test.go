package images

import (
	"os"
	"path/filepath"
	"testing"
)

// The node image must hash the same for the same files every time, or
// every run rebuilds it (a map's random order once did exactly that).
func TestNodeInputsHashIsStable(t *testing.T) {
	if _, err := FindAptSources("/etc/apt"); err != nil {
		t.Skip("no apt sources on this machine")
	}
	agentDir := t.TempDir()
	for _, n := range []string{"nodeagent", "failonce"} {
		os.WriteFile(filepath.Join(agentDir, n), []byte(n), 0o755)
	}
	plugins := map[string]string{}
	for _, v := range []string{"v1", "v2", "v3"} {
		d := filepath.Join(t.TempDir(), v)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "loopback"), []byte(v), 0o755)
		plugins[v] = d
	}
	first := ""
	for i := 0; i < 20; i++ {
		in, err := NodeInputs(agentDir, plugins)
		if err != nil {
			t.Fatal(err)
		}
		h, err := in.Hash()
		if err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = h
		} else if h != first {
			t.Fatalf("call %d hashed %s, the first %s", i, h, first)
		}
	}
}
