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
		// (The join race's symptom is a foreign namespace, not lo.)
		wantDown := s.Netns == "ephemeral" && s.ReusePID && !s.JoinRace && (s.DeleteBy == LegacyEmulator || s.DeleteBy == NodeRuntime || s.Pinning == PinningOff)
		if s.Reproduces() != wantDown {
			t.Errorf("%s: expects lo down=%v, the write-up says %v", s.Name, s.Reproduces(), wantDown)
		}
	}
	for _, name := range []string{"ephemeral-reused", "ephemeral-not-reused", "pinned-reused", "del-retry", "crio-kubelet-reboot", "crio-unpinned-reboot", "crio-pinned-reboot", "legacy-symptom", "stop-race", "join-race", "kubelet-reboot"} {
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
	if _, err := Select("del-retry, del-retry", TierSandbox); err == nil || !strings.Contains(err.Error(), `"del-retry" is named twice`) {
		t.Fatalf("a scenario named twice: %v", err)
	}
}

func TestLoopbackFailsOnMissingPath(t *testing.T) {
	for v, want := range map[string]Answer{
		"v0.7.5": Unknown, "v0.8.0": Yes, "v0.8.7": Yes, "v1.0.1": Yes,
		"v1.1.0": No, "v1.1.1": No, "v1.10.0": No, "debian": No,
		"custom:/tmp/cni": Unknown, "": Unknown,
	} {
		if got := LoopbackFailsOnMissingPath(v); got != want {
			t.Errorf("%s: %v, want %v", v, got, want)
		}
	}
}

func ids(cs []Check) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// The write-up's expectations as the model states them, scenario by
// scenario and plugin version by plugin version.
func TestChecksApplyWhereTheyShould(t *testing.T) {
	byName := map[string]Scenario{}
	for _, s := range All() {
		byName[s.Name] = s
	}
	cases := []struct {
		scenario, version, tier string
		want                    []string
	}{
		{"ephemeral-reused", "v1.10.0", TierSandbox, []string{"real-reboot", "pid-taken-by-host", "del-names-host-netns", "own-address-unreachable", "lo-up-restores"}},
		{"ephemeral-not-reused", "v1.0.1", TierSandbox, []string{"real-reboot", "pid-not-taken", "del-names-nothing", "statfs-error-line"}},
		{"ephemeral-not-reused", "debian", TierVM, []string{"real-reboot", "pid-not-taken", "del-names-nothing", "missing-path-ignored"}},
		{"ephemeral-not-reused", "custom:/x", TierSandbox, []string{"real-reboot", "pid-not-taken", "del-names-nothing"}},
		{"pinned-reused", "v0.8.7", TierSandbox, []string{"real-reboot", "pid-taken-by-host", "del-names-nothing", "statfs-error-line"}},
		{"del-retry", "v1.10.0", TierSandbox, []string{"real-reboot", "first-del-fails", "pid-taken-by-host", "del-names-host-netns", "own-address-unreachable", "lo-up-restores"}},
		{"legacy-symptom", "v1.10.0", TierVM, []string{"real-reboot", "pid-taken-by-host", "del-names-host-netns", "own-address-unreachable", "lo-up-restores", "liveness-restart", "liveness-recovers"}},
	}
	for _, c := range cases {
		got := ids(byName[c.scenario].Checks(c.version, c.tier))
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s %s %s: %v, want %v", c.scenario, c.version, c.tier, got, c.want)
		}
	}
	for _, s := range All() {
		for _, c := range s.Checks("v1.10.0", TierVM) {
			if c.ID == "" || c.What == "" || (c.Kind != Timeline && c.Kind != Outcome) {
				t.Errorf("%s: malformed check %+v", s.Name, c)
			}
		}
	}
}

// What a CRI-O scenario expects follows the CRI-O under test.
func TestCRIOChecks(t *testing.T) {
	byName := map[string]Scenario{}
	for _, s := range All() {
		byName[s.Name] = s
	}
	sc := byName["crio-kubelet-reboot"]
	cases := []struct {
		name string
		rt   CRIORuntime
		want []string
	}{
		{"1.34 pins", CRIORuntime{Version: "1.34.0", Pins: true},
			[]string{"real-reboot", "pid-taken-by-host", "crio-netns-as-configured", "pin-gone", "del-no-stale-path", "sdn-probes-answered", "sdn-not-restarted", "no-liveness-failure"}},
		{"1.17 pinned", CRIORuntime{Version: "1.17.5", Pins: true, SparePod: true},
			[]string{"real-reboot", "pid-taken-by-host", "crio-netns-as-configured", "pin-gone", "del-no-stale-path", "sdn-probes-answered", "sdn-not-restarted", "no-liveness-failure"}},
		{"1.17 unpinned", CRIORuntime{Version: "1.17.5", SparePod: true},
			[]string{"real-reboot", "pid-taken-by-host", "crio-netns-as-configured", "del-stale-path", "own-address-unreachable", "liveness-restart", "lo-up-restores", "liveness-recovers"}},
		{"1.16.2 unpinned: the write-up's line", CRIORuntime{Version: "1.16.2", SparePod: true},
			[]string{"real-reboot", "pid-taken-by-host", "crio-netns-as-configured", "del-stale-path", "own-address-unreachable", "liveness-restart", "lo-up-restores", "liveness-recovers", "crio-statfs-line"}},
		{"1.16.3 stats the path first", CRIORuntime{Version: "1.16.3", SparePod: true},
			[]string{"real-reboot", "pid-taken-by-host", "crio-netns-as-configured", "del-stale-path", "own-address-unreachable", "liveness-restart", "lo-up-restores", "liveness-recovers"}},
	}
	for _, c := range cases {
		if got := ids(sc.CRIOChecks(c.rt)); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if !sc.ExpectFromRuntime() || byName["crio-pinned-reboot"].ExpectFromRuntime() || byName["legacy-symptom"].ExpectFromRuntime() {
		t.Error("only crio-kubelet-reboot takes its expectation from the CRI-O under test")
	}
}

// The stop race has no reboot: no reboot check, and its outcome checks
// follow the path the runtime hands DEL.
func TestStopRaceChecks(t *testing.T) {
	var sc Scenario
	for _, s := range All() {
		if s.Name == "stop-race" {
			sc = s
		}
	}
	if !sc.ExpectFromRuntime() || !sc.NeedsCRIONode() || sc.NeedsCRIO() {
		t.Fatalf("stop-race: expect from runtime %v, kube node %v, CRI-O only %v", sc.ExpectFromRuntime(), sc.NeedsCRIONode(), sc.NeedsCRIO())
	}
	ids := func(cs []Check) string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return strings.Join(out, " ")
	}
	if got, want := ids(sc.StopRaceChecks(true)), "del-held-at-gate pause-gone-before-del pid-taken-by-host del-proc-path-names-host own-address-unreachable liveness-restart lo-up-restores liveness-recovers"; got != want {
		t.Errorf("proc path: %s, want %s", got, want)
	}
	if got, want := ids(sc.StopRaceChecks(false)), "del-held-at-gate pause-gone-before-del pid-taken-by-host del-path-not-host sdn-probes-answered sdn-not-restarted no-liveness-failure"; got != want {
		t.Errorf("pin: %s, want %s", got, want)
	}
}

func TestJoinRaceChecks(t *testing.T) {
	var sc Scenario
	for _, s := range All() {
		if s.Name == "join-race" {
			sc = s
		}
	}
	if !sc.JoinRace || !sc.ExpectFromRuntime() || sc.NeedsCRIO() || !sc.ExpectLoUp {
		t.Fatalf("join-race: %+v", sc)
	}
	var got []string
	for _, c := range sc.JoinRaceChecks(true) {
		got = append(got, c.ID)
	}
	if want := "create-held-at-gate pause-gone-before-del pid-taken-by-host joined-host-namespaces"; strings.Join(got, " ") != want {
		t.Errorf("proc join: %v, want %s", got, want)
	}
	got = nil
	for _, c := range sc.JoinRaceChecks(false) {
		got = append(got, c.ID)
	}
	if want := "create-held-at-gate pause-gone-before-del pid-taken-by-host no-foreign-join"; strings.Join(got, " ") != want {
		t.Errorf("pinned join: %v, want %s", got, want)
	}
}
