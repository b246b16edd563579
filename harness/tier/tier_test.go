package tier

import (
	"slices"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/images/crionode"
	"github.com/pidreuse/pidreuse/scenarios"
)

func TestGroupByPinning(t *testing.T) {
	scs, err := scenarios.Select("crio-kubelet-reboot,crio-pinned-reboot,legacy-symptom,crio-unpinned-reboot", scenarios.TierVM)
	if err != nil {
		t.Fatal(err)
	}
	groups := GroupByPinning(scs)
	var got []string
	for _, g := range groups {
		var names []string
		for _, sc := range g.Scenarios {
			names = append(names, sc.Name)
		}
		got = append(got, string(g.Pinning)+":"+strings.Join(names, ","))
	}
	want := "default:crio-kubelet-reboot,legacy-symptom on:crio-pinned-reboot off:crio-unpinned-reboot"
	if strings.Join(got, " ") != want {
		t.Fatalf("groups %v, want %s", got, want)
	}
}

func TestPluginMajor(t *testing.T) {
	r := func(sc, v string) runner.Result { return runner.Result{Scenario: sc, PluginVersion: v} }
	per := [][]runner.Result{
		{r("a", "v1"), r("a", "v2")},
		{r("b", "v1"), r("b", "v2")},
		{r("c", "v1"), r("c", "v2")},
	}
	var got []string
	for _, res := range PluginMajor(per, 2) {
		got = append(got, res.Scenario+"/"+res.PluginVersion)
	}
	want := []string{"a/v1", "b/v1", "c/v1", "a/v2", "b/v2", "c/v2"}
	if !slices.Equal(got, want) {
		t.Fatalf("pluginMajor = %v, want %v", got, want)
	}
}

func TestPinningLayer(t *testing.T) {
	old, _ := crionode.Lookup(crionode.CRIO117)
	cur, _ := crionode.Lookup(crionode.CRIO134)
	if files, err := PinningLayer(old, scenarios.PinningDefault); err != nil || files != nil {
		t.Errorf("default pinning: %v, %v; want no file", files, err)
	}
	files, err := PinningLayer(old, scenarios.PinningOn)
	if err != nil || len(files) != 1 || !strings.Contains(string(files[0].Data), "manage_ns_lifecycle = true") {
		t.Errorf("crio-1.17 pinning on: %+v, %v", files, err)
	}
	if _, err := PinningLayer(cur, scenarios.PinningOff); err == nil {
		t.Error("crio-1.34 has no switch: forcing it must be refused")
	}
}

func TestWorthKeeping(t *testing.T) {
	pass := runner.Result{Pass: true, LoUp: true, ExpectedLoUp: true}
	mismatch := runner.Result{Pass: false, LoUp: false, ExpectedLoUp: true}
	noVerdict := runner.Result{Error: "boom"}
	for _, c := range []struct {
		bisect bool
		res    runner.Result
		want   bool
	}{
		{false, pass, false}, {false, mismatch, true}, {false, noVerdict, true},
		{true, pass, false}, {true, mismatch, false}, {true, noVerdict, true},
	} {
		r := Run{Bisect: c.bisect}
		if got := r.WorthKeeping([]runner.Result{c.res}); got != c.want {
			t.Errorf("bisect=%v %+v: worth keeping %v, want %v", c.bisect, c.res, got, c.want)
		}
	}
}
