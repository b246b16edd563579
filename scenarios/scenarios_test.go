package scenarios

import (
	"strings"
	"testing"
)

func TestMatrixIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range All() {
		if seen[s.Name] {
			t.Errorf("duplicate scenario %s", s.Name)
		}
		seen[s.Name] = true
		if s.DeleteBy == LegacyEmulator && (len(s.Plugins) == 0 || s.Plugins[len(s.Plugins)-1] != "loopback") {
			t.Errorf("%s: loopback must be last in ADD order (first in DEL): %v", s.Name, s.Plugins)
		}
		if s.RetryDEL && !s.ReusePID {
			t.Errorf("%s: a retried DEL only matters when the PID is reused in between", s.Name)
		}
		// The write-up's claim, as data: only an ephemeral reference to a
		// reused PID takes the host lo down.
		wantDown := s.Netns == "ephemeral" && s.ReusePID && s.DeleteBy == LegacyEmulator
		if s.Reproduces() != wantDown {
			t.Errorf("%s: expects lo down=%v, the write-up says %v", s.Name, s.Reproduces(), wantDown)
		}
	}
	for _, name := range []string{"ephemeral-reused", "ephemeral-not-reused", "pinned-reused", "del-retry", "crio-kubelet-reboot", "legacy-symptom"} {
		if !seen[name] {
			t.Errorf("scenario %s missing", name)
		}
	}
}

func TestSelect(t *testing.T) {
	all, err := Select("all", TierSandbox)
	if err != nil || len(all) != 4 {
		t.Fatalf("all: %d scenarios, %v", len(all), err)
	}
	two, err := Select("pinned-reused, del-retry", TierSandbox)
	if err != nil || len(two) != 2 || two[0].Name != "pinned-reused" || two[1].Name != "del-retry" {
		t.Fatalf("two: %+v, %v", two, err)
	}
	if _, err := Select("nope", TierSandbox); err == nil || !strings.Contains(err.Error(), "ephemeral-reused") {
		t.Fatalf("unknown name: error %v should list the known ones", err)
	}
}
